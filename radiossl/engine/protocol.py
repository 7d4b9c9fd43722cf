"""The contract between the training engine and what it trains.

The engine (device, AMP, DDP, checkpoints, resume, logging, visualisation) knows nothing about
methods: it drives any object that satisfies :class:`TrainingTask`. Pretext methods
(:class:`radiossl.pretext.base.PretextMethod`) and downstream tasks both implement it.

Call order per run::

    model = task.build_model()                       # engine moves it to the device, wraps it in DDP
    train_set, val_set = task.build_datasets()
    for epoch ...:
        task.train_mode(model)                       # model.train(), plus any frozen-norm handling
        for batch in loader:
            out = task.training_step(wrapped_model, batch, context)   # under autocast
            (backward)
            task.before_optimizer_step(model, context)   # optional method, e.g. drop frozen gradients
            (step)
            task.after_optimizer_step(model, context)
        metrics = task.validate(model, val_loader, context)  # every rank, its own share; {} if nothing to do
        images = task.visualise(model, batch, context)      # rank 0, when --vis

``visualise`` gets the first training batch of the epoch; ``context.extra["train_set"]`` is then the
training dataset, so a picture can name the case of a sample (see
:func:`radiossl.engine.visualise.batch_case`).

``before_optimizer_step(model, context)`` is optional (not part of :class:`TrainingTask`): when a task
defines it, the engine calls it with the unwrapped model after the gradients of an accumulation group
are complete (and all-reduced under DDP) and before clipping and the optimiser step. Setting a
parameter's ``.grad`` to ``None`` there makes the optimiser skip it entirely: no update, no momentum,
no weight decay.

``headline_metrics`` is optional too: a task may name the 3–4 metrics the console shows during and
after training (keys of the ``metrics.jsonl`` epoch lines, e.g. ``("loss", "val_dice", "lr")``);
:func:`headline_metrics` gives the default, the loss, the monitored validation metric (else
``val_loss``) and the learning rate. Every metric still goes to ``metrics.jsonl`` and TensorBoard.

``validate`` gets the unwrapped model and, under DDP, the rank's share of the validation set (no
sample twice); it returns means over that share, which the engine weights by the share's size, so
the logged metrics are the means over the whole validation set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from radiossl.errors import TrainingError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset


@dataclass
class StepOutput:
    """What a training step returns: the scalar loss to back-propagate (float32) and extra scalars."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StepContext:
    """Where training stands, for schedules inside a method (e.g. PCRLv2's β) and for logging."""

    epoch: int
    total_epochs: int
    step: int
    device: torch.device
    world_size: int = 1
    rank: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Fraction of training done at the start of this epoch, in [0, 1)."""
        return self.epoch / max(self.total_epochs, 1)


@runtime_checkable
class TrainingTask(Protocol):
    """What the engine needs from a method or task. See the module docstring for the call order."""

    @property
    def kind(self) -> str:
        """``"pretrain"`` or ``"finetune"``; used for run folder names and checkpoint metadata."""
        ...

    @property
    def name(self) -> str:
        """The method or task name (``"patch-cluster"``, ``"brats"``, ...)."""
        ...

    @property
    def monitor(self) -> tuple[str, Literal["min", "max"]] | None:
        """Validation metric that selects ``checkpoint_best.pt``; ``None`` = lowest epoch training loss.

        ``validate()`` may set ``context.extra["stop"] = True`` to end training early (e.g. patience).
        """
        ...

    def build_model(self) -> nn.Module: ...

    def build_datasets(self) -> tuple[Dataset[Any], Dataset[Any] | None]: ...

    def train_mode(self, model: nn.Module) -> None: ...

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput: ...

    def after_optimizer_step(self, model: nn.Module, context: StepContext) -> None: ...

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]: ...

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]: ...

    def model_spec(self, model: nn.Module) -> dict[str, Any]: ...

    def run_name_parts(self) -> list[str]: ...


def headline_metrics(task: Any) -> tuple[str, ...]:
    """The metrics the console shows for ``task``: its ``headline_metrics``, else a default.

    The default is ``loss``, the monitored validation metric (``task.monitor``, else ``val_loss``)
    and ``lr``; metrics a run does not produce are simply not shown.

    Example:
        >>> class Task:
        ...     monitor = ("val_dice", "max")
        >>> headline_metrics(Task())
        ('loss', 'val_dice', 'lr')
    """
    declared = getattr(task, "headline_metrics", None)
    if declared:
        if isinstance(declared, str) or not all(isinstance(name, str) for name in declared):
            raise TrainingError(
                f"{type(task).__name__}.headline_metrics must be a tuple of metric names, got {declared!r}"
            )
        return tuple(declared)
    monitor = getattr(task, "monitor", None)
    validation = monitor[0] if monitor else "val_loss"
    return ("loss", validation, "lr")
