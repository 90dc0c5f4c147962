"""The engine: containers, images, volumes and networks as verbs.

Every front end (CLI, compose, the HTTP API) calls these functions; none of them holds
logic of its own beyond parsing and printing.
"""
