"""The `rl` command line: click commands that parse, call the engine and print."""
