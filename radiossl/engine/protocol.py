"""The contract between the training engine and what it trains.

The engine (device, AMP, DDP, checkpoints, resume, early stopping, logging, visualisation) knows
nothing about methods: it drives any object that satisfies :class:`TrainingTask`. Pretext methods
(:class:`radiossl.pretext.base.PretextMethod`) and downstream tasks both implement it.

Every member the engine uses is declared on :class:`TrainingTask`. A task must provide ``kind``,
``name``, ``build_model``, ``build_datasets``, ``training_step`` and ``model_spec``; every other member
is a hook with a default, implemented by :class:`TaskDefaults`. Subclass :class:`TaskDefaults` (as
``PretextMethod`` and the finetuning task do) to inherit the defaults; a task that only matches the
protocol structurally gets them from :func:`with_defaults`, which :func:`~radiossl.engine.trainer.run_training`
applies.

Call order per run::

    model = task.build_model()                       # engine moves it to the device, wraps it in DDP
    train_set, val_set = task.build_datasets()       # (DDP: find_unused_parameters=task.ddp_find_unused_parameters)
    for epoch ...:
        task.train_mode(model)                       # model.train(), plus any frozen-norm handling
        for batch in loader:
            out = task.training_step(wrapped_model, batch, context)   # under autocast
            (backward)
            task.before_optimizer_step(model, context)   # gradients complete (and all-reduced)
            (clip, step)
            task.after_optimizer_step(model, context)
        metrics = task.validate(model, val_loader, context)  # every rank, its own share; {} if nothing to do
        (best checkpoint and early stopping on task.monitor)
        images = task.visualise(model, batch, context)      # rank 0, when --vis
        records = task.after_epoch(model, context)          # rank 0: extra metric lines
    records = task.after_training(model, context)           # rank 0, after the final checkpoint

``embeddings(model, batch)`` feeds the collapse monitor (:mod:`radiossl.engine.collapse`, the
``monitoring`` config section): ``[B, D]`` embeddings of a training batch (already on the device),
called on the unwrapped model in eval mode without gradients on the first batches of every epoch.
The default pools the bottleneck of the batch's first tensor through the backbone's ``encode``;
``None`` means the task cannot say, and the monitor stays silent.

``before_optimizer_step(model, context)`` gets the unwrapped model after the gradients of an
accumulation group are complete (and all-reduced under DDP) and before clipping and the optimiser step.
Setting a parameter's ``.grad`` to ``None`` there makes the optimiser skip it entirely: no update, no
momentum, no weight decay.

``monitor`` names the validation metric that selects ``checkpoint_best.pt`` and that early stopping
(``optim.patience``) watches; ``None`` selects the best checkpoint by the epoch training loss and lets
early stopping watch ``val_loss``. A task may also end training itself: ``context.request_stop(reason)``
in ``validate()``.

``headline_metrics`` names the 3–4 metrics the console shows during and after training (keys of the
``metrics.jsonl`` epoch lines, e.g. ``("loss", "val_dice", "lr")``); ``None`` gives the default of
:func:`headline_metrics`: the loss, the monitored validation metric (else ``val_loss``) and the
learning rate. Every metric still goes to ``metrics.jsonl`` and TensorBoard.

``validate`` gets the unwrapped model and, under DDP, the rank's share of the validation set (no
sample twice); it returns means over that share, which the engine weights by the share's size, so
the logged metrics are the means over the whole validation set.

``after_epoch(model, context)`` and ``after_training(model, context)`` run on the main process only,
with the unwrapped model: after each epoch's metric line is logged, and once after the final
checkpoint (``context.epoch`` is then the number of completed epochs). They are for work beside
training, e.g. the pretraining's probe monitor (:mod:`radiossl.pretext.probe_monitor`). Each returns
metric records for ``metrics.jsonl``, ``[]`` when there are none: dicts of numbers with ``epoch``
(the epoch they describe, 1-based) and ``step`` (the optimiser steps at that epoch's end, so a resume
truncates them like the epoch's own lines), logged as ``"type": "monitor"`` lines and to TensorBoard.
They must not draw random numbers in the training process: resume is exact only without that.

``visualise`` gets the first training batch of the epoch; ``context.extra["train_set"]`` is then the
training dataset, so a picture can name the case of a sample (see
:func:`radiossl.engine.visualise.batch_case`).

Ranks: only the main process (``context.is_main``) writes files and prints; what a task reports through
the run's reporter (:func:`radiossl.engine.progress.current_reporter`) during a run already reaches the
console and ``train.log`` from the main process only, so tasks need no rank checks for messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

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

    @property
    def is_main(self) -> bool:
        """Whether this process is the job's main process (global rank 0), the one that writes files."""
        return self.rank == 0

    def request_stop(self, reason: str) -> None:
        """From ``validate()``: end training after this epoch (every rank stops; the final checkpoint is written)."""
        self.extra["stop"] = reason

    @property
    def stop_reason(self) -> str | None:
        """Why the task asked to stop: the reason given to :meth:`request_stop` (``""`` for the older
        ``extra["stop"] = True``), or ``None`` when it did not ask."""
        stop = self.extra.get("stop")
        if not stop:
            return None
        return stop if isinstance(stop, str) else ""


