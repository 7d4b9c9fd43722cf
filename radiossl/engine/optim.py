"""Optimisers and learning-rate schedules from an :class:`radiossl.config.OptimConfig`.

Schedules are evaluated per optimiser step (not per epoch), so a cosine schedule decays smoothly
and its last step still has a positive learning rate (the original code set the rate once per
epoch and ran its whole last epoch at lr 0). All schedules accept a linear warm-up of
``warmup_epochs`` (fractional epochs allowed).

* ``cosine``: ``min_lr + (lr - min_lr) * ½ (1 + cos(π t))`` with ``t = (step - warmup) / (total - warmup)``;
* ``step``: ``lr * gamma ** (epoch // step_size)``;
* ``constant``: ``lr``.

:func:`batch_scale` states the run's effective batch size (``batch_size x processes x accumulate``)
and the learning rate it trains with: ``optim.lr`` itself (``optim.lr_scaling: none``, the default,
so published settings are used as written), or ``optim.lr`` scaled by ``effective /
reference_batch_size`` (``linear``) or its square root (``sqrt``); the reference defaults to
``optim.batch_size``, i.e. ``optim.lr`` was tuned on one process without accumulation.

Example:
    >>> import torch
    >>> from radiossl.config import OptimConfig
    >>> cfg = OptimConfig(lr=0.1, epochs=2, schedule="cosine")
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = build_optimizer(model, cfg)
    >>> sched = build_scheduler(opt, cfg, steps_per_epoch=4)
    >>> [round(lr_factor(cfg, s, 4), 3) for s in range(8)]
    [1.0, 0.962, 0.854, 0.691, 0.5, 0.309, 0.146, 0.038]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from radiossl.config import OptimConfig
from radiossl.errors import ConfigError, TrainingError


@dataclass(frozen=True)
class BatchScale:
    """How many samples one optimiser step sees, and the learning rate that follows from it.

    Example:
        >>> from radiossl.config import OptimConfig
        >>> scale = batch_scale(OptimConfig(lr=0.1, batch_size=4, accumulate=2, lr_scaling="linear"), world_size=4)
        >>> scale.effective_batch_size, scale.lr
        (32, 0.8)
        >>> batch, lr = scale.describe().split("; ")
        >>> batch
        'effective batch 32 = 4 per process x 4 processes x 2 accumulation steps'
        >>> lr
        'lr 0.8 = 0.1 x 32/4 (lr_scaling linear)'
    """

    batch_size: int  # per process and micro-batch
    world_size: int
    accumulate: int
    effective_batch_size: int
    reference_batch_size: int
    lr_scaling: str
    base_lr: float  # optim.lr as configured
    lr: float  # the learning rate training uses (the schedule's peak)
    nodes: int = 1

    def describe(self) -> str:
        """One line for the run's header: the effective batch and the learning rate, with how they arise."""
        processes = f"{self.world_size} process" + ("es" if self.world_size != 1 else "")
        if self.nodes > 1:
            processes += f" on {self.nodes} nodes"
        steps = f"{self.accumulate} accumulation step" + ("s" if self.accumulate != 1 else "")
        batch = f"effective batch {self.effective_batch_size} = {self.batch_size} per process x {processes} x {steps}"
        ratio = f"{self.effective_batch_size}/{self.reference_batch_size}"
        if self.lr_scaling == "linear":
            rule = f"{self.base_lr:g} x {ratio}"
        elif self.lr_scaling == "sqrt":
            rule = f"{self.base_lr:g} x sqrt({ratio})"
        else:
            rule = "optim.lr"
        return f"{batch}; lr {self.lr:g} = {rule} (lr_scaling {self.lr_scaling})"

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers and strings (for checkpoints and ``config.yaml``)."""
        return asdict(self)


def batch_scale(optim: OptimConfig, world_size: int = 1, nodes: int = 1) -> BatchScale:
    """The effective batch size of ``world_size`` processes and the learning rate ``optim.lr_scaling`` gives."""
    world_size = max(int(world_size), 1)
    effective = optim.batch_size * world_size * optim.accumulate
    reference = optim.reference_batch_size or optim.batch_size
    ratio = effective / reference
    if optim.lr_scaling == "linear":
        lr = optim.lr * ratio
    elif optim.lr_scaling == "sqrt":
        lr = optim.lr * math.sqrt(ratio)
    elif optim.lr_scaling == "none":
        lr = optim.lr
    else:
        raise ConfigError(f"optim.lr_scaling: unknown rule {optim.lr_scaling!r}; use none, linear or sqrt")
    return BatchScale(
        batch_size=optim.batch_size,
        world_size=world_size,
        accumulate=optim.accumulate,
        effective_batch_size=effective,
        reference_batch_size=reference,
        lr_scaling=optim.lr_scaling,
        base_lr=optim.lr,
        lr=lr,
        nodes=max(int(nodes), 1),
    )


def scaled_optim(optim: OptimConfig, scale: BatchScale) -> OptimConfig:
    """``optim`` with ``lr`` replaced by the scaled one (``min_lr`` stays as configured: an absolute floor)."""
    return optim if scale.lr == optim.lr else optim.model_copy(update={"lr": scale.lr})


def trainable_parameters(model: nn.Module | Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Parameters that require gradients (frozen parts are left out of the optimiser)."""
    params = model.parameters() if isinstance(model, nn.Module) else model
    return [p for p in params if p.requires_grad]


