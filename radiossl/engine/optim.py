"""Optimisers and learning-rate schedules from an :class:`radiossl.config.OptimConfig`.

Schedules are evaluated per optimiser step (not per epoch), so a cosine schedule decays smoothly
and its last step still has a positive learning rate (the original code set the rate once per
epoch and ran its whole last epoch at lr 0). All schedules accept a linear warm-up of
``warmup_epochs`` (fractional epochs allowed).

* ``cosine``: ``min_lr + (lr - min_lr) * ½ (1 + cos(π t))`` with ``t = (step - warmup) / (total - warmup)``;
* ``step``: ``lr * gamma ** (epoch // step_size)``;
* ``constant``: ``lr``.

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

import math
from collections.abc import Iterable

import torch
from torch import nn

from radiossl.config import OptimConfig
from radiossl.errors import ConfigError, TrainingError


def trainable_parameters(model: nn.Module | Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Parameters that require gradients (frozen parts are left out of the optimiser)."""
    params = model.parameters() if isinstance(model, nn.Module) else model
    return [p for p in params if p.requires_grad]


def build_optimizer(model: nn.Module | Iterable[nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over the trainable parameters of ``model``."""
    params = trainable_parameters(model)
    if not params:
        raise TrainingError("the model has no parameters with requires_grad=True; nothing to train")
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    if optim.optimizer == "adam":
        return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    raise ConfigError(f"optim.optimizer: unknown optimiser {optim.optimizer!r}; use sgd, adam or adamw")


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
