"""``radiossl sweep``: a label-efficiency grid of finetune + evaluate cells; ``radiossl sweep report``.

Flags map onto config fields (``--weights`` -> ``sweep.weights``, ``--ratios`` -> ``sweep.ratios``,
``--data`` -> ``data.root``, ...). Precedence: class defaults < task defaults < ``--config FILE`` <
``--set a.b=v`` < flags. Exit code 1 when a cell failed (it is listed; a rerun resumes it), 2 for
usage and config errors. Torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radiossl.commands.common import (
    EXIT_FAILURES,
    RUNTIME_FIELDS,
    AmpOption,
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    EpochsOption,
    LrOption,
    RawDataOption,
    SeedOption,
    SetOption,
    TaskOption,
    WidthOption,
    WorkersOption,
    config_flags,
    console,
    given_options,
    handle_errors,
    parse_shard_option,
    shard_option,
)
from radiossl.errors import ConfigError

COMMAND_HELP = (
    "Label-efficiency sweep: finetune and evaluate every checkpoint (and scratch) at every label ratio "
    "with every seed, then report Dice per method, ratio and region.\n\n"
    "Every cell is an ordinary finetune run and evaluate folder under --out/cells/<cell>. Resumable: a rerun "
    "skips done cells and resumes interrupted ones from their last checkpoint. Shardable: --shard I/N runs a "
    "share of the cells into the same --out; the shard that finds every cell done writes sweep.csv, "
    "summary.csv, table.md and label_efficiency.png (`radiossl sweep report` writes them at any time)."
)


def parse_ratios(values: list[str] | None) -> list[float] | None:
    """``--ratios`` values (repeatable, each may be a comma-separated list) as floats."""
    if not values:
        return None
    ratios: list[float] = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                ratios.append(float(part))
            except ValueError:
                raise ConfigError(
                    f"--ratios {value!r}: {part!r} is not a number (e.g. --ratios 0.1 --ratios 1.0)"
                ) from None
    return ratios


SWEEP_FIELDS: dict[str, str] = {
    **RUNTIME_FIELDS,
    "data": "data.root",
    "workers": "data.workers",
    "out": "out",
    "epochs": "optim.epochs",
    "batch_size": "optim.batch_size",
    "lr": "optim.lr",
    "width": "model.width",
    "weights": "sweep.weights",
    "ratios": "sweep.ratios",
    "seeds": "sweep.seeds",
    "transfer": "sweep.transfer",
    "train": "sweep.train",
    "mode": "sweep.mode",
    "split": "sweep.split",
    "protocol": "sweep.protocol",
}
"""Each ``sweep`` option that sets a config field, and the field (``--workers`` also sets ``runtime.workers``)."""


def sweep_flags(**given: Any) -> dict[str, Any]:
    """The nested config dict of the given options (by parameter name; ``ratios`` as given on the command line)."""
    if given.get("ratios") is not None:
        given["ratios"] = parse_ratios(given["ratios"])
    for repeatable in ("weights", "transfer", "train"):
        if not given.get(repeatable):
            given.pop(repeatable, None)
    flags = config_flags(given, SWEEP_FIELDS)
    if given.get("workers") is not None:
        flags.setdefault("runtime", {})["workers"] = given["workers"]
    return flags


def register(app: typer.Typer) -> None:
    group = typer.Typer(help=COMMAND_HELP, invoke_without_command=True)

    @group.callback()
    @handle_errors
    def sweep_command(
        ctx: typer.Context,
        task: TaskOption = None,
        data: RawDataOption = None,
        weights: Annotated[
            list[str] | None,
            typer.Option(
                "--weights",
                help="A checkpoint to compare (PATH or NAME=PATH), or 'scratch' for random weights; repeatable.",
                show_default=False,
            ),
        ] = None,
        ratios: Annotated[
            list[str] | None,
            typer.Option(
                "--ratios",
                help="Label ratios, repeatable or comma-separated (default: the thesis' 0.01 ... 1.0).",
                show_default=False,
            ),
        ] = None,
        seeds: Annotated[
            int | None,
            typer.Option(
                "--seeds", min=1, help="Seeds per setting: --seed, --seed + 1, ... (default 3).", show_default=False
            ),
        ] = None,
        out: Annotated[Path | None, typer.Option("--out", help="The sweep folder.", show_default=False)] = None,
        transfer: Annotated[
            list[str] | None,
            typer.Option(
                "--transfer", help="encoder (default) or all; repeatable: one cell per value.", show_default=False
            ),
        ] = None,
        train: Annotated[
            list[str] | None,
            typer.Option(
                "--train", help="all (default), decoder or last; repeatable: one cell per value.", show_default=False
            ),
        ] = None,
        mode: Annotated[
            str | None,
            typer.Option(
                "--mode",
                help="How cells adapt the network: finetune (default) or probe (frozen encoder, linear head).",
                show_default=False,
            ),
        ] = None,
        split: Annotated[
            str | None, typer.Option("--split", help="Evaluated cases: test (default) or val.", show_default=False)
        ] = None,
        protocol: Annotated[
            str | None, typer.Option("--protocol", help="full (default) or thesis-crops.", show_default=False)
        ] = None,
        epochs: EpochsOption = None,
        batch_size: BatchSizeOption = None,
        lr: LrOption = None,
        width: WidthOption = None,
        amp: AmpOption = None,
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
        device: DeviceOption = None,
        workers: WorkersOption = None,
        shard: str | None = shard_option("cells"),
    ) -> None:
        """Run a label-efficiency sweep (help text: COMMAND_HELP)."""
        if ctx.invoked_subcommand is not None:
            return
        from radiossl.commands.progress import console_progress
        from radiossl.sweep.plan import load_sweep_config
        from radiossl.sweep.run import run_sweep

        chosen = parse_shard_option(shard)
        flags = sweep_flags(**given_options(ctx))
        cfg = load_sweep_config(task, config, tuple(overrides or ()), flags)
        out_console = console()
        with console_progress():
            result = run_sweep(cfg, shard=chosen)
        mine = len(result.ran) + len(result.failed) + len(result.skipped)
        out_console.print(
            f"{len(result.ran)} cell(s) run, {len(result.skipped)} done before, {len(result.failed)} failed "
            f"({mine} of {len(result.cells)} in {'shard ' + str(chosen) if chosen else 'the sweep'})"
        )
        for cell, why in result.failed.items():
            out_console.print(f"  failed {cell}: {why}", markup=False, soft_wrap=True)
        if result.report is not None:
            _print_outputs(out_console, result.report)
        elif result.missing:
            out_console.print(
                f"{len(result.missing)} of {len(result.cells)} cells not done yet; the shard that finishes last "
                f"writes the report (`radiossl sweep report {result.out}` shows what is done so far)"
            )
        if result.failed:
            raise typer.Exit(EXIT_FAILURES)

    @group.command("report")
    @handle_errors
    def report_command(
        sweep_dir: Annotated[
            Path, typer.Argument(help="The sweep folder (--out of radiossl sweep).", show_default=False)
        ],
    ) -> None:
        """Write sweep.csv, summary.csv, table.md and label_efficiency.png from the cells that are done."""
        from radiossl.sweep.report import write_report

        report = write_report(sweep_dir)
        out_console = console()
        out_console.print(f"{len(report.done)} of {len(report.done) + len(report.not_done)} cells done")
        for cell, why in report.not_done.items():
            out_console.print(f"  not done {cell}: {why}", markup=False, soft_wrap=True)
        _print_outputs(out_console, report)
        if report.not_done:
            raise typer.Exit(EXIT_FAILURES)

    app.add_typer(group, name="sweep")


def _print_outputs(out_console: Any, report: Any) -> None:
    lines = [f"per case: {report.sweep_csv}", f"summary: {report.summary_csv}", f"table: {report.table_md}"]
    if report.figure_png is not None:
        lines.append(f"figure: {report.figure_png}")
    out_console.print("\n".join(lines), markup=False, soft_wrap=True)
