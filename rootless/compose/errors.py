"""The error of a compose file: one line naming the file, the path in it and what is wrong.

Exit status 1, as docker compose uses for a bad project (125 stays for rl's own flags)."""

from __future__ import annotations

from rootless.errors import InvalidArgument


class ComposeError(InvalidArgument):
    exit_code = 1


def where(file: str | None, path: str | None) -> str:
    """`compose.yaml: services.web.ports[0]` (either part may be missing)."""
    return ": ".join(p for p in (file, path) if p)


def path_text(parts) -> str:
    """["services", "web", "ports", 0] -> services.web.ports[0]."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out
