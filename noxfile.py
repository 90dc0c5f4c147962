"""Sessions: tests, lint, bench, demo. `nox -s tests` runs the suite as the current user;
the README's test command (contrib/run-tests.sh) adds the host preparation done as root."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not asroot", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "rootless", "fuse_overlay", "tests", "contrib", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers installed here; prints ratios, asserts nothing."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "contrib.bench", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The README's main job, as the current user."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "contrib.demo", *session.posargs)
