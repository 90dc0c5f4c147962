"""The layers of docs/design.md section 1, read from the code: every `import` and `from ...
import` of every module (at the top or inside a function: a lazy import is still a
dependency) points down, never up.

    front ends (cli) -> engine -> image, build, network, runtime -> store -> linux
    format: imports nothing of rl but errors and trace (every layer may print through it)
    errors, trace: import nothing of rl
    fuse_overlay: imports nothing of rootless
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A higher number is a lower layer; a module may import its own layer and lower ones.
RANK = {
    "rootless.__main__": 0, "rootless.cli": 1,
    "rootless.engine": 2,
    "rootless.image": 3, "rootless.build": 3, "rootless.network": 3, "rootless.runtime": 3,
    "rootless.crashlog": 4,  # the crash log: below every process that records a crash
    "rootless.store": 5,
    "rootless.linux": 6,
    "rootless.format": 7,
    "rootless.errors": 8, "rootless.trace": 8, "rootless": 8,  # the package's __init__
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    for n in (2, 1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    raise KeyError(module)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def upward_imports() -> list[str]:
    bad = []
    for path in sources("rootless"):
        mod = module_name(path)
        here = layer_of(mod)
        for line, target in imports(path):
            if target.split(".")[0] != "rootless":
                continue
            there = layer_of(target)
            if RANK[there] < RANK[here]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {target}")
    return bad


def test_every_module_has_a_layer():
    """A new package of rootless/ gets a place in RANK (and in docs/design.md) first."""
    unknown = []
    for path in sources("rootless"):
        try:
            layer_of(module_name(path))
        except KeyError:
            unknown.append(str(path.relative_to(ROOT)))
    assert unknown == []


def test_no_import_points_up():
    assert upward_imports() == []


def test_fuse_overlay_imports_nothing_of_rootless():
    bad = [f"{p.relative_to(ROOT)}:{line}: {t}" for p in sources("fuse_overlay")
           for line, t in imports(p) if t.split(".")[0] == "rootless"]
    assert bad == []


def test_no_import_cycle_at_import_time():
    """Modules imported at the top of a module form no cycle (a cycle works or breaks by
    the order of first import). Imports inside functions are not counted here."""
    graph: dict[str, set[str]] = {}
    for path in sources("rootless"):
        mod = module_name(path)
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
        graph[mod] = {d for d in deps if d.startswith("rootless")} - {mod}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if d not in graph:
                continue
            if state.get(d) == 1:
                return [*stack[stack.index(d):], d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            pytest.fail(" -> ".join(cycle))


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule itself: an import of the engine from the runtime is found."""
    pkg = tmp_path / "rootless" / "runtime"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from rootless.engine import containers\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert upward_imports() == ["rootless/runtime/x.py:2: rootless.runtime imports "
                                "rootless.engine"]
