"""``radiossl preprocess`` (crop pairs, PCRLv2 views, ModelsGenesis cubes) and ``radiossl lits-layout``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from radiossl.commands.common import (
    EXIT_FAILURES,
    ConfigOption,
    RawDataOption,
    SeedOption,
    SetOption,
    WorkersOption,
    config_flags,
    console,
    given_options,
    handle_errors,
    merge_only_option,
    parse_shard_option,
    shard_option,
)

PREPROCESS_FIELDS: dict[str, str] = {
    "dataset": "dataset",
    "data": "data",
    "out": "out",
    "views": "view",
    "pairs": "pairs",
    "shard": "shard",
    "multichannel": "multichannel",
    "workers": "workers",
    "seed": "seed",
}
"""Each ``preprocess`` option that sets a config field, and the field (the preprocess config is flat)."""


def register(app: typer.Typer) -> None:
    """Add ``preprocess`` and ``lits-layout`` to ``app``."""

    @app.command("preprocess")
    @handle_errors
    def preprocess_command(
        ctx: typer.Context,
        dataset: str = typer.Option(
            None,
            "--dataset",
            "-d",
            help="Dataset adapter: brats18, lits17, luna16, nnunet, nnssl (a pretrain_data.json collection) "
            "or a plugin.",
            show_default=False,
        ),
        data: RawDataOption = None,
        out: Path = typer.Option(
            None, "--out", "-o", help="Output folder (new, or one to resume).", show_default=False
        ),
        views: str = typer.Option(
            None,
            "--views",
            "--view",
            help="cluster (crop pairs), pcrlv2 (pairs + 6 local crops), genesis "
            "(ModelsGenesis cubes) or a plugin view (radiossl plugins list). Default: cluster.",
            show_default=False,
        ),
        pairs: int = typer.Option(
            None, "--pairs", min=1, help="Samples per volume (default 16; genesis 32).", show_default=False
        ),
        shard: str = shard_option("cases (sorted by id)"),
        multichannel: bool = typer.Option(
            None,
            "--multichannel/--per-channel",
            help="BraTS/nnU-Net: one C-channel sample per case, or one sample per modality (default, thesis).",
            show_default=False,
        ),
        merge_only: bool = merge_only_option(
            "manifest.csv and preprocess.json (finished cases only), and list the failed cases of every shard "
            "(exit code 1 if there are any)"
        ),
        workers: WorkersOption = None,
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
    ) -> None:
        """Cut training samples from a raw dataset: resample, normalise, sample crops, write a folder.

        Resumable: a rerun skips finished volumes. Shardable: --shard I/N (1/N ... N/N) or --shard slurm.
        Parallel: --workers N.
        Deterministic for a seed, whatever the workers or shards.

        Bad volumes are reported and skipped; exit code 1 if any failed, 2 for usage errors.

        Every other setting is a config field (docs/data.md), e.g. --set crop_size=[128,128,32]
        --set rejection.max_background=0.9 --set spacing=native.

        Example: radiossl preprocess --dataset brats18 --data data/brats --out data/brats_proc --workers 2

        A flat LiTS download is first laid out with: radiossl lits-layout DOWNLOAD --out data/lits
        """
        from radiossl.commands.progress import console_progress
        from radiossl.config import load_config_file_into
        from radiossl.data.preprocess import PreprocessConfig, preprocess

        parse_shard_option(shard)  # a value that names no shard: exit 2 before any work

        flags = config_flags(given_options(ctx), PREPROCESS_FIELDS)
        settings = load_config_file_into(PreprocessConfig, config, overrides or [], flags=flags)
        with console_progress(console()):
            result = preprocess(settings, merge_only=merge_only)
        _report(result, settings, merge_only)
        if result.failed or (merge_only and result.merged is not None and result.merged.failures):
            raise typer.Exit(EXIT_FAILURES)

    @app.command("lits-layout")
    @handle_errors
    def lits_layout_command(
        src: Path = typer.Argument(..., help="Folder with the LiTS download (volume-N.nii, segmentation-N.nii)."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder to create train/ and val/ in."),
        mode: str = typer.Option("symlink", "--mode", help="symlink, copy, hardlink or move."),
    ) -> None:
        """Lay a flat LiTS-2017 download out as the thesis split: val = volumes 28-47, train = the rest.

        Example: radiossl lits-layout ~/Downloads/LiTS --out data/lits
        then:    radiossl preprocess --dataset lits17 --data data/lits --out data/lits_proc
        """
        from radiossl.data.lits_layout import lay_out_lits
        from radiossl.errors import ConfigError

        if mode not in ("symlink", "copy", "hardlink", "move"):
            raise ConfigError(f"--mode {mode!r}: choose symlink, copy, hardlink or move")
        result = lay_out_lits(src, out, mode=mode)  # type: ignore[arg-type]
        line = f"[green]laid out[/] {result.train} train and {result.val} val volumes in {result.out} ({mode})"
        console().print(line)
        if result.missing_segmentations:
            console().print(f"[yellow]no segmentation for[/] {', '.join(result.missing_segmentations)}")


def _report(result: Any, settings: Any, merge_only: bool = False) -> None:
    from rich.table import Table

    out = console()
    merged = result.merged
    summary = Table(title=f"preprocess {settings.dataset}/{settings.view}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value")
    summary.add_row("folder", str(result.out))
    if merge_only and merged is not None:
        counts = merged.counts
        summary.add_row(
            "cases", f"{counts['cases']}: {counts['ok']} ok, {counts['failed']} failed, {counts['pending']} pending"
        )
        summary.add_row("manifest rows", str(result.manifest_rows))
        out.print(summary)
        _print_failures(merged.failures, "failed cases (all shards)")
        return
    shard = f" (shard {result.shard})" if result.shard else ""
    summary.add_row("cases", f"{result.total_cases}{shard}")
    summary.add_row("already done", str(result.skipped))
    summary.add_row("processed", f"{result.ok} ok, {result.failed} failed")
    summary.add_row("samples written", str(result.samples))
    summary.add_row("manifest rows", str(result.manifest_rows))
    if result.shard and merged is not None:
        counts = merged.counts
        summary.add_row("whole folder", f"{counts['ok']} ok, {counts['failed']} failed, {counts['pending']} pending")
    summary.add_row("time", f"{result.seconds:.1f} s")
    out.print(summary)
    _print_failures(result.failures, "failed cases")
    if result.shard and merged is not None and len(merged.failures) > len(result.failures):
        out.print(
            f"{len(merged.failures)} case(s) failed in all shards together: "
            "radiossl preprocess --merge-only lists them (and preprocess.json under 'failures')"
        )


def _print_failures(failures: Any, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not failures:
        return
    table = Table(title=title, title_style="bold red")
    table.add_column("case")
    if any(f.shard for f in failures):
        table.add_column("shard")
    table.add_column("reason", overflow="fold")
    for failure in failures:
        shard = [failure.shard or "-"] if any(f.shard for f in failures) else []
        table.add_row(escape(failure.case_id), *shard, escape(failure.reason))
    console().print(table)
