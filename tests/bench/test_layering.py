"""The house rules of `bench/` (its docstring): sub-packages import one way, no module circles,
and `tasks/` and `predictors/` never import `bench/`. Read from the source (every import,
function-level ones included), so a lazy import cannot hide an arrow pointing up."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each part of bench/ may import of bench/ (besides itself and the shared errors, io and process).
MAY_IMPORT = {
    "model": set(),
    "scoring": set(),
    "zoo": {"model"},
    "protocol": {"model", "scoring"},
    "leaderboard": {"protocol", "scoring", "model"},
    "runs": {"leaderboard", "protocol", "scoring", "model"},
    "cli": {"model", "scoring", "zoo", "protocol", "leaderboard", "runs"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str | None = None) -> set[str]:
    """Every module `path` (module `name`) imports, absolute, relative imports resolved."""
    package = (name or _module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import io`
    return found


def _sources(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "bench" and len(parts) > 1 else None


def _upward(path: Path, name: str) -> list[str]:
    """The modules of bench/ that `path` (module `name`) imports but its part may not."""
    own = _part(name)
    allowed = MAY_IMPORT[own] | {own} if own in MAY_IMPORT else set()
    return sorted(m for m in _imports(path, name)
                  if m.split(".")[0] == "bench" and _part(m) in MAY_IMPORT and _part(m) not in allowed)


@pytest.mark.parametrize("path", [p for p in _sources("bench") if p != ROOT / "bench" / "__init__.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_bench_imports_point_one_way(path):
    """(bench/__init__.py is left out: its lazy API names modules as strings, imported on first use.)"""
    name = _module_name(path)
    wrong = _upward(path, name)
    assert not wrong, f"{name} imports {wrong}; {_part(name)} may import {sorted(MAY_IMPORT.get(_part(name), ()))}"


@pytest.mark.parametrize("folder", ["tasks", "predictors"])
def test_tasks_and_predictors_never_import_bench(folder):
    for path in _sources(folder):
        up = sorted(m for m in _imports(path) if m.split(".")[0] == "bench")
        assert not up, f"{path.relative_to(ROOT)} imports {up}"


def test_no_import_circles_between_bench_modules():
    modules = {_module_name(p): p for p in _sources("bench")}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name, stack):
        state[name] = "open"
        for nxt in sorted(graph[name]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_checks_see_an_upward_import(tmp_path):
    """The reader is not blind: a function-level relative import from model/ up to protocol/ is found,
    and the same import from protocol/ is allowed."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..protocol.stages import run\n    return run\n")
    assert _upward(probe, "bench.model.probe") == ["bench.protocol.stages", "bench.protocol.stages.run"]
    assert _upward(probe, "bench.protocol.probe") == []
