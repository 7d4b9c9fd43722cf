"""``radiossl finetune``: train a 3D U-Net on a segmentation task, from scratch or from pretrained weights.

Options map onto config fields through ``FINETUNE_FIELDS`` (``--data`` -> ``data.root``, ``--ratio`` ->
``data.ratio``, ...).
Precedence: class defaults < task defaults < ``--config FILE`` < ``--set a.b=v`` < flags.
Exit code 1 when some cases could not be loaded: training ran on the others, and the left-out cases
are listed (and in ``<run>/splits.json``). Torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radiossl.commands.common import (
    EXIT_FAILURES,
    TRAINING_FIELDS,
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
    console,
    given_options,
    handle_errors,
)

COMMAND_HELP = (
    "Finetune a 3D U-Net on a segmentation task (brats, lits, nnunet or a plugin) from a raw dataset.\n\n"
    "Starts from scratch or from --weights (a radiossl or foreign checkpoint; --transfer encoder|all). "
    "Validates with hard Dice on whole validation volumes and keeps checkpoint_best.pt. Writes the run "
    "folder under --out. For several GPUs: torchrun --nproc_per_node=N -m radiossl finetune ..."
)


FINETUNE_FIELDS: dict[str, str] = {
    **TRAINING_FIELDS,
    "ratio": "data.ratio",
    "weights": "weights",
    "transfer": "transfer",
    "train": "train",
    "allow_unsafe_pickle": "allow_unsafe_pickle",
}
"""Each ``finetune`` option that sets a config field, and the field."""


def finetune_flags(**given: Any) -> dict[str, Any]:
    """The nested config dict of the given options (by parameter name; None and non-config options left out)."""
    return config_flags(given, FINETUNE_FIELDS)


def register(app: typer.Typer) -> None:
    @app.command("finetune", help=COMMAND_HELP)
    @handle_errors
    def finetune_command(
        ctx: typer.Context,
        task: TaskOption = None,
        data: RawDataOption = None,
        out: RunsOutOption = None,
        weights: Annotated[
            Path | None, typer.Option("--weights", help="Checkpoint to start from (default: from scratch).")
        ] = None,
        transfer: Annotated[
            str | None, typer.Option("--transfer", help="What to load from --weights: encoder, all or none.")
        ] = None,
        train: Annotated[
            str | None, typer.Option("--train", help="What trains: all, decoder (encoder frozen) or last.")
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
        """Finetune a 3D U-Net on a segmentation task (help text: COMMAND_HELP)."""
        from radiossl.commands.progress import console_progress
        from radiossl.downstream.config import load_task_config
        from radiossl.downstream.finetune import finetune

        flags = finetune_flags(**given_options(ctx))
        cfg = load_task_config("finetune", task, config, tuple(overrides or ()), flags)
        with console_progress():  # rank 0 ends with a table of the run, its checkpoints and folder
            result = finetune(cfg, resume=resume, extend_epochs=extend_epochs)
        report_left_out(result)


def report_left_out(result: Any) -> None:
    """Print the cases a finetune (or probe) run left out (rank 0 only); exit 1 when there are any."""
    if result.is_main and result.left_out:  # under torchrun only rank 0 reports
        out_console = console()
        splits_json = result.run_dir / "splits.json"
        out_console.print(
            f"[red]{len(result.left_out)} case(s) left out[/] (trained without them; listed in {splits_json}):"
        )
        for case in result.left_out:  # unwrapped and without markup: paths stay intact
            line = f"  {case['split']} {case['case']}: {case['error']}"
            out_console.print(line, markup=False, soft_wrap=True)
    if result.left_out:
        raise typer.Exit(EXIT_FAILURES)
