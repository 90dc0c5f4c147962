"""Networking without root: slirp4netns, port forwards, user-defined networks."""
