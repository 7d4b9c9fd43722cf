"""``radiossl probe``: a frozen-encoder segmentation probe of a pretrained checkpoint on a task.

A finetune run with ``mode: probe`` (:mod:`radiossl.downstream.probe`): the same options, config
sections, run folder and exit codes as ``radiossl finetune``, without ``--transfer``/``--train`` (the
encoder is loaded and frozen, the head trains). ``radiossl evaluate`` reads the probe's checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radiossl.commands.common import (
    AllowUnsafePickleOption,
    AmpOption,
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    EpochsOption,
    ExtendEpochsOption,
    LrOption,
    RatioOption,
    RawDataOption,
    ResumeOption,
    RunsOutOption,
    SeedOption,
    SegmentationVisOption,
    SetOption,
    TaskOption,
    VerboseOption,
    WidthOption,
    WorkersOption,
    config_flags,
    given_options,
    handle_errors,
)
from radiossl.commands.finetune import FINETUNE_FIELDS, report_left_out

COMMAND_HELP = (
    "Probe a pretrained encoder on a segmentation task: the encoder stays frozen and only a 1x1x1 "
    "convolution per encoder stage trains (minutes on a CPU at small width).\n\n"
    "Same data, split, ratio subsets, validation, checkpoints and run folder as `radiossl finetune`; "
    "`radiossl evaluate --weights RUN/checkpoint_best.pt` scores it. Without --weights the encoder is "
    "random: the random-features baseline."
)

PROBE_FIELDS: dict[str, str] = {
    name: field for name, field in FINETUNE_FIELDS.items() if name not in ("transfer", "train")
}
"""Each ``probe`` option that sets a config field, and the field (``mode`` is always ``probe``)."""


def probe_flags(**given: Any) -> dict[str, Any]:
    """The nested config dict of the given options, with ``mode: probe``."""
    return {**config_flags(given, PROBE_FIELDS), "mode": "probe"}


def register(app: typer.Typer) -> None:
    @app.command("probe", help=COMMAND_HELP)
    @handle_errors
    def probe_command(
        ctx: typer.Context,
        task: TaskOption = None,
        data: RawDataOption = None,
        out: RunsOutOption = None,
        weights: Annotated[
            Path | None,
            typer.Option("--weights", help="Pretrained checkpoint whose encoder is probed (default: random)."),
        ] = None,
        ratio: RatioOption = None,
        epochs: EpochsOption = None,
        resume: ResumeOption = None,
        extend_epochs: ExtendEpochsOption = None,
        batch_size: BatchSizeOption = None,
        lr: LrOption = None,
        width: WidthOption = None,
        vis: SegmentationVisOption = None,
        amp: AmpOption = None,
        allow_unsafe_pickle: AllowUnsafePickleOption = None,
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
        device: DeviceOption = None,
        workers: WorkersOption = None,
        verbose: VerboseOption = None,
    ) -> None:
        """Train a frozen-encoder probe (help text: COMMAND_HELP)."""
        from radiossl.commands.progress import console_progress
        from radiossl.downstream.config import load_task_config
        from radiossl.downstream.probe import probe

        flags = probe_flags(**given_options(ctx))
        cfg = load_task_config("finetune", task, config, tuple(overrides or ()), flags)
        with console_progress():
            result = probe(cfg, resume=resume, extend_epochs=extend_epochs)
        report_left_out(result)
