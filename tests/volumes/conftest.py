"""Fixtures of the volume tests: real containers (tests/volumes/ctr.py)."""

from tests.volumes.ctr import ctr_images, rlc  # noqa: F401
