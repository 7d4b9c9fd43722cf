"""Cluster-usage statistics: is a clustering pretext using its K clusters, or collapsing?

From hard assignments (argmax of probabilities, or integer labels) over many positions:

* ``used`` — number of clusters that receive at least one position;
* ``used_fraction`` — ``used / K``;
* ``entropy`` — entropy of the assignment histogram divided by ``log K``: 1 = every cluster equally
  often, 0 = everything in one cluster (collapse). For K = 1 it is defined as 1.

Example:
    >>> import torch
    >>> usage = cluster_usage(torch.tensor([0, 0, 1, 1]), k=4)
    >>> usage.used, usage.used_fraction, round(usage.entropy, 3)
    (2, 0.5, 0.5)
    >>> usage_metrics(torch.tensor([0, 0, 1, 1]), k=4, prefix="pred_")["pred_clusters_used"]
    2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClusterUsage:
    """Usage of K clusters by a set of hard assignments."""

    used: int
    used_fraction: float
    entropy: float


def hard_assignments(values: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Cluster ids: ``argmax`` over ``dim`` of floating scores/probabilities; integer labels unchanged."""
    if values.is_floating_point():
        return values.argmax(dim=dim)
    return values


def cluster_usage(values: torch.Tensor, k: int, dim: int = 1, mask: torch.Tensor | None = None) -> ClusterUsage:
    """Usage statistics of ``values`` (scores with the cluster axis ``dim``, or integer labels in ``[0, k)``).

    ``mask`` (boolean, same shape as the labels) restricts the count to selected positions.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    labels = hard_assignments(values.detach(), dim)
    if mask is not None:
        labels = labels[mask.to(torch.bool)]
    labels = labels.reshape(-1).to(torch.int64)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"cluster ids must lie in [0, {k}), got range [{int(labels.min())}, {int(labels.max())}]")
    counts = torch.bincount(labels, minlength=k).to(torch.float64)
    total = float(counts.sum())
    used = int((counts > 0).sum())
    if total == 0:
        return ClusterUsage(used=0, used_fraction=0.0, entropy=0.0)
    if k == 1:
        return ClusterUsage(used=used, used_fraction=1.0, entropy=1.0)
    p = counts[counts > 0] / total
    entropy = float(-(p * p.log()).sum()) / math.log(k)
    return ClusterUsage(used=used, used_fraction=used / k, entropy=min(max(entropy, 0.0), 1.0))


def usage_metrics(
    values: torch.Tensor, k: int, prefix: str = "", dim: int = 1, mask: torch.Tensor | None = None
) -> dict[str, float]:
    """:func:`cluster_usage` as floats: ``{prefix}clusters_used``, ``..._used_fraction``, ``..._entropy``."""
    usage = cluster_usage(values, k, dim, mask)
    return {
        f"{prefix}clusters_used": float(usage.used),
        f"{prefix}clusters_used_fraction": usage.used_fraction,
        f"{prefix}cluster_entropy": usage.entropy,
    }
