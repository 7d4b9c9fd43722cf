"""The frozen-encoder segmentation probe: ``radiossl probe`` and :func:`probe` (the task is :class:`ProbeTask`).

A probe is a finetuning run (``mode: probe``) whose network is a :class:`~radiossl.models.probe_net.ProbeNet`:
the backbone's encoder, loaded from ``weights`` by the usual loader (its match report is shown) and then
frozen, plus a 1×1×1 convolution per encoder stage whose upsampled outputs are summed into the region
logits. Only that head trains, so a probe takes minutes on a CPU where finetuning takes hours on a GPU,
and its Dice says how linearly the encoder's features already separate the task's regions.

Everything else is finetuning's: the task plugin, the split and the nested ``data.ratio`` subsets, the
patches and augmentation, the loss, validation by sliding window, checkpoints (``checkpoint_best.pt``),
resume and the run folder (named ``probe-<task>-...``). ``radiossl evaluate`` reads a probe's
checkpoint like a finetuned one. A probe without weights (or with ``transfer: none``) probes a random
frozen encoder: the random-features baseline, announced in one line.

Example (CPU, tiny)::

    from radiossl.downstream.config import load_task_config
    from radiossl.downstream.probe import probe
    flags = {"data": {"root": "phantoms/brats", "crop_size": [32, 32, 16]}, "model": {"width": 0.125},
             "optim": {"epochs": 2}, "weights": "runs/pretrain-.../checkpoint_final.pt"}
    result = probe(load_task_config("finetune", "brats", flags=flags))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from radiossl.downstream.finetune import RANDOM_ENCODER_WARNING, FinetuneResult, ProbeTask, finetune

if TYPE_CHECKING:
    from radiossl.downstream.config import FinetuneConfig


def probe(
    config: FinetuneConfig,
    resume: str | Path | None = None,
    extend_epochs: int | None = None,
    run_dir: str | Path | None = None,
) -> FinetuneResult:
    """Train a frozen-encoder probe of ``config`` (its ``mode`` set to ``probe``); see :func:`finetune`."""
    config = type(config).model_validate({**config.model_dump(), "mode": "probe"})  # validated: train must be all
    return finetune(config, resume=resume, extend_epochs=extend_epochs, run_dir=run_dir)


__all__ = ["RANDOM_ENCODER_WARNING", "ProbeTask", "probe"]
