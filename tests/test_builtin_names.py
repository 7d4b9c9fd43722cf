"""Stage code knows plugins only through the registry: no built-in method or view name in it.

The names are read from radiossl's ``pyproject.toml`` (the ``radiossl.pretext`` and ``radiossl.views``
entry points), so a new built-in is covered without editing this test. In the modules checked, a name
may appear only

* in a docstring or a comment (documentation), or in the ``help=`` / ``description=`` text of an
  option or field (help texts);
* as the default value of a ``Field(...)`` or ``typer.Option(...)`` (registry defaults: what a user gets
  without choosing, e.g. ``radiossl demo --method pixel-cluster``).

Every other string constant (f-string parts included) that is a name, or holds one as a whole word, fails
the test with its file and line. ``cluster`` is also the ordinary word for a k-means cluster ("cluster
sizes"), so it is caught only as a whole string (``view == "cluster"``, ``("cluster", "pcrlv2")``).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "radiossl"
CHECKED = (
    "engine",
    "data/preprocess/runner.py",
    "data/view_contract.py",
    "data/processed.py",
    "clustering",
    "demo.py",
    "commands",
)
HELP_KEYWORDS = frozenset({"help", "description"})
ORDINARY_WORDS = frozenset({"cluster"})
DEFAULT_CALLS = frozenset({"Field", "Option", "Argument"})


def builtin_names() -> set[str]:
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]
    return {name for group in ("radiossl.pretext", "radiossl.views") for name in entry_points[group]}


def checked_files() -> list[Path]:
    files: list[Path] = []
    for part in CHECKED:
        path = PACKAGE / part
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _allowed_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes whose strings may name built-ins (docstrings, help texts, registry defaults)."""
    allowed: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                allowed.append(body[0].value)
        if isinstance(node, ast.Call):
            allowed.extend(k.value for k in node.keywords if k.arg in HELP_KEYWORDS)
            if _call_name(node) in DEFAULT_CALLS:
                allowed.extend(node.args[:1])
                allowed.extend(k.value for k in node.keywords if k.arg == "default")
    return {id(inner) for node in allowed for inner in ast.walk(node)}


def name_uses(path: Path, names: set[str]) -> Iterator[str]:
    """``file:line: 'text'`` for every string constant of ``path`` outside the allowed places that names a built-in."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    allowed = _allowed_nodes(tree)
    as_words = sorted(names - ORDINARY_WORDS, key=len, reverse=True)
    word = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in as_words) + r")(?![\w-])")
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in allowed:
            continue
        if node.value.strip() in names or word.search(node.value):
            yield f"{path}:{node.lineno}: {node.value!r}"


def test_no_builtin_method_or_view_name_in_stage_code() -> None:
    names = builtin_names()
    assert {"patch-cluster", "pixel-cluster", "cluster", "pcrlv2", "genesis"} <= names
    uses = [use for path in checked_files() for use in name_uses(path, names)]
    assert not uses, "built-in plugin names outside registry defaults and help texts:\n" + "\n".join(uses)


def test_the_check_sees_the_uses_it_forbids_and_not_the_ones_it_allows(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Docs may name pixel-cluster."""\n'
        "import typer\n"
        "from pydantic import Field\n"
        'method: str = Field("pixel-cluster", description="pixel-cluster or a plugin")\n'
        'option = typer.Option("cluster", "--views", help=f"cluster, pcrlv2 or {method}")\n'
        "# a comment may say genesis\n"
        'if method == "pixel-cluster":\n'
        '    views = ("cluster", "pcrlv2")\n'
        'message = f"needs a {method} or genesis view"\n'
        'plain = "cluster sizes, patch-clusters, genesis_cubes"\n'
    )
    lines = [int(use.split(": ", 1)[0].rsplit(":", 1)[1]) for use in name_uses(sample, builtin_names())]
    assert sorted(lines) == [7, 8, 8, 9]
