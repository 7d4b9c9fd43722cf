"""Distributed data parallel through ``torchrun``: process-group setup, samplers, reductions, barriers.

radiossl never spawns processes itself. Launch any training command with ``torchrun`` and every
process reads its rank from the environment (``env://``)::

    torchrun --nproc_per_node=4 -m radiossl pretrain --method patch-cluster --data PROC --out runs

The backend is NCCL for CUDA devices and Gloo otherwise (CPU, tests). Only rank 0 writes files;
training metrics are averaged over ranks with :func:`all_reduce_mean`. Validation runs on every rank,
each on its own share of the data without the padding a ``DistributedSampler`` adds
(:class:`ShardSampler`), and :func:`reduce_validation` turns the per-rank means into exact means over
the whole validation set (sum of ``mean x samples`` over sum of samples).

**A failure on one rank stops every rank.** Without care, a rank that raises (a ``DataError`` from a
bad file, an out-of-memory error) leaves the others blocked in their next collective until the
process-group timeout (30 minutes). The engine therefore catches exceptions rank-locally and reports
them through collectives every rank reaches anyway:

* per training step, in the one all-reduce the non-finite-loss guard already needs
  (:func:`step_status`: two numbers instead of one, so no extra per-step communication). It covers
  the forward pass, the loss and loading the *next* batch (fetched before the check, so a bad file
  is reported before any rank starts that batch), where nearly all failures happen. A training
  forward contains no collective (see :func:`wrap_ddp`; apart from DDP's one-time bucket rebuild
  at the second step), so a rank that fails in it never leaves the others waiting inside one;
* per epoch, in a one-number all-reduce (:func:`raise_if_any_failed`) after loading the epoch's
  first batch and after the work only rank 0 does (visualising, writing checkpoints; it replaces
  the barrier that followed), and in the exchange that reduces the validation metrics
  (:func:`reduce_validation`).

When any rank failed, every rank learns which one and why (one ``all_gather_object`` of the messages,
only on that path): the failing rank re-raises its own exception, the others raise a
:class:`~radiossl.errors.TrainingError` such as ``rank 1 failed at epoch 3 (batch 7): DataError: ...``.
A failure *inside* a collective's region (e.g. out of memory during ``backward``, while DDP all-reduces
gradients) cannot be reported in-band, and neither can a process that vanishes (killed, its machine
lost): see below.

**A lost rank stops the others within a bounded time, named.** Every collective here, and the
backward pass, runs inside :func:`communicating`: when the process group reports a broken connection
(the peer's process died: at once) or a timeout (the peer is silent: after ``runtime.dist_timeout_s``,
:func:`init_distributed`'s ``timeout_s``), the rank raises a :class:`~radiossl.errors.TrainingError`
such as ``lost contact with rank 1 (host node2) at epoch 3 (batch 7): ...`` (:func:`lost_contact_error`),
and ``torchrun`` ends the job's remaining processes once one exits with an error.

Example (single process: everything degrades to no-ops):
    >>> info = DistInfo()
    >>> info.is_main, info.world_size
    (True, 1)
    >>> all_reduce_mean({"loss": 2.0}, info)
    {'loss': 2.0}
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import nn

from radiossl.config import RuntimeConfig
from radiossl.errors import ConfigError, TrainingError

DEFAULT_TIMEOUT_S = float(RuntimeConfig.model_fields["dist_timeout_s"].default)
"""``runtime.dist_timeout_s``: seconds a collective waits for a peer that went silent (torch's default: 1800)."""

ROLL_CALL_S = 2.0
"""After a lost connection: seconds the surviving ranks wait for each other to tell which rank is gone."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly one-process) job."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    nodes: int = 1  # torchrun agents (machines) in the job: GROUP_WORLD_SIZE
    hosts: tuple[str, ...] = ()  # the host name of every rank, in rank order (known once the group exists)
    timeout_s: float = DEFAULT_TIMEOUT_S  # how long a collective waits for a silent peer
    group_id: str = ""  # the same on every rank of one process group, new for every group

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
        nodes = int(os.environ.get("GROUP_WORLD_SIZE", "1"))
    except ValueError as exc:
        raise ConfigError(
            f"malformed torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK/GROUP_WORLD_SIZE): {exc}"
        ) from exc
    return DistInfo(world_size=max(world, 1), rank=rank, local_rank=local, nodes=max(nodes, 1))


def shared_store_restart_note() -> str | None:
    """A warning when torchrun may restart workers over its shared rendezvous store, else ``None``.

    With ``--max-restarts`` > 0 and the store torchrun shares between its agents and the workers (the
    default since torch 2.5), restarted workers can read their peers' addresses from the failed attempt
    and fail to connect (``Gloo connectFullMesh failed ... Connection refused``; pytorch/pytorch#135712).
    Launching torchrun with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` gives every attempt a fresh store.
    """
    try:
        restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    except ValueError:
        return None
    if restarts < 1 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    return (
        f"note: torchrun may restart the workers (--max-restarts={restarts}) but shares its rendezvous store with "
        "them, where a restart can find the failed attempt's addresses and not connect (pytorch/pytorch#135712); "
        "launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment"
    )


def init_distributed(device_type: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[DistInfo, bool]:
    """Join the process group described by the environment, if any.

    ``timeout_s`` (``runtime.dist_timeout_s``) bounds how long any collective waits for a peer that
    stopped answering without closing its connections (a frozen process, a lost network link).
    Returns the rank information and whether this call created the group (so the caller knows to
    destroy it). Idempotent: an existing group is reused.
    """
    info = env_dist_info()
    if not info.distributed:
        return info, False
    created = False
    if not dist.is_initialized():
        if not dist.is_available():
            raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
        backend = "nccl" if device_type == "cuda" else "gloo"
        _import_dynamo_first()
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank % max(torch.cuda.device_count(), 1))
        dist.init_process_group(backend=backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s))
        created = True
    joined = DistInfo(
        dist.get_world_size(), dist.get_rank(), info.local_rank, nodes=info.nodes, timeout_s=float(timeout_s)
    )
    # one exchange: every rank's host name, and rank 0's random id of this group (the key prefix of
    # the roll call, so that a store that outlives a restart never answers for an earlier group)
    joined_by = gather_objects((socket.gethostname(), uuid.uuid4().hex), joined, "while joining the job")
    hosts = tuple(str(host) for host, _ in joined_by)
    return dataclasses.replace(joined, hosts=hosts, group_id=str(joined_by[0][1])), created


def _import_dynamo_first() -> None:
    """Import ``torch._dynamo`` before the process group exists, never after.

    DistributedDataParallel imports ``torch._dynamo`` in its constructor. When that first import
    happens while a process group exists, torch keeps a reference to the group that
    ``destroy_process_group`` cannot release (torch 2.13): the Gloo worker threads and the store
    client then outlive the group and are torn down only at interpreter exit, which now and then
    aborts the process (``terminate called without an active exception``, SIGABRT) after a run
    that finished. Imported first, the group is released and its threads stop at
    :func:`destroy_distributed`. DDP would pay the import anyway.
    """
    with contextlib.suppress(ImportError):  # a torch build without dynamo: DDP will not import it either
        import torch._dynamo  # noqa: F401


def destroy_distributed(created: bool) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if created and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo, where: str = "at a barrier") -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.distributed and dist.is_initialized():
        with communicating(info, where):
            dist.barrier()


def _reduction_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(
    values: Mapping[str, float], info: DistInfo, where: str = "while averaging metrics"
) -> dict[str, float]:
    """The mean of each named scalar over all ranks (every rank must pass the same keys, in any order)."""
    plain = {key: float(value) for key, value in values.items()}
    if not info.distributed or not plain or not dist.is_initialized():
        return plain
    keys = sorted(plain)
    tensor = torch.tensor([plain[k] for k in keys], dtype=torch.float64, device=_reduction_device())
    with communicating(info, where):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= info.world_size
    return {key: float(v) for key, v in zip(keys, tensor.cpu().tolist(), strict=True)}


def all_true(flag: bool, info: DistInfo, where: str = "in a collective") -> bool:
    """True only if ``flag`` is true on every rank."""
    if not info.distributed or not dist.is_initialized():
        return flag
    tensor = torch.tensor([0.0 if flag else 1.0], device=_reduction_device())
    with communicating(info, where):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return bool(tensor.item() == 0.0)


# --------------------------------------------------------------------------------------------------
# Failures on one rank (see the module docstring)


def _describe(error: BaseException | None, where: str) -> str | None:
    return None if error is None else f"{where}: {type(error).__name__}: {error}"


def _raise_failure(error: BaseException | None, messages: list[str | None]) -> NoReturn:
    """Re-raise this rank's own exception, or a TrainingError naming the first rank that failed."""
    if error is not None:
        raise error
    rank, message = next((r, m) for r, m in enumerate(messages) if m is not None)
    raise TrainingError(f"rank {rank} failed {message}; every rank stopped")


def raise_if_any_failed(error: BaseException | None, info: DistInfo, where: str) -> None:
    """Collective: raise on every rank if ``error`` is set on any rank (one all-reduce of one number).

    Every rank must call it at the same point, passing the exception it caught since the previous
    check (``None`` if all went well); ``where`` (e.g. ``"after epoch 3"``) completes the message the
    other ranks raise: ``rank 1 failed after epoch 3: OSError: ...``.
    """
    if not info.distributed or not dist.is_initialized():
        if error is not None:
            raise error
        return
    flag = torch.tensor([0.0 if error is None else 1.0], device=_reduction_device())
    with communicating(info, where):
        dist.all_reduce(flag, op=dist.ReduceOp.SUM)
    if flag.item() > 0.0:
        _raise_failure(error, gather_objects(_describe(error, where), info, where))


def step_status(finite: bool, error: BaseException | None, info: DistInfo, where: str) -> bool:
    """The per-step collective: True when the loss is finite on every rank; raise if a rank failed.

    One all-reduce of ``[ranks with a non-finite loss, ranks that raised]``: the single collective the
    non-finite-loss guard needs anyway, so reporting failures costs no extra communication per step.
    ``where`` is this rank's own description of what failed (ranks may differ).
    """
    if not info.distributed or not dist.is_initialized():
        if error is not None:
            raise error
        return finite
    status = [0.0 if finite else 1.0, 0.0 if error is None else 1.0]
    tensor = torch.tensor(status, dtype=torch.float64, device=_reduction_device())
    with communicating(info, where):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    nonfinite, failed = tensor.cpu().tolist()
    if failed > 0.0:
        _raise_failure(error, gather_objects(_describe(error, where), info, where))
    return nonfinite == 0.0


# --------------------------------------------------------------------------------------------------
# Validation metrics


def combine_weighted(reports: list[tuple[Mapping[str, float], float]]) -> dict[str, float]:
    """Exact means from per-rank ``(metrics, samples)``: ``sum(value x samples) / sum(samples)`` per key.

    A rank that validated no sample does not count (its value, often NaN, means nothing). A metric
    reported only by ranks without samples (e.g. a task that validates without a loader) is the plain
    mean of their values. Keys are returned sorted.

    Example:
        >>> combine_weighted([({"mse": 1.0}, 2.0), ({"mse": 4.0}, 1.0), ({"mse": float("nan")}, 0.0)])
        {'mse': 2.0}
    """
    sums: dict[str, list[float]] = {}  # key -> [weighted sum, samples, plain sum, reports]
    for metrics, samples in reports:
        for key, value in metrics.items():
            acc = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            if samples > 0:
                acc[0] += float(value) * samples
                acc[1] += samples
            acc[2] += float(value)
            acc[3] += 1.0
    return {key: s / n if n > 0 else p / c for key, (s, n, p, c) in sorted(sums.items())}


def reduce_validation(
    metrics: Mapping[str, float], samples: int, error: BaseException | None, info: DistInfo, where: str
) -> dict[str, float]:
    """Validation metrics over all ranks (collective), weighting each rank's means by its ``samples``.

    Each rank passes the metrics :meth:`TrainingTask.validate` returned for its share of the data
    (means over its ``samples`` validation samples) or the exception it raised; every rank gets the
    exact means over the whole validation set (:func:`combine_weighted`), or the failure is raised on
    every rank. One ``all_gather_object`` per validation. A single process gets its metrics unchanged.
    """
    plain = {str(key): float(value) for key, value in metrics.items()}
    if not info.distributed or not dist.is_initialized():
        if error is not None:
            raise error
        return plain
    reports = gather_objects((_describe(error, where), plain, float(samples)), info, where)
    messages: list[str | None] = [report[0] for report in reports]
    if any(message is not None for message in messages):
        _raise_failure(error, messages)
    return combine_weighted([(report[1], report[2]) for report in reports])


def broadcast_buffers(model: nn.Module, info: DistInfo, where: str = "while sharing rank 0's buffers") -> None:
    """Give every rank rank 0's buffers (e.g. BatchNorm running statistics); see :func:`wrap_ddp`."""
    if not info.distributed or not dist.is_initialized():
        return
    with torch.no_grad(), communicating(info, where):
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_object(obj: Any, info: DistInfo, where: str = "while receiving rank 0's decision") -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects; used for the run folder name)."""
    if not info.distributed or not dist.is_initialized():
        return obj
    box = [obj]
    with communicating(info, where):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, info: DistInfo, where: str = "while gathering from every rank") -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.distributed or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * info.world_size
    with communicating(info, where):
        dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------------------
# A rank that disappears (see the module docstring)

_BACKEND_MARKERS = ("/gloo/", "Gloo", "NCCL", "ProcessGroup", "Connection closed by peer", "Connection reset")


def is_communication_failure(exc: BaseException) -> bool:
    """True for an error of the process group itself (a peer closed its connection or timed out).

    torch raises ``DistError`` subclasses for most of them, but Gloo's transport errors (``Connection
    closed by peer``, ``Timed out waiting ... for recv``) arrive as plain ``RuntimeError`` naming Gloo.
    """
    if isinstance(exc, dist.DistError):
        return True
    return isinstance(exc, RuntimeError) and any(marker in str(exc) for marker in _BACKEND_MARKERS)


@contextlib.contextmanager
def communicating(info: DistInfo, where: str) -> Iterator[None]:
    """Inside the block, a broken connection to another rank becomes a :class:`TrainingError` naming it.

    Wraps every collective (and the backward pass, where DDP all-reduces gradients): see
    :func:`lost_contact_error`. Other exceptions pass unchanged.
    """
    try:
        yield
    except RuntimeError as exc:
        if not info.distributed or not is_communication_failure(exc):
            raise
        raise lost_contact_error(exc, info, where) from exc


def lost_contact_error(exc: BaseException, info: DistInfo, where: str) -> TrainingError:
    """The error a rank raises when a collective failed because another rank vanished or went silent.

    This rank first leaves the process group, which closes its connections, so that every other
    surviving rank's pending collective fails at once too instead of waiting for the timeout. With
    more than two ranks, the survivors then tell each other through the job's key-value store (the
    torchrun rendezvous, which outlives the process group) that they are alive, for up to
    :data:`ROLL_CALL_S` seconds: the ranks that did not answer are the lost ones. The message names
    them and their hosts.
    """
    store = _default_store()
    with contextlib.suppress(Exception):  # the group is broken; leaving it must not raise a second error
        dist.destroy_process_group()
    if info.world_size == 2:  # no need to ask: the other rank is the lost one (and torchrun may stop us soon)
        answered: set[int] | None = {info.rank}
    else:
        answered = _roll_call(store, info) if store is not None else None
    detail = _backend_detail(exc)
    timeout = f"runtime.dist_timeout_s={info.timeout_s:g}"
    if answered is None:
        who = (
            "another rank (which one could not be told: the job's store does not answer either, so the "
            "machine that hosts it, normally the first node, is probably the one lost)"
        )
    else:
        lost = [rank for rank in range(info.world_size) if rank not in answered]
        if not lost:
            return TrainingError(
                f"a collective failed {where} although every rank is still running: a rank spent longer than "
                f"{timeout} s away from the others (raise it for slow storage or long rank-0 work); "
                f"every rank stopped [{detail}]"
            )
        who = ("rank " if len(lost) == 1 else "ranks ") + ", ".join(_rank_name(rank, info) for rank in lost)
    return TrainingError(
        f"lost contact with {who} {where}: stopped without reporting an error (killed, out of memory, "
        f"machine or network lost) or no answer within {timeout} s; rank {info.rank} stopped too. "
        f"Check the lost node's log, then rerun the same command with --resume auto [{detail}]"
    )


def _backend_detail(exc: BaseException) -> str:
    """The gist of a backend error: its first sentence without Gloo's source location.

    Example:
        >>> _backend_detail(RuntimeError("[/x/gloo/pair.cc:553] Connection closed by peer [10.0.0.2]:41. Check..."))
        'Connection closed by peer [10.0.0.2]:41'
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(". ", 1)[0].rstrip(".")


def _rank_name(rank: int, info: DistInfo) -> str:
    host = info.hosts[rank] if rank < len(info.hosts) else None
    return f"{rank} (host {host})" if host else str(rank)


def _default_store() -> Any:
    """The process group's key-value store (``None`` when there is none or torch hides it)."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):
        return None


def _roll_call(store: Any, info: DistInfo) -> set[int] | None:
    """The ranks that report alive within :data:`ROLL_CALL_S` seconds (``None``: the store is unreachable)."""
    prefix = f"radiossl/alive/{info.group_id}/"
    keys = [f"{prefix}{rank}" for rank in range(info.world_size)]
    deadline = time.monotonic() + ROLL_CALL_S
    try:
        store.set_timeout(datetime.timedelta(seconds=ROLL_CALL_S))
        store.set(keys[info.rank], "alive")
        while True:
            answered = {rank for rank, key in enumerate(keys) if store.check([key])}
            if len(answered) == info.world_size or time.monotonic() >= deadline:
                return answered
            time.sleep(0.1)
    except (RuntimeError, ValueError):  # DistStoreError and friends: the store is gone too
        return None


def make_train_sampler(
    dataset: Any, info: DistInfo, seed: int
) -> torch.utils.data.distributed.DistributedSampler[Any] | None:
    """A shuffling :class:`DistributedSampler` in a distributed job (call ``set_epoch`` each epoch)."""
    if not info.distributed:
        return None
    return torch.utils.data.distributed.DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=False
    )


class ShardSampler(torch.utils.data.Sampler[int]):
    """Samples ``rank, rank + world_size, ...`` of ``length``: every sample on exactly one rank.

    Unlike :class:`DistributedSampler` it does not pad the shards to equal length by repeating
    samples, so per-rank validation sums add up to the whole set (shards differ by at most one sample).

    Example:
        >>> [list(ShardSampler(5, DistInfo(world_size=2, rank=r))) for r in (0, 1)]
        [[0, 2, 4], [1, 3]]
    """

    def __init__(self, length: int, info: DistInfo) -> None:
        self.indices = range(info.rank, int(length), info.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_eval_sampler(dataset: Any, info: DistInfo) -> ShardSampler | None:
    """A :class:`ShardSampler` that splits validation data over the ranks without padding."""
    if not info.distributed:
        return None
    return ShardSampler(len(dataset), info)


_PLAIN_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def convert_sync_batchnorm(module: nn.Module) -> tuple[nn.Module, int]:
    """``module`` with every plain ``nn.BatchNorm1d/2d/3d`` replaced by ``nn.SyncBatchNorm``, and how many.

    The new layers share the old ones' parameters and buffers (so an optimiser built before keeps
    working and checkpoints keep their keys). Subclasses with their own forward, such as
    ModelsGenesis' ``ContBatchNorm3d`` (always batch statistics) or ``SafeBatchNorm1d`` (batches of
    one), are kept: synchronising them would change what they compute. Children are replaced in
    place; the returned module is ``module`` itself unless it is a BatchNorm layer.
    """
    if type(module) in _PLAIN_BATCHNORMS:
        assert isinstance(module, nn.modules.batchnorm._BatchNorm)
        synced = nn.SyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        synced.running_mean, synced.running_var = module.running_mean, module.running_var
        synced.num_batches_tracked = module.num_batches_tracked
        synced.train(module.training)
        return synced, 1
    converted = 0
    for name, child in module.named_children():
        replacement, count = convert_sync_batchnorm(child)
        if replacement is not child:
            setattr(module, name, replacement)
        converted += count
    return module, converted


def sync_batchnorm(
    model: nn.Module, device: torch.device, info: DistInfo, enabled: bool
) -> tuple[nn.Module, str | None]:
    """Apply ``runtime.sync_batchnorm``: the model to train and a line for the log (``None``: nothing to say).

    Only a distributed run on CUDA devices converts (torch's SyncBatchNorm runs on GPUs only); a
    distributed run elsewhere keeps per-process statistics and says so.
    """
    if not enabled or not info.distributed:
        return model, None
    if device.type != "cuda":
        return model, f"runtime.sync_batchnorm ignored on {device.type}: SyncBatchNorm runs on CUDA devices only"
    model, converted = convert_sync_batchnorm(model)
    return (
        model,
        f"runtime.sync_batchnorm: {converted} BatchNorm layers use the statistics of all {info.world_size} ranks",
    )


def wrap_ddp(model: nn.Module, device: torch.device, info: DistInfo, find_unused_parameters: bool) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel in a distributed job; return it unchanged otherwise.

    DDP's own buffer broadcast before every forward is turned off (``broadcast_buffers=False``) so that
    a training forward involves no collective: a rank that fails before or during its forward then
    cannot leave the others blocked in one. Rank 0's buffers, the ones checkpoints hold, evolve
    exactly as before (rank 0 is the source of that broadcast); BatchNorm in training mode normalises
    with batch statistics, so the other ranks' running statistics matter only for validation, which
    starts with :func:`broadcast_buffers`.
    """
    if not info.distributed:
        return model
    broadcast_buffers(model, info)
    device_ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    with communicating(info, "while setting up DistributedDataParallel"):
        return nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=find_unused_parameters, broadcast_buffers=False
        )