Monitor = tuple[str, Literal["min", "max"]]
"""A validation metric and whether lower (``"min"``) or higher (``"max"``) is better."""


class TrainingTask(Protocol):
    """What the engine needs from a method or task. See the module docstring for the call order.

    The members after ``model_spec`` are hooks; :class:`TaskDefaults` implements their defaults.
    """

    @property
    def kind(self) -> str:
        """``"pretrain"`` or ``"finetune"``; used for run folder names and checkpoint metadata."""
        ...

    @property
    def name(self) -> str:
        """The method or task name (``"patch-cluster"``, ``"brats"``, ...)."""
        ...

    def build_model(self) -> nn.Module:
        """The network (on the CPU; the engine moves it to the device)."""
        ...

    def build_datasets(self) -> tuple[Dataset[Any], Dataset[Any] | None]:
        """The training dataset and an optional validation dataset (map-style, with a length)."""
        ...

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        """The float32 scalar loss of one batch (already on the device), under autocast."""
        ...

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        """A primitive description of the network, stored in checkpoints so that it can be rebuilt."""
        ...

    # hooks (defaults: TaskDefaults)

    @property
    def monitor(self) -> Monitor | None:
        """Validation metric for ``checkpoint_best.pt`` and early stopping; ``None``: the training loss."""
        ...

    @property
    def headline_metrics(self) -> tuple[str, ...] | None:
        """The 3–4 metrics the console shows; ``None``: see :func:`headline_metrics`."""
        ...

    @property
    def ddp_find_unused_parameters(self) -> bool:
        """Whether DDP searches the graph for parameters a step did not use (False: every one is used)."""
        ...

    def train_mode(self, model: nn.Module) -> None:
        """Put the model in training mode at the start of each epoch."""
        ...

    def before_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
        """Called with complete gradients, before clipping and the optimiser step."""
        ...

    def after_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
        """Called after each optimiser step with the unwrapped model."""
        ...

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]:
        """Validation metrics over this rank's share of the validation set; ``{}``: none this epoch."""
        ...

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """Named RGB pictures (H x W x 3 uint8) of a training batch for ``--vis``."""
        ...

    def run_name_parts(self) -> list[str]:
        """Key settings for the run folder name, e.g. ``["k50"]``."""
        ...

    def embeddings(self, model: nn.Module, batch: Any) -> torch.Tensor | None:
        """``[B, D]`` embeddings of a batch for the collapse monitor; ``None``: the task cannot say."""
        ...

    def after_epoch(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """Main process, after each epoch's metric line: metric records to log (``[]``: none)."""
        ...

    def after_training(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """Main process, once after the final checkpoint: metric records to log (``[]``: none)."""
        ...


REQUIRED_MEMBERS: tuple[str, ...] = ("kind", "name", "build_model", "build_datasets", "training_step", "model_spec")
HOOKS: tuple[str, ...] = (
    "monitor",
    "headline_metrics",
    "ddp_find_unused_parameters",
    "train_mode",
    "before_optimizer_step",
    "after_optimizer_step",
    "validate",
    "visualise",
    "run_name_parts",
    "embeddings",
    "after_epoch",
    "after_training",
)


class TaskDefaults:
    """The defaults of :class:`TrainingTask`'s hooks; subclass it to inherit them."""

    monitor: Monitor | None = None
    headline_metrics: ClassVar[tuple[str, ...] | None] = None
    ddp_find_unused_parameters: ClassVar[bool] = True
    """True is always correct; False skips DDP's per-step graph search when every parameter gets a gradient."""

    def train_mode(self, model: nn.Module) -> None:
        """``model.train()``; override to keep frozen parts in eval mode."""
        model.train()

    def before_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
        """Nothing; override e.g. to drop the gradients of parameters frozen for a while."""

    def after_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
        """Nothing; override e.g. to renormalise prototypes."""

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]:
        """No validation metrics."""
        return {}

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """No pictures."""
        return {}

    def run_name_parts(self) -> list[str]:
        """Nothing beyond the kind and name in the run folder name."""
        return []

    def embeddings(self, model: nn.Module, batch: Any) -> torch.Tensor | None:
        """The pooled bottleneck of the batch's first input view (``None`` without a backbone ``encode``)."""
        from radiossl.engine.collapse import bottleneck_embeddings

        return bottleneck_embeddings(model, batch)

    def after_epoch(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """No records."""
        return []

    def after_training(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """No records."""
        return []


class _WithDefaults:
    """A structural task seen with :class:`TaskDefaults`' hooks where it has none of its own."""

    def __init__(self, task: object) -> None:
        self._inner = task  # a private name: __getattr__ serves every other one from the task

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._inner, name)
        except AttributeError:
            if name not in HOOKS:
                raise
        default = getattr(TaskDefaults, name)
        return default.__get__(self) if callable(default) else default


def with_defaults(task: object) -> TrainingTask:
    """``task`` with every member of :class:`TrainingTask`: itself, or a view adding the hooks' defaults.

    Raises:
        TrainingError: ``task`` lacks a required member (named in the message).
    """
    missing = [name for name in REQUIRED_MEMBERS if not hasattr(task, name)]
    if missing:
        raise TrainingError(
            f"{type(task).__name__} does not implement radiossl.engine.protocol.TrainingTask: no {', '.join(missing)}"
        )
    if isinstance(task, TaskDefaults) or all(hasattr(task, name) for name in HOOKS):
        return task  # type: ignore[return-value]  # every member is present (checked above)
    return _WithDefaults(task)  # type: ignore[return-value]  # __getattr__ supplies every member


def task_label(task: object) -> str:
    """The class name of a task for messages (that of the task itself, also behind :func:`with_defaults`)."""
    inner = task._inner if isinstance(task, _WithDefaults) else task
    return type(inner).__name__


def headline_metrics(task: TrainingTask) -> tuple[str, ...]:
    """The metrics the console shows for ``task``: its ``headline_metrics``, else a default.

    The default is ``loss``, the monitored validation metric (``task.monitor``, else ``val_loss``)
    and ``lr``; metrics a run does not produce are simply not shown.

    Example:
        >>> class Task(TaskDefaults):
        ...     monitor = ("val_dice", "max")
        >>> headline_metrics(Task())
        ('loss', 'val_dice', 'lr')
    """
    declared = task.headline_metrics
    if declared:
        if isinstance(declared, str) or not all(isinstance(name, str) for name in declared):
            raise TrainingError(
                f"{task_label(task)}.headline_metrics must be a tuple of metric names, got {declared!r}"
            )
        return tuple(declared)
    monitor = task.monitor
    validation = monitor[0] if monitor else "val_loss"
    return ("loss", validation, "lr")
