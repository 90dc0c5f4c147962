"""`python -m rootless` is `rl`."""

from rootless.cli.main import main

main()
