"""Sinkhorn-Knopp equipartition of soft assignments (SwAV targets), computed in the log domain.

Given similarity scores ``[N, K]`` of N samples to K prototypes, :func:`sinkhorn_knopp` returns
assignments ``Q`` of the same shape whose rows are probability distributions over the prototypes
and whose column marginals approach the uniform ``1/K`` (each prototype receives ``N/K`` samples
in total). It solves the entropy-regularised transport problem

    max_Q  tr(Q^T S) + ε H(Q)   s.t.  Q 1_K = 1_N,  Q^T 1_N = (N/K) 1_K

by alternately rescaling prototypes and samples of ``exp(S / ε)``; the last rescaling is always
over samples, so rows are exact distributions after any number of iterations. Working with
``log Q`` and ``logsumexp`` keeps it finite for any ε and score range in float32 and float64.

Example:
    >>> import torch
    >>> q = sinkhorn_knopp(torch.randn(64, 5), epsilon=0.5, iterations=50)
    >>> bool(torch.allclose(q.sum(1), torch.ones(64), atol=1e-5))
    True
    >>> bool(torch.allclose(q.mean(0), torch.full((5,), 0.2), atol=1e-3))
    True
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist


def _global_logsumexp_over_samples(log_q: torch.Tensor, distributed: bool) -> torch.Tensor:
    """``log Σ_n exp(log_q[n, k])`` per prototype, over the samples of every process when ``distributed``."""
    if not distributed:
        return torch.logsumexp(log_q, dim=0)
    peak = log_q.amax(dim=0)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    total = torch.exp(log_q - peak).sum(dim=0)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return torch.log(total) + peak


def _use_distributed(distributed: bool) -> bool:
    return distributed and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    iterations: int = 3,
    distributed: bool = False,
) -> torch.Tensor:
    """Equipartitioned soft assignments of samples (rows) to prototypes (columns); no gradient.

    Args:
        scores: ``[N, K]`` similarities (e.g. cosines of normalised embeddings and prototypes).
        epsilon: entropy weight; smaller = sharper assignments (SwAV and the thesis use 0.05).
        iterations: Sinkhorn iterations (one prototype rescaling + one sample rescaling each);
            0 returns ``softmax(scores / epsilon)`` per row.
        distributed: when True and a process group with several ranks is initialised, the
            prototype marginals are computed over the samples of every rank (the global batch, as
            DataParallel did in the thesis); otherwise over this process's samples only.

    Returns:
        ``[N, K]`` assignments in float32 (float64 inputs stay float64); every row sums to 1 and,
        as ``iterations`` grows, every column sums to ``N / K``.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [N, K], got shape {tuple(scores.shape)}")
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    log_q = scores.detach().to(dtype) / epsilon
    n_samples, k = log_q.shape
    use_dist = _use_distributed(distributed)
    if use_dist:
        count = torch.tensor([float(n_samples)], dtype=dtype, device=log_q.device)
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        total_samples = float(count.item())
    else:
        total_samples = float(n_samples)
    # The initial global normalisation (Q / ΣQ) of the original algorithm is a constant factor that the
    # first prototype rescaling absorbs, so it is omitted.
    log_k = math.log(k)
    log_n = math.log(max(total_samples, 1.0))
    for _ in range(iterations):
        # each prototype's total mass -> 1/K
        log_q = log_q - _global_logsumexp_over_samples(log_q, use_dist) - log_k
        # each sample's total mass -> 1/N
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - log_n
    # final per-sample normalisation: rows become distributions (= N·Q of the original formulation)
    log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True)
    return torch.exp(log_q)


def scrambled_reshape(assignments: torch.Tensor, batch: int, patches: int) -> torch.Tensor:
    """The thesis' transpose-then-reshape of ``[B·N, K]`` assignments into ``[B, N, K]`` (legacy only).

    The thesis transposed the ``[B·N, K]`` Sinkhorn output to ``[K, B·N]`` and reshaped that buffer
    to ``[B, N, K]``, which mixes patches and prototypes (rows no longer sum to 1). The correct
    target is ``assignments.reshape(batch, patches, K)``.
    """
    total, k = assignments.shape
    if total != batch * patches:
        raise ValueError(f"assignments have {total} rows, expected batch * patches = {batch * patches}")
    return assignments.t().reshape(batch, patches, k)
