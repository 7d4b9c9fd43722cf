"""Imports run one way: the engine below the stages it trains, data/ below the views built on it; no module cycles."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import radiossl

PACKAGE = Path(radiossl.__file__).parent
ABOVE_THE_ENGINE = ("pretext", "downstream", "clustering", "commands", "cli", "demo")
# A view is a plugin on the data layer: data/ knows views only through radiossl.registry (data/view_contract.py).
ABOVE_THE_DATA = ("views", "sweep", *ABOVE_THE_ENGINE)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, at_import_time: bool) -> Iterator[tuple[int, str]]:
    """``(line, module)`` of every radiossl import in ``path``; ``at_import_time``: only those run on import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    nodes = tree.body if at_import_time else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            # "from radiossl.models import checkpoint" imports the module radiossl.models.checkpoint
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name == "radiossl" or name.startswith("radiossl."):
                yield node.lineno, name


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _upward_imports(folder: str, above: Iterable[str]) -> list[str]:
    """Imports from ``radiossl/<folder>`` of the subpackages ``above`` (TYPE_CHECKING and lazy ones count too)."""
    above = set(above)
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for line, name in _imported(path, at_import_time=False)
        if name.split(".")[1:2] and name.split(".")[1] in above
    ]


def test_no_import_runs_from_the_engine_up_into_the_stages_it_trains() -> None:
    assert _upward_imports("engine", ABOVE_THE_ENGINE) == []


def test_no_import_runs_from_the_data_layer_up_into_the_views_or_the_stages() -> None:
    assert _upward_imports("data", ABOVE_THE_DATA) == []


def test_runtime_helpers_import_nothing_of_radiossl_but_its_errors() -> None:
    used = {name.split(".")[1] for path in (PACKAGE / "runtime").glob("*.py") for _, name in _imported(path, False)}
    assert used <= {"runtime", "errors"}


def test_no_module_imports_itself_back_at_import_time() -> None:
    modules = _modules()
    graph = {
        name: sorted({target for _, target in _imported(path, at_import_time=True) if target in modules} - {name})
        for name, path in modules.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in graph[name]:
            # a package's __init__ importing its own submodules is how packages work, not a cycle
            if target.startswith(name + "."):
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert cycles == []
