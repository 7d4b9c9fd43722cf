"""Run by tests/losses/test_nt_xent_ddp.py under torchrun: each rank holds half of one batch of pairs.

Writes ``OUT/rank0.json`` with, for the gathered loss and for the rank-local loss, the loss averaged
over the ranks and the gradients of a shared linear projection averaged over the ranks (what DDP does).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from radiossl.losses.nt_xent import nt_xent_loss

PAIRS, DIM, TEMPERATURE = 8, 5, 0.5


def inputs_and_projection() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    """The whole batch and the projection, identical in every process (and in the test)."""
    torch.manual_seed(0)
    return torch.randn(PAIRS, DIM), torch.randn(PAIRS, DIM), torch.nn.Linear(DIM, 3)


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x1, x2, projection = inputs_and_projection()
    rows = slice(rank * PAIRS // world, (rank + 1) * PAIRS // world)
    results = {}
    for mode in ("gathered", "local"):
        projection.zero_grad()
        loss = nt_xent_loss(projection(x1[rows]), projection(x2[rows]), TEMPERATURE, distributed=mode == "gathered")
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        grads = []
        for parameter in projection.parameters():
            assert parameter.grad is not None
            grad = parameter.grad.clone()
            dist.all_reduce(grad)
            grads.append((grad / world).tolist())
        results[mode] = {"loss": float(mean_loss) / world, "grads": grads}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "rank0.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
