"""Collapse statistics of embeddings: effective rank, spread per dimension, and a collapse monitor.

A self-supervised encoder *collapses* when its embeddings stop carrying information: all samples map
to one point (complete collapse) or to a low-dimensional subspace (dimensional collapse). Two
numbers, computed on a batch of pooled bottleneck embeddings ``[N, D]``, show both:

* :func:`effective_rank` (RankMe, Garrido et al., ICML 2023): ``exp`` of the entropy of the
  normalised singular values; ``D`` for isotropic embeddings, ``1`` when all lie on one line.
* :func:`spread_ratio` (the collapse check of SimSiam, Chen & He, CVPR 2021): the mean per-dimension
  standard deviation of the L2-normalised embeddings, times ``sqrt(D)``; about 1 for isotropic
  embeddings, 0 when every sample has the same direction.

:class:`CollapseMonitor` turns them into a one-line warning once both stay low for several epochs.

Example:
    >>> import torch
    >>> healthy = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    >>> round(effective_rank(healthy)), round(spread_ratio(healthy), 1)
    (8, 1.0)
    >>> collapsed = torch.ones(256, 1) * torch.randn(1, 8)
    >>> round(effective_rank(collapsed)), round(spread_ratio(collapsed), 1)
    (1, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

_EPSILON = 1e-7


def pooled_embeddings(features: torch.Tensor) -> torch.Tensor:
    """Global-average-pool a feature map ``[B, C, *spatial]`` to embeddings ``[B, C]`` (float32)."""
    if features.dim() < 2:
        raise ValueError(f"features must be [B, C, ...], got shape {tuple(features.shape)}")
    return features.detach().float().flatten(2).mean(dim=2) if features.dim() > 2 else features.detach().float()


def effective_rank(embeddings: torch.Tensor) -> float:
    """RankMe effective rank of ``[N, D]`` embeddings, in ``[1, min(N, D)]`` (0.0 for all-zero input)."""
    matrix = _check(embeddings)
    singular = torch.linalg.svdvals(matrix.double())
    total = singular.sum()
    if total <= 0:
        return 0.0
    share = singular / total + _EPSILON
    return float(torch.exp(-(share * share.log()).sum()))


def spread_ratio(embeddings: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised embeddings times ``sqrt(D)`` (≈1 healthy, 0 collapsed)."""
    matrix = _check(embeddings)
    if matrix.shape[0] < 2:
        raise ValueError("spread_ratio needs at least 2 embeddings")
    unit = torch.nn.functional.normalize(matrix.double(), dim=1)
    return float(unit.std(dim=0, unbiased=True).mean() * math.sqrt(matrix.shape[1]))


def _check(embeddings: torch.Tensor) -> torch.Tensor:
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {tuple(embeddings.shape)}")
    return embeddings.detach().float()


@dataclass
class CollapseMonitor:
    """Warns once when the embeddings look collapsed for ``patience`` epochs in a row.

    An epoch counts as collapsed when the effective rank is below ``rank_fraction`` of the embedding
    dimension (or of the batch size, if smaller) *or* the spread ratio is below ``min_spread``.
    The state (:meth:`state_dict`) goes into checkpoints, so a resumed run warns exactly when the
    uninterrupted run would have.

    Example:
        >>> monitor = CollapseMonitor(patience=2)
        >>> [monitor.update(epoch, rank=1.0, spread=0.01, dimension=64) is not None for epoch in range(3)]
        [False, True, False]
    """

    rank_fraction: float = 0.05
    min_spread: float = 0.05
    patience: int = 3
    low_epochs: int = 0
    warned: bool = False
    history: list[int] = field(default_factory=list)

    def update(self, epoch: int, rank: float, spread: float, dimension: int) -> str | None:
        """Record one epoch (0-based) and its statistics; the warning text (epochs counted from 1, as the console
        shows them) the first time collapse lasts ``patience`` epochs."""
        collapsed = rank < self.rank_fraction * dimension or spread < self.min_spread
        self.low_epochs = self.low_epochs + 1 if collapsed else 0
        if collapsed:
            self.history.append(epoch)
        if self.low_epochs >= self.patience and not self.warned:
            self.warned = True
            return (
                f"embeddings look collapsed since epoch {epoch - self.patience + 2}: effective rank {rank:.1f} "
                f"of {dimension} dimensions, spread {spread:.3f} (healthy is about 1); check the learning rate, "
                "the augmentations and the method's temperature"
            )
        if not collapsed:
            self.warned = False
        return None

    def state_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return {"low_epochs": self.low_epochs, "warned": self.warned, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.low_epochs = int(state.get("low_epochs", 0))
        self.warned = bool(state.get("warned", False))
        self.history = [int(epoch) for epoch in state.get("history", [])]
