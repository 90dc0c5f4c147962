"""The Docker Engine API on a user's socket (`rl system service`): a front end of
rootless.engine, as the CLI is. Nothing here implements a verb; each handler parses a
request, calls the engine in a worker thread and shapes the answer (rootless/format).

Modules: server.py (listening, connections, h11, hijack, idle exit), protocol.py (the
request/response types and Docker's query conventions), routes.py (the route table, in one
place), and one handler module per object kind (system, images, containers, execs,
volumes, networks). Nothing of this package is imported by `rl run`.
"""

API_VERSION = "1.43"  # reported; requests from MIN_API_VERSION up are served
MIN_API_VERSION = "1.24"
