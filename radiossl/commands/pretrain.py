"""``radiossl pretrain``: self-supervised pretraining with a registered pretext method.

Options map onto config fields through ``PRETRAIN_FIELDS`` (``--data`` -> ``data.root``, ``--epochs`` ->
``optim.epochs``, ...).
Precedence: class defaults < method defaults < ``--config FILE`` < ``--set a.b=v`` < flags.
Torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radiossl.commands.common import (
    TRAINING_FIELDS,
    AmpOption,
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    EpochsOption,
    ExtendEpochsOption,
    LrOption,
    ProcessedDataOption,
    ResumeOption,
    RunsOutOption,
    SeedOption,
    SetOption,
    VerboseOption,
    WidthOption,
    WorkersOption,
    config_flags,
    given_options,
    handle_errors,
)

COMMAND_HELP = (
    "Pretrain a 3D U-Net encoder with a self-supervised method on a preprocessed folder.\n\n"
    "Writes config.yaml, metrics.jsonl, checkpoint_{latest,best,final}.pt (and vis/ PNGs) into a run folder "
    "under --out. For several GPUs: torchrun --nproc_per_node=N -m radiossl pretrain ...\n\n"
    "--monitor-task TASK --monitor-data RAW_DIR probes the encoder every --monitor-every epochs while it "
    "trains (results in <run>/monitor/probes.jsonl and as probe_val_dice in metrics.jsonl)."
)


PRETRAIN_FIELDS: dict[str, str] = {
    **TRAINING_FIELDS,
    "tensorboard": "logging.tensorboard",
    "monitor_task": "monitoring.probe_task",
    "monitor_data": "monitoring.probe_data",
    "monitor_every": "monitoring.probe_every",
}
"""Each ``pretrain`` option that sets a config field, and the field."""


def pretrain_flags(**given: Any) -> dict[str, Any]:
    """The nested config dict of the given options (by parameter name; None and non-config options left out)."""
    return config_flags(given, PRETRAIN_FIELDS)


def register(app: typer.Typer) -> None:
    @app.command("pretrain", help=COMMAND_HELP)
    @handle_errors
    def pretrain_command(
        ctx: typer.Context,
        method: Annotated[
            str | None, typer.Option("--method", "-m", help="Pretext method (see `radiossl plugins list`).")
        ] = None,
        data: ProcessedDataOption = None,
        out: RunsOutOption = None,
        epochs: EpochsOption = None,
        batch_size: BatchSizeOption = None,
        lr: LrOption = None,
        resume: ResumeOption = None,
        extend_epochs: ExtendEpochsOption = None,
        vis: Annotated[
            bool | None, typer.Option("--vis/--no-vis", help="Write PNG visualisations to <run>/vis.")
        ] = None,
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
        device: DeviceOption = None,
        workers: WorkersOption = None,
        amp: AmpOption = None,
        width: WidthOption = None,
        tensorboard: Annotated[
            bool | None, typer.Option("--tensorboard/--no-tensorboard", help="Also log to TensorBoard.")
        ] = None,
        verbose: VerboseOption = None,
        monitor_task: Annotated[
            str | None,
            typer.Option(
                "--monitor-task",
                help="Probe the encoder during pretraining on this task (see `radiossl plugins list`): a "
                "frozen-encoder probe in a subprocess, its Dice logged as probe_val_dice.",
                show_default=False,
            ),
        ] = None,
        monitor_data: Annotated[
            Path | None,
            typer.Option("--monitor-data", help="Raw dataset folder of --monitor-task.", show_default=False),
        ] = None,
        monitor_every: Annotated[
            int | None,
            typer.Option(
                "--monitor-every",
                min=1,
                help="Probe every N epochs and after the last (default 10).",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Pretrain a 3D U-Net encoder with a self-supervised method (help text: COMMAND_HELP)."""
        from radiossl.commands.progress import console_progress
        from radiossl.pretext.base import load_pretrain_config
        from radiossl.pretext.pretrain import pretrain

        flags = pretrain_flags(**given_options(ctx))
        cfg = load_pretrain_config(method, config, tuple(overrides or ()), flags)
        with console_progress():  # rank 0 ends with a table of the run, its checkpoints and folder
            pretrain(cfg, resume=resume, extend_epochs=extend_epochs)
