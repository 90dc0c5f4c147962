"""Dependency order of services (depends_on, links of network_mode: service:NAME): starts
go in this order, stops in its reverse; a cycle is an error naming it."""

from __future__ import annotations

from rootless.compose.errors import ComposeError


def deps(svc: dict) -> list[str]:
    out = list(svc.get("depends_on") or {})
    mode = svc.get("network_mode") or ""
    if mode.startswith("service:") and mode[8:] not in out:
        out.append(mode[8:])
    return out


def order(services: dict[str, dict], only: list[str] | None = None) -> list[str]:
    """Services (and, for `only`, what they depend on) with every dependency first."""
    seen: dict[str, str] = {}  # name -> "visiting" | "done"
    out: list[str] = []

    def visit(name: str, stack: list[str]) -> None:
        state = seen.get(name)
        if state == "done":
            return
        if state == "visiting":
            cycle = [*stack[stack.index(name):], name]
            raise ComposeError(f"dependency cycle between services: {' -> '.join(cycle)}",
                               "remove one of these depends_on")
        seen[name] = "visiting"
        for d in deps(services[name]):
            if d in services:
                visit(d, [*stack, name])
        seen[name] = "done"
        out.append(name)

    for name in (only if only is not None else sorted(services)):
        visit(name, [])
    return out
