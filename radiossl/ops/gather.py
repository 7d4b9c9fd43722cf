"""Gather a tensor from every DDP rank with gradients: the one place contrastive losses see the global batch.

``torch.distributed.all_gather`` returns tensors that are cut off from autograd, so a loss that uses
other ranks' embeddings as negatives would get no gradient through them. :func:`gather_with_grad`
concatenates the rows of every rank (rank 0 first) and, in the backward pass, sums the gradient that
every rank's loss sends to each row and hands each rank the part for its own rows.

With that sum, a loss computed per rank over its own positives but against the gathered candidates,
followed by DDP's gradient *average*, gives exactly the gradients of the same loss computed in one
process on the concatenated batch (equal per-rank batch sizes): rank ``r`` back-propagates
``Σ_q ∂L_q/∂z_r`` into its network and DDP divides by the world size, which is ``∂L/∂z_r`` of
``L = mean_q L_q``. ``tests/losses/test_nt_xent_ddp.py`` checks this with two gloo processes.

Outside a process group (one process) the input is returned unchanged.

Example:
    >>> import torch
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> gather_with_grad(x) is x        # no process group: nothing to gather
    True
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def distributed_world() -> tuple[int, int]:
    """``(world_size, rank)`` of the current process group, ``(1, 0)`` outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        world_size, rank = distributed_world()
        sizes = torch.tensor([x.shape[0]], device=x.device)
        all_sizes = [torch.zeros_like(sizes) for _ in range(world_size)]
        dist.all_gather(all_sizes, sizes)
        if any(int(s) != x.shape[0] for s in all_sizes):
            raise ValueError(
                f"gather_with_grad needs the same number of rows on every rank, got {[int(s) for s in all_sizes]}"
            )
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = rank, x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` from every rank, concatenated in rank order, differentiable (see the module docstring).

    Every rank must pass the same number of rows. Returns ``x`` itself outside a process group.
    """
    world_size, _ = distributed_world()
    if world_size == 1:
        return x
    out: torch.Tensor = _GatherWithGrad.apply(x)
    return out
