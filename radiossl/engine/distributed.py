"""Distributed data parallel through ``torchrun``: process-group setup, samplers, reductions, barriers.

radiossl never spawns processes itself. Launch any training command with ``torchrun`` and every
process reads its rank from the environment (``env://``)::

    torchrun --nproc_per_node=4 -m radiossl pretrain --method patch-cluster --data PROC --out runs

The backend is NCCL for CUDA devices and Gloo otherwise (CPU, tests). Only rank 0 writes files;
metrics are averaged over ranks with :func:`all_reduce_mean`; validation runs on every rank so that
no rank waits in a collective while another one works alone.

Example (single process: everything degrades to no-ops):
    >>> info = DistInfo()
    >>> info.is_main, info.world_size
    (True, 1)
    >>> all_reduce_mean({"loss": 2.0}, info)
    {'loss': 2.0}
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from radiossl.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly one-process) job."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints progress."""
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Rank information from the ``torchrun`` environment variables (one process if they are absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"malformed torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {exc}") from exc
    return DistInfo(world_size=max(world, 1), rank=rank, local_rank=local)


def init_distributed(device_type: str, timeout_minutes: float = 30.0) -> tuple[DistInfo, bool]:
    """Join the process group described by the environment, if any.

    Returns the rank information and whether this call created the group (so the caller knows to
    destroy it). Idempotent: an existing group is reused.
    """
    info = env_dist_info()
    if not info.distributed:
        return info, False
    if dist.is_initialized():
        return DistInfo(dist.get_world_size(), dist.get_rank(), info.local_rank), False
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank % max(torch.cuda.device_count(), 1))
    dist.init_process_group(backend=backend, init_method="env://", timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistInfo(dist.get_world_size(), dist.get_rank(), info.local_rank), True


def destroy_distributed(created: bool) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if created and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()


def _reduction_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(values: Mapping[str, float], info: DistInfo) -> dict[str, float]:
    """The mean of each named scalar over all ranks (every rank must pass the same keys, in any order)."""
    plain = {key: float(value) for key, value in values.items()}
    if not info.distributed or not plain or not dist.is_initialized():
        return plain
    keys = sorted(plain)
    tensor = torch.tensor([plain[k] for k in keys], dtype=torch.float64, device=_reduction_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= info.world_size
    return {key: float(v) for key, v in zip(keys, tensor.cpu().tolist(), strict=True)}


def all_true(flag: bool, info: DistInfo) -> bool:
    """True only if ``flag`` is true on every rank (used by the non-finite-loss guard)."""
    if not info.distributed or not dist.is_initialized():
        return flag
    tensor = torch.tensor([0.0 if flag else 1.0], device=_reduction_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return bool(tensor.item() == 0.0)


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects; used for the run folder name)."""
    if not info.distributed or not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.distributed or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def make_train_sampler(
    dataset: Any, info: DistInfo, seed: int
) -> torch.utils.data.distributed.DistributedSampler[Any] | None:
    """A shuffling :class:`DistributedSampler` in a distributed job (call ``set_epoch`` each epoch)."""
    if not info.distributed:
        return None
    return torch.utils.data.distributed.DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=False
    )


def make_eval_sampler(dataset: Any, info: DistInfo) -> torch.utils.data.distributed.DistributedSampler[Any] | None:
    """A non-shuffling :class:`DistributedSampler` that splits validation data over the ranks."""
    if not info.distributed:
        return None
    return torch.utils.data.distributed.DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=False, drop_last=False
    )


def wrap_ddp(model: nn.Module, device: torch.device, info: DistInfo, find_unused_parameters: bool) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel in a distributed job; return it unchanged otherwise."""
    if not info.distributed:
        return model
    device_ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )
