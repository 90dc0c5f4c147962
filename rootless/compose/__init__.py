"""`rl compose`: multi-container applications from compose files, a front end of the engine.

model.py reads the files into a Project (discovery, merge, extends, include, interpolation,
profiles, validation against the compose-spec JSON schema); convert.py turns a service into
the engine's RunOptions and the labels Docker compose puts on what it creates; project.py
holds the verbs (up, down, ps, ...) as calls into rootless.engine; logs.py multiplexes the
services' output. Nothing here shells out to `rl` or reimplements an engine verb.
"""
