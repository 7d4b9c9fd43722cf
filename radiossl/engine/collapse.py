"""Collapse monitoring during training: embeddings of a few training samples per epoch, their statistics, a warning.

Every epoch the engine asks the task for the embeddings of the first batches (``task.embeddings``, by
default :func:`bottleneck_embeddings`), until ``monitoring.samples`` rows are in hand over all
processes. The forward runs without gradients and in eval mode (running normalisation statistics; the
modules' training flags are restored afterwards), so it changes neither the weights, nor the running
statistics, nor any random stream: a run with monitoring trains exactly as one without. At the end
of the epoch every rank gathers all ranks' rows (the same number in total whatever the world size),
computes :func:`~radiossl.ops.embedding_stats.effective_rank` and
:func:`~radiossl.ops.embedding_stats.spread_ratio` (logged as ``emb_rank`` and ``emb_spread``) and
updates a :class:`~radiossl.ops.embedding_stats.CollapseMonitor`, whose state goes into checkpoints.

Example:
    >>> import torch
    >>> from radiossl.models import UNet3D
    >>> net = UNet3D(width=0.125)
    >>> bottleneck_embeddings(net, (torch.zeros(2, 1, 16, 16, 16), "other fields")).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from radiossl.errors import TrainingError
from radiossl.ops.embedding_stats import CollapseMonitor, effective_rank, pooled_embeddings, spread_ratio

EmbeddingHook = Callable[[nn.Module, Any], "torch.Tensor | None"]


def first_input(batch: Any) -> torch.Tensor | None:
    """The batch's first input view: the batch itself if a tensor, else its first tensor field (tuples, lists,
    named tuples, dicts in insertion order); ``None`` when it holds none."""
    if isinstance(batch, torch.Tensor):
        return batch
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else ()
    return next((value for value in values if isinstance(value, torch.Tensor)), None)


def bottleneck_embeddings(model: nn.Module, batch: Any) -> torch.Tensor | None:
    """``[B, C]``: the global-average-pooled bottleneck of the batch's first input view.

    Uses the backbone interface (``model.encode(x)[-1]``, through DDP/compile wrappers); ``None`` when
    the network has no ``encode`` or the batch no tensor (the monitor then stays silent).
    """
    from radiossl.models.factory import unwrap_model

    net = unwrap_model(model)
    encode = getattr(net, "encode", None)
    x = first_input(batch)
    if not callable(encode) or x is None or x.dim() < 3:
        return None
    stages = encode(x)
    return pooled_embeddings(stages[-1])


class CollapseWatch:
    """One run's collapse monitoring: collects rows during an epoch, reports statistics at its end.

    Args:
        settings: the ``monitoring`` section (``samples``, ``rank_fraction``, ``min_spread``, ``patience``).
        hook: ``task.embeddings``.
        world_size: processes in the job; each collects ``ceil(samples / world_size)`` rows.
        label: the task's name for error messages.
    """

    def __init__(self, settings: Any, hook: EmbeddingHook, world_size: int, label: str) -> None:
        self.samples = int(settings.samples)
        self.per_rank = -(-self.samples // max(world_size, 1))
        self.hook = hook
        self.label = label
        self.monitor = CollapseMonitor(
            rank_fraction=float(settings.rank_fraction),
            min_spread=float(settings.min_spread),
            patience=int(settings.patience),
        )
        self.silent = False  # the task cannot say what its embeddings are
        self.rows: list[torch.Tensor] = []
        self.count = 0

    def start_epoch(self) -> None:
        """Forget the previous epoch's rows."""
        self.rows, self.count = [], 0

    @property
    def wants_more(self) -> bool:
        """Whether this rank still collects rows this epoch."""
        return not self.silent and self.count < self.per_rank

    def collect(self, model: nn.Module, batch: Any, autocast: Any) -> None:
        """Embed ``batch`` (on the device) with ``model`` in eval mode, without gradients; keep what is needed."""
        if not self.wants_more:
            return
        flags = [(module, module.training) for module in model.modules()]
        top = model.training
        model.eval()
        try:
            with torch.no_grad(), autocast:
                embeddings = self.hook(model, batch)
        finally:
            model.train(top)  # a module's own train() (e.g. a composite's backbone object) sees the mode
            for module, flag in flags:
                module.training = flag
        if embeddings is None:
            self.silent = True
            return
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
            shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
            raise TrainingError(f"{self.label}.embeddings must return a [batch, dimension] tensor or None, got {shape}")
        kept = embeddings.detach()[: self.per_rank - self.count].float().cpu()
        self.rows.append(kept)
        self.count += kept.shape[0]

    def local_rows(self) -> torch.Tensor | None:
        """This rank's rows of the epoch (``None``: none collected)."""
        return torch.cat(self.rows) if self.rows else None

    def end_epoch(self, epoch: int, gathered: list[torch.Tensor | None]) -> tuple[dict[str, float], str | None]:
        """Statistics of every rank's rows (rank order, at most ``samples``) and the warning, if this epoch brings it.

        ``epoch`` counts from 0. Fewer than two rows in all: no statistics and no monitor update.
        """
        parts = [rows for rows in gathered if rows is not None and rows.shape[0]]
        if not parts:
            return {}, None
        embeddings = torch.cat(parts)[: self.samples]
        if embeddings.shape[0] < 2 or not bool(torch.isfinite(embeddings).all()):
            return {}, None
        rank, spread = effective_rank(embeddings), spread_ratio(embeddings)
        dimension = min(embeddings.shape[0], embeddings.shape[1])
        warning = self.monitor.update(epoch, rank=rank, spread=spread, dimension=dimension)
        return {"emb_rank": rank, "emb_spread": spread}, warning

    def state_dict(self) -> dict[str, Any]:
        """The monitor's state, for checkpoints."""
        return self.monitor.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.monitor.load_state_dict(state)
