"""The frozen-encoder segmentation probe: ``radiossl probe``, :func:`probe` and :class:`ProbeTask`.

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

from torch import nn

from radiossl.downstream.finetune import FinetuneResult, FinetuneTask, finetune
from radiossl.downstream.freezing import freeze
from radiossl.engine.progress import current_reporter

if TYPE_CHECKING:
    from radiossl.downstream.config import FinetuneConfig

RANDOM_ENCODER_WARNING = (
    "warning: probing a random, frozen encoder (no --weights): this is the random-features baseline, "
    "not a measure of any pretraining"
)


class ProbeTask(FinetuneTask):
    """:class:`FinetuneTask` with a :class:`~radiossl.models.probe_net.ProbeNet`: encoder frozen, head trained."""

    kind: str = "probe"

    def build_model(self) -> nn.Module:
        from radiossl.models.probe_net import HEAD, ProbeNet

        cfg = self.config
        model = ProbeNet(self.build_backbone(), out_channels=self.task.out_channels)
        if cfg.weights is not None and cfg.transfer != "none":
            self.load_report = self._load_weights(model)
        else:
            _print(RANDOM_ENCODER_WARNING)
        self.freeze_report = freeze(model, "last")  # the head is the network's only head_prefixes
        head = sum(p.numel() for name, p in model.named_parameters() if name.startswith(HEAD + "."))
        _print(
            f"probe: encoder frozen ({len(self.freeze_report.frozen)} parameter tensors, "
            f"{len(self.freeze_report.frozen_norms)} norm layers in eval mode); the head trains "
            f"({len(self.freeze_report.trainable)} tensors, {head} parameters, on {len(model.stage_channels)} stages)"
        )
        return model

    def run_name_parts(self) -> list[str]:
        cfg = self.config
        source = "random" if cfg.weights is None or cfg.transfer == "none" else Path(cfg.weights).stem
        return [source, f"r{round(100 * cfg.data.ratio)}"]


def probe(
    config: FinetuneConfig,
    resume: str | Path | None = None,
    extend_epochs: int | None = None,
    run_dir: str | Path | None = None,
) -> FinetuneResult:
    """Train a frozen-encoder probe of ``config`` (its ``mode`` set to ``probe``); see :func:`finetune`."""
    config = type(config).model_validate({**config.model_dump(), "mode": "probe"})  # validated: train must be all
    return finetune(config, resume=resume, extend_epochs=extend_epochs, run_dir=run_dir)


def _print(message: str) -> None:
    current_reporter().message(message)
