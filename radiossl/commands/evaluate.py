"""``radiossl evaluate``: Dice and HD95 of a finetuned checkpoint on a dataset split.

Options map onto config fields through ``EVALUATE_FIELDS`` (``--data`` -> ``data.root``, ``--split`` ->
``split``, ...).
Precedence: class defaults < task defaults < ``--config FILE`` < ``--set a.b=v`` < flags.
Exit code 1 when some cases failed (they are listed in summary.json). Torch is imported only when
the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radiossl.commands.common import (
    EXIT_FAILURES,
    RUNTIME_FIELDS,
    AllowUnsafePickleOption,
    AmpOption,
    ConfigOption,
    DeviceOption,
    RawDataOption,
    SeedOption,
    SetOption,
    TaskOption,
    WorkersOption,
    config_flags,
    console,
    given_options,
    handle_errors,
    merge_only_option,
    parse_shard_option,
    shard_option,
)

COMMAND_HELP = (
    "Evaluate a finetuned checkpoint: per-case Dice and HD95 (mm) per region.\n\n"
    "--protocol full (default): sliding-window inference on whole volumes, threshold 0.5. "
    "--protocol thesis-crops: the thesis' single centre crop with soft Dice "
    "(only to compare with its numbers). "
    "Writes metrics.csv, summary.json and, with --save-predictions, predictions/<case>.nii.gz into --out.\n\n"
    "Resumable: a rerun skips the cases that have a result (cases/<case>.json). "
    "Shardable: --shard I/N evaluates a share of the cases into the same --out; the last shard to finish, "
    "or --merge-only, writes metrics.csv and summary.json."
)


EVALUATE_FIELDS: dict[str, str] = {
    "data": "data.root",
    "workers": "data.workers",
    **RUNTIME_FIELDS,
    "weights": "weights",
    "out": "out",
    "split": "split",
    "protocol": "protocol",
    "save_predictions": "save_predictions",
    "tta_flips": "tta_flips",
    "allow_unsafe_pickle": "allow_unsafe_pickle",
}
"""Each ``evaluate`` option that sets a config field, and the field."""


def evaluate_flags(**given: Any) -> dict[str, Any]:
    """The nested config dict of the given options (by parameter name; None and non-config options left out)."""
    return config_flags(given, EVALUATE_FIELDS)


def register(app: typer.Typer) -> None:
    @app.command("evaluate", help=COMMAND_HELP)
    @handle_errors
    def evaluate_command(
        ctx: typer.Context,
        task: TaskOption = None,
        data: RawDataOption = None,
        weights: Annotated[
            Path | None,
            typer.Option("--weights", help="Finetuned checkpoint (e.g. <run>/checkpoint_best.pt)."),
        ] = None,
        out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
        split: Annotated[
            str | None,
            typer.Option(
                "--split", help="test (default), val, train, train_subset (the cases finetuning used) or all."
            ),
        ] = None,
        protocol: Annotated[str | None, typer.Option("--protocol", help="full (default) or thesis-crops.")] = None,
        save_predictions: Annotated[
            bool | None,
            typer.Option("--save-predictions/--no-save-predictions", help="Write predicted label maps (NIfTI)."),
        ] = None,
        tta_flips: Annotated[
            bool | None, typer.Option("--tta-flips/--no-tta-flips", help="Average over the 8 axis flips.")
        ] = None,
        amp: AmpOption = None,
        allow_unsafe_pickle: AllowUnsafePickleOption = None,
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
        device: DeviceOption = None,
        workers: WorkersOption = None,
        shard: str | None = shard_option("cases of the split"),
        merge_only: bool = merge_only_option("metrics.csv and summary.json"),
    ) -> None:
        """Evaluate a finetuned checkpoint (help text: COMMAND_HELP)."""
        from radiossl.commands.progress import console_progress, rich_table
        from radiossl.downstream.config import load_task_config
        from radiossl.downstream.evaluate import evaluate

        chosen = parse_shard_option(shard)
        flags = evaluate_flags(**given_options(ctx))
        cfg = load_task_config("evaluate", task, config, tuple(overrides or ()), flags)
        out_console = console()
        with console_progress(out_console):  # one line per case
            result = evaluate(cfg, shard=chosen, merge_only=merge_only)
        if result.complete:
            out_console.print(rich_table(result.table()))
            out_console.print(f"metrics: {result.metrics_csv}\nsummary: {result.summary_json}")
        else:
            out_console.print(
                f"shard {result.shard}: {result.evaluated} case(s) evaluated into {result.out_dir}; "
                f"{len(result.missing)} case(s) of other shards missing, so no summary yet "
                "(the last shard to finish writes it, or run the same command with --merge-only)"
            )
        if result.failures:
            where = result.summary_json if result.complete else result.out_dir / "cases"
            out_console.print(f"[red]{len(result.failures)} case(s) failed[/] (listed in {where})")
            raise typer.Exit(EXIT_FAILURES)
