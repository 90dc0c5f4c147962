"""Output formatting shared by every front end (the `rl` CLI today; a Docker API service
and a compose front end later): Go's text/template as Docker uses it (gotemplate), Go's
text/tabwriter (tabwriter), Docker's document shapes with Docker's field names
(docker_shapes), and Docker's `--format` rules: table, json, or a template (render).

Nothing here imports the engine's heavy parts: `rl ps --format ...` stays light.
"""
