"""Developer sessions: ``nox -s tests lint typecheck docs``.

Every session installs the CPU build of torch first: an unpinned torch (or a package that pulls it
in) would otherwise download a multi-GB CUDA build.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
TORCH = "torch==2.13.0"


def _install(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[dev]", "./examples/plugin-example")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite without the slow tests (what CI runs)."""
    _install(session)
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "radiossl", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the package."""
    _install(session)
    session.run("mypy", "radiossl")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with MkDocs in strict mode (warnings are errors)."""
    _install(session)
    session.run("python", "docs/gen_config_reference.py")
    session.run("mkdocs", "build", "--strict")
