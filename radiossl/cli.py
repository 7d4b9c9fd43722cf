"""The ``radiossl`` command line: a thin Typer layer over the Python API.

Each command lives in ``radiossl/commands/<name>.py`` and parses options into a config before
calling the same function a notebook calls. Nothing heavy is imported here, so ``radiossl --help``
is instant.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "synth",
    "preprocess",
    "kmeans",
    "pretrain",
    "finetune",
    "probe",
    "evaluate",
    "sweep",
    "check_overlap",
    "demo",
    "plugins",
    "config",
    "checkpoint",
    "version",
)

app = typer.Typer(
    name="radiossl",
    help="3D self-supervised pretraining for radiology: "
    "synth → preprocess → kmeans fit/predict → pretrain → finetune → evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"radiossl.commands.{_name}")
    except ModuleNotFoundError as _exc:  # a command whose module is not part of this build
        if _exc.name != f"radiossl.commands.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