class FusedSGD(torch.optim.SGD):
    """torch's fused SGD, also for parameters whose first gradient comes after other parameters' steps.

    torch's fused kernel takes the momentum buffers of a group all at once and fails ("expected
    Tensor ... but got NoneType") when some exist and others do not: a parameter that had no
    gradient in the first steps (patch-cluster's prototypes while they are frozen) would stop the
    run. A missing buffer of a parameter with a gradient is created as zeros first, and since
    dampening is 0 the kernel then sets it to that gradient, which is what the for-loop does on a
    buffer's first step.
    """

    def __init__(self, params: Iterable[nn.Parameter], **kwargs: Any) -> None:
        super().__init__(params, fused=True, **kwargs)

    def step(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        for group in self.param_groups:
            if group["momentum"] == 0 or group["dampening"] != 0:
                continue
            for param in group["params"]:
                # self.state is a defaultdict: only a parameter with a gradient may get an entry
                if param.grad is not None and self.state.get(param, {}).get("momentum_buffer") is None:
                    self.state[param]["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return super().step(*args, **kwargs)


def build_optimizer(model: nn.Module | Iterable[nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over the trainable parameters of ``model``.

    ``optim.implementation`` picks torch's kernel: ``auto`` takes the fused one for CUDA parameters in
    the standard (contiguous) layout, and torch's default otherwise. On a 2-core CPU the fused kernel
    alone updated ResEnc-L's 90 M contiguous parameters 2.35x (SGD) and 2.9x (AdamW) faster than the
    for-loop, but within a whole training step it was no faster (slower with channels-last weights,
    the CPU default), see docs/benchmarks.md; so on the CPU ``fused`` is there to be asked for.
    The state dict is the same whatever the implementation, so a run resumes under another one.
    """
    params = trainable_parameters(model)
    if not params:
        raise TrainingError("the model has no parameters with requires_grad=True; nothing to train")
    classes: dict[str, Callable[..., torch.optim.Optimizer]] = {
        "sgd": functools.partial(torch.optim.SGD, momentum=optim.momentum),
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
    }
    if optim.optimizer not in classes:
        raise ConfigError(f"optim.optimizer: unknown optimiser {optim.optimizer!r}; use sgd, adam or adamw")
    fused_sgd = functools.partial(FusedSGD, momentum=optim.momentum) if optim.optimizer == "sgd" else None

    def make(**kernel: bool) -> torch.optim.Optimizer:
        if kernel.get("fused") and fused_sgd is not None:
            return fused_sgd(params, lr=optim.lr, weight_decay=optim.weight_decay)
        return classes[optim.optimizer](params, lr=optim.lr, weight_decay=optim.weight_decay, **kernel)

    kernels: dict[str, dict[str, bool]] = {
        "fused": {"fused": True},
        "foreach": {"foreach": True},
        "for-loop": {"foreach": False},
    }
    choice = optim.implementation
    if choice == "auto":
        # fused on CUDA only: on the CPU the fused step was no faster within a whole training step
        if not all(p.device.type == "cuda" and p.is_contiguous() for p in params):
            return make()
        try:
            return make(fused=True)
        except RuntimeError:  # torch has no fused kernel for these parameters' dtype
            return make()
    if choice not in kernels:
        raise ConfigError(f"optim.implementation: unknown value {choice!r}; use auto, fused, foreach or for-loop")
    try:
        return make(**kernels[choice])
    except RuntimeError as err:
        raise ConfigError(f"optim.implementation {choice}: {err}") from None


def lr_factor(optim: OptimConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of ``optim.lr`` at optimiser step ``step`` (0-based) of a run of ``optim.epochs`` epochs."""
    steps_per_epoch = max(int(steps_per_epoch), 1)
    total = optim.epochs * steps_per_epoch
    warmup = min(round(optim.warmup_epochs * steps_per_epoch), total)
    if step < warmup:
        return (step + 1) / warmup
    if optim.schedule == "constant":
        return 1.0
    if optim.schedule == "step":
        return float(optim.gamma ** ((step // steps_per_epoch) // optim.step_size))
    if optim.schedule == "cosine":
        floor = min(optim.min_lr / optim.lr, 1.0)
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ConfigError(f"optim.schedule: unknown schedule {optim.schedule!r}; use cosine, step or constant")


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler (call ``.step()`` after every optimiser step) implementing ``optim.schedule``.

    Its ``state_dict()`` holds only numbers (the schedule is a closure, which torch does not store), so
    checkpoints stay loadable with ``weights_only=True``; the schedule itself is rebuilt from the config.
    """
    lr_factor(optim, 0, steps_per_epoch)  # validate the schedule name early

    def factor(step: int) -> float:
        return lr_factor(optim, step, steps_per_epoch)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the first parameter group."""
    return float(optimizer.param_groups[0]["lr"])
