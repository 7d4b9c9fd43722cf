"""``radiossl check-overlap``: downstream validation/test cases that were in the pretraining data.

The task's cases and split come from the same config a finetune run resolves (``--task``, ``--data``,
``--config``, ``--set task.splits=...``, ``--seed``), so the cases checked are the ones finetuning
validates on and evaluation tests on. Exit codes: 0 no overlap, 1 overlap found (or an image could
not be hashed), 2 usage error or a folder that cannot be read (nothing was checked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radiossl.commands.common import (
    EXIT_FAILURES,
    EXIT_USAGE,
    RUNTIME_FIELDS,
    ConfigOption,
    RawDataOption,
    SeedOption,
    SetOption,
    TaskOption,
    config_flags,
    console,
    error,
    given_options,
    handle_errors,
)

COMMAND_HELP = (
    "Report the downstream validation/test cases whose images were in the pretraining data, by case id "
    "and by content (a hash of the voxels, whatever the file format), since pretraining on a test case "
    "inflates every number measured on it.\n\n"
    "--pretrain is a preprocessed folder (its train split is what pretraining trains on); the task's "
    "validation and test cases are chosen as finetune and evaluate choose them. Pretraining cases whose "
    "source files moved are compared by case id only.\n\n"
    "Exit code 0: no overlap; 1: overlap found (or an image could not be hashed); 2: usage error."
)

CHECK_FIELDS: dict[str, str] = {"data": "data.root", **RUNTIME_FIELDS}
"""Each ``check-overlap`` option that sets a field of the task's finetune config, and the field."""


def register(app: typer.Typer) -> None:
    @app.command("check-overlap", help=COMMAND_HELP)
    @handle_errors
    def check_overlap_command(
        ctx: typer.Context,
        pretrain: Annotated[
            Path | None,
            typer.Option("--pretrain", help="Preprocessed folder the encoder was pretrained on.", show_default=False),
        ] = None,
        task: TaskOption = None,
        data: RawDataOption = None,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Write the report as JSON to this file (its hash cache beside it: <name>.hashes.json).",
                show_default=False,
            ),
        ] = None,
        cache: Annotated[
            Path | None,
            typer.Option(
                "--cache", help="Hash cache file (default: beside --out; none without --out).", show_default=False
            ),
        ] = None,
        pretrain_split: Annotated[
            list[str] | None,
            typer.Option(
                "--pretrain-split",
                help="Split(s) of the preprocessed folder pretraining trained on (repeatable; default train).",
                show_default=False,
            ),
        ] = None,
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
    ) -> None:
        """Check pretraining/downstream overlap (help text: COMMAND_HELP)."""
        from radiossl.commands.progress import console_progress, rich_table
        from radiossl.downstream.config import load_task_config
        from radiossl.downstream.overlap import PRETRAIN_SPLITS, cache_path_for, check_overlap, write_overlap_report
        from radiossl.downstream.tasks.base import get_task_class
        from radiossl.errors import ConfigError, DataError

        if pretrain is None:
            raise ConfigError("--pretrain PROC_DIR is required (the preprocessed folder pretraining used)")
        if out is not None and out.is_dir():
            raise ConfigError(f"--out {out}: is a folder; give the report's file name (e.g. {out / 'overlap.json'})")
        cfg = load_task_config(
            "finetune", task, config, tuple(overrides or ()), config_flags(given_options(ctx), CHECK_FIELDS)
        )
        if cfg.data.root is None:
            raise ConfigError("no dataset folder given: use --data RAW_DIR")
        out_console = console()
        try:
            downstream = get_task_class(cfg.task.name)(cfg.task, cfg.data.root)
            with console_progress(out_console):
                result = check_overlap(
                    pretrain,
                    downstream,
                    seeds=(cfg.runtime.seed,),
                    pretrain_splits=tuple(pretrain_split or PRETRAIN_SPLITS),
                    cache=cache if cache is not None else (cache_path_for(out) if out is not None else None),
                )
        except DataError as exc:  # exit 1 means "overlap found": a folder that cannot be read is a usage error
            for line in str(exc).splitlines():
                error(line)
            raise typer.Exit(EXIT_USAGE) from None
        if result.matches:
            out_console.print(rich_table(result.table()))
        for note in result.notes():
            out_console.print(f"[yellow]note:[/] {note}", markup=True, highlight=False)
        colour = "red" if result.found else "green"
        out_console.print(f"[{colour}]{result.summary_line()}[/]")
        if out is not None:
            out_console.print(f"report: {write_overlap_report(result, out)}")
        if result.found or result.unreadable:
            raise typer.Exit(EXIT_FAILURES)
