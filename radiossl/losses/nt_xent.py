"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., ICML 2020).

For ``N`` pairs of embeddings ``(z1_i, z2_i)`` (two views of sample ``i``), every one of the ``2N``
embeddings is a query whose positive is the other view of its sample and whose negatives are the
other ``2N - 2`` embeddings:

    ℓ(a) = -log( exp(s(a, a⁺)/τ) / Σ_{b ≠ a} exp(s(a, b)/τ) ),   loss = mean over the 2N queries,

with ``s`` the cosine similarity and ``τ`` the temperature. Under DDP the candidates are the pairs of
*every* rank, gathered with gradients (:func:`radiossl.ops.gather.gather_with_grad`), and each rank
averages over its own queries, so the loss and, after DDP's gradient average, the gradients equal
those of one process holding the whole batch.

Example:
    >>> import torch
    >>> z = torch.eye(4)
    >>> round(float(nt_xent_loss(z, z, temperature=1.0)), 4)   # -log(e / (e + 6)): positives at cos 1, others 0
    1.1654
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from radiossl.ops.gather import distributed_world, gather_with_grad


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, distributed: bool = True
) -> torch.Tensor:
    """Mean NT-Xent of the pairs ``(z1[i], z2[i])`` (float32; see the module docstring).

    Args:
        z1, z2: ``[N, D]`` embeddings of the two views (normalised here; any scale).
        temperature: τ > 0.
        distributed: under a process group, use every rank's pairs as candidates (with gradients).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"expected two [N, D] embeddings of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    q1 = F.normalize(z1.float(), dim=1)
    q2 = F.normalize(z2.float(), dim=1)
    world_size, rank = distributed_world() if distributed else (1, 0)
    all1 = gather_with_grad(q1) if world_size > 1 else q1
    all2 = gather_with_grad(q2) if world_size > 1 else q2
    rows, total = q1.shape[0], all1.shape[0]
    queries = torch.cat([q1, q2])
    candidates = torch.cat([all1, all2])
    logits = queries @ candidates.T / temperature
    own = rank * rows + torch.arange(rows, device=z1.device)
    self_columns = torch.cat([own, total + own])
    positive_columns = torch.cat([total + own, own])
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * rows, device=z1.device), self_columns] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, positive_columns)


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent_loss`."""

    def __init__(self, temperature: float = 0.5, distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.distributed = distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent_loss(z1, z2, self.temperature, self.distributed)
