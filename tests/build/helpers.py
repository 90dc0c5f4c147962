"""Helpers for the build tests: parse a Dockerfile snippet and pick its instructions."""

from __future__ import annotations

import textwrap

from rootless.build import dockerfile


def parse(text: str, dedent: bool = True) -> dockerfile.Dockerfile:
    return dockerfile.parse(textwrap.dedent(text) if dedent else text)


def body(text: str, dedent: bool = True):
    """The instructions of a one-stage Dockerfile: "FROM busybox" followed by `text`."""
    src = textwrap.dedent(text) if dedent else text
    return dockerfile.parse("FROM busybox\n" + src).stages[0].instructions


def one(text: str, dedent: bool = True):
    instructions = body(text, dedent)
    assert len(instructions) == 1, instructions
    return instructions[0]
