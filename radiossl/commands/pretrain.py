"""``radiossl pretrain``: self-supervised pretraining with a registered pretext method.

Flags map onto config fields (``--data`` -> ``data.root``, ``--epochs`` -> ``optim.epochs``, ...).
Precedence: class defaults < method defaults < ``--config FILE`` < ``--set a.b=v`` < flags.
Torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radiossl.commands.common import (
    AmpOption,
    BatchSizeOption,
    ConfigOption,
    DeviceOption,
    EpochsOption,
    ExtendEpochsOption,
    LrOption,
    ResumeOption,
    SeedOption,
    SetOption,
    VerboseOption,
    WidthOption,
    WorkersOption,
    flags_dict,
    handle_errors,
)

COMMAND_HELP = (
    "Pretrain a 3D U-Net encoder with a self-supervised method on a preprocessed folder.\n\n"
    "Writes config.yaml, metrics.jsonl, checkpoint_{latest,best,final}.pt (and vis/ PNGs) into a run folder "
    "under --out. For several GPUs: torchrun --nproc_per_node=N -m radiossl pretrain ..."
)


def pretrain_flags(
    data: Path | None = None,
    out: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    vis: bool | None = None,
    seed: int | None = None,
    device: str | None = None,
    workers: int | None = None,
    amp: str | None = None,
    width: float | None = None,
    tensorboard: bool | None = None,
    verbose: bool | None = None,
) -> dict[str, Any]:
    """The nested config dict of the explicit command-line flags (absent flags are left out)."""
    flags = flags_dict(
        data={"root": data, "workers": workers},
        optim={"epochs": epochs, "batch_size": batch_size, "lr": lr},
        runtime={"seed": seed, "device": device, "amp": amp},
        model={"width": width},
        logging={"vis": vis, "tensorboard": tensorboard, "verbose": verbose},
    )
    if out is not None:
        flags["out"] = out
    return flags


def register(app: typer.Typer) -> None:
    @app.command("pretrain", help=COMMAND_HELP)
    @handle_errors
    def pretrain_command(
        method: Annotated[
            str | None, typer.Option("--method", "-m", help="Pretext method (see `radiossl plugins list`).")
        ] = None,
        data: Annotated[Path | None, typer.Option("--data", help="Preprocessed folder.")] = None,
        out: Annotated[Path | None, typer.Option("--out", help="Folder under which the run folder is made.")] = None,
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
    ) -> None:
        """Pretrain a 3D U-Net encoder with a self-supervised method (help text: COMMAND_HELP)."""
        from radiossl.commands.progress import console_progress
        from radiossl.pretext.base import load_pretrain_config
        from radiossl.pretext.pretrain import pretrain

        flags = pretrain_flags(
            data, out, epochs, batch_size, lr, vis, seed, device, workers, amp, width, tensorboard, verbose
        )
        cfg = load_pretrain_config(method, config, tuple(overrides or ()), flags)
        with console_progress():  # rank 0 ends with a table of the run, its checkpoints and folder
            pretrain(cfg, resume=resume, extend_epochs=extend_epochs)
