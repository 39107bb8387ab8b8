"""The package's shape: stages do not import each other, and no import cycle exists (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hermes_train", "environments")
# A stage's folder may import the runtime, data, environments and the shared contracts, never another stage;
# the pipeline and the CLI are the only modules that know every stage.
STAGES = ("hermes_train.sft", "hermes_train.rl", "hermes_train.evaluation")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module ``path`` imports, at the top or inside a function (``TYPE_CHECKING`` blocks excepted)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports(path, modules) for name, path in modules.items()}


def stage_of(module: str) -> str | None:
    return next((s for s in STAGES if module == s or module.startswith(s + ".")), None)


def test_no_stage_imports_another_stage():
    crossings = [f"{m} -> {i}" for m, targets in import_graph().items() for i in targets
                 if stage_of(m) and stage_of(i) and stage_of(m) != stage_of(i)]
    below = [f"{m} -> {i}" for m, targets in import_graph().items() for i in targets
             if m.startswith(("hermes_train.runtime", "hermes_train.data", "environments")) and stage_of(i)]
    assert not crossings, crossings
    assert not below, f"the runtime, data and environments import a stage: {below}"


def test_no_import_cycles():
    graph = import_graph()
    # Package __init__ files are imported on the way to any submodule; they hold docstrings only, so edges through
    # a package to its own submodules are not cycles.
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
