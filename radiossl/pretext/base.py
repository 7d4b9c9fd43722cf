"""The pretext-method plugin protocol.

A pretext method is a class with

* ``name`` — the name users type (``radiossl pretrain --method NAME``);
* ``config_class`` — a :class:`radiossl.config.MethodConfig` subclass whose ``name`` field is a
  ``Literal[NAME]`` (the discriminator), holding the method's own settings;
* ``views`` — the registered view (or tuple of views) whose folders it trains on (``"cluster"``,
  ``("cluster", "pcrlv2")``, a plugin view...); ``pretrain`` refuses a folder preprocessed for another
  view, and the demo preprocesses for the first one;
* ``needs_targets`` — whether it trains on k-means targets (``radiossl kmeans fit`` and ``predict``
  must run between preprocessing and pretraining);
* ``default_settings()`` — defaults for the shared sections (e.g. the published learning rate);
* ``headline_metrics`` (optional) — the 3–4 metrics the console shows during and after training,
  e.g. ``("loss", "val_loss", "pred_clusters_used", "lr")``; everything else goes to
  ``metrics.jsonl`` and TensorBoard only;
* the :class:`radiossl.engine.protocol.TrainingTask` methods: ``build_model``, ``build_datasets``,
  ``training_step`` (required) and the engine's hooks, whose defaults it inherits from
  :class:`radiossl.engine.protocol.TaskDefaults` (``train_mode``, ``before_optimizer_step``,
  ``after_optimizer_step``, ``validate``, ``visualise``, ``run_name_parts``, ``monitor``,
  ``ddp_find_unused_parameters``, ``embeddings``; ``after_epoch`` and ``after_training`` run the probe
  monitor of ``monitoring.probe_task``, so a method that overrides them calls ``super()``).
  ``embeddings(model, batch)`` feeds the collapse
  monitor (``monitoring`` section); its default pools the bottleneck of the batch's first tensor
  through the backbone's ``encode``, so a method overrides it only when that is not its encoder's input.

It is registered under the ``radiossl.pretext`` entry-point group (or with
:func:`radiossl.register_pretext` in a notebook). The engine then provides device handling,
mixed precision, DDP, checkpoints, resume and logging.

Example (a complete, if useless, method)::

    from typing import Literal
    import torch
    from radiossl.config import MethodConfig
    from radiossl.engine.protocol import StepOutput
    from radiossl.pretext.base import PretextMethod

    class MeanConfig(MethodConfig):
        name: Literal["mean"] = "mean"

    class Mean(PretextMethod):
        name = "mean"
        config_class = MeanConfig
        views = "genesis"

        def build_model(self):
            return torch.nn.Conv3d(1, 1, 3, padding=1)

        def build_datasets(self):
            from radiossl.views.genesis import GenesisCubeDataset
            return GenesisCubeDataset(self.config.data.root, "train"), None

        def training_step(self, model, batch, context):
            return StepOutput(loss=(model(batch).float() - batch.float().mean()).pow(2).mean())
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, create_model

from radiossl.config import (
    MethodConfig,
    MonitoringConfig,
    RunConfig,
    deep_merge,
    load_config_file_into,
    read_config_file,
)
from radiossl.engine.protocol import StepContext, StepOutput, TaskDefaults
from radiossl.errors import ConfigError, DataError, PluginError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from radiossl.pretext.probe_monitor import ProbeMonitor


class PretrainConfig(RunConfig):
    """A pretraining run: shared sections plus the method's own section ``method``."""

    method: MethodConfig
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)


class PretextMethod(TaskDefaults, ABC):
    """Base class of pretext plugins; see the module docstring."""

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]
    views: ClassVar[str | tuple[str, ...] | None] = "cluster"
    """The view(s) it trains on (None: any folder is accepted)."""
    needs_targets: ClassVar[bool] = False
    """Whether it trains on k-means targets (``radiossl kmeans predict``)."""
    summary: ClassVar[str] = ""
    kind: str = "pretrain"
    monitor: tuple[str, Literal["min", "max"]] | None = None
    headline_metrics: ClassVar[tuple[str, ...] | None] = None
    """The 3–4 metrics the console shows; ``None``: loss, the monitored metric (else val_loss) and lr."""
    _probes: ProbeMonitor | None = None

    def __init__(self, config: PretrainConfig) -> None:
        if not isinstance(config.method, self.config_class):
            raise ConfigError(
                f"method section is {type(config.method).__name__}, expected {self.config_class.__name__}"
            )
        self.config = config

    @property
    def settings(self) -> Any:
        """The method's own config section (an instance of ``config_class``)."""
        return self.config.method

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """Defaults for the shared sections (``optim``, ``data``, ``model``...) as a nested dict."""
        return {}

    @classmethod
    def trains_on(cls) -> tuple[str, ...]:
        """The views it trains on, first the one to preprocess for (empty: any view)."""
        if cls.views is None:
            return ()
        return (cls.views,) if isinstance(cls.views, str) else tuple(cls.views)

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The network including the method's heads (on CPU; the engine moves it)."""

    @abstractmethod
    def build_datasets(self) -> tuple[Dataset[Any], Dataset[Any] | None]:
        """Training dataset and an optional validation dataset (used for visualisation/metrics)."""

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        """Compute the loss of one batch (already on the device). Return a float32 scalar."""

    @classmethod
    def cluster_scores(cls, model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """``[B, K, *grid]`` cluster scores of inputs ``x`` for ``checkpoint show-features``' argmax map
        (any grid; it is upsampled to ``x``); ``None``: the method assigns no clusters."""
        return None

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        """Primitive description of the network, stored in checkpoints so it can be rebuilt."""
        from radiossl.models.factory import model_spec

        return model_spec(model)

    def after_epoch(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """The probe monitor's records (``monitoring.probe_task``; :mod:`radiossl.pretext.probe_monitor`)."""
        monitor = self._probe_monitor()
        return [] if monitor is None else monitor.after_epoch(model, context)

    def after_training(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """The probe monitor's last records: it probes the final epoch and waits for its probes."""
        monitor = self._probe_monitor()
        return [] if monitor is None else monitor.after_training(model, context)

    def _probe_monitor(self) -> ProbeMonitor | None:
        """The run's probe monitor (made on first use, on the main process only), or None when probes are off."""
        monitoring = getattr(self.config, "monitoring", None)
        if monitoring is None or monitoring.probe_task is None:
            return None
        if self._probes is None:
            from radiossl.pretext.probe_monitor import ProbeMonitor

            self._probes = ProbeMonitor(self.config, self.model_spec)
        return self._probes

    def data_root(self) -> str:
        """The preprocessed folder to train on (``data.root``); a one-line error when none is given."""
        root = self.config.data.root
        if root is None:
            raise DataError("no data folder given: use --data PROC_DIR (or data.root in the config)")
        return str(root)


@cache
def pretrain_config_class(method_cls: type[PretextMethod]) -> type[PretrainConfig]:
    """The full run-config class of one method: ``PretrainConfig`` with a typed ``method`` section."""
    config_class = method_cls.config_class
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"PretrainConfig_{method_cls.__name__}",
        __base__=PretrainConfig,
        method=(config_class, Field(default_factory=config_class)),
    )


def get_method(name: str) -> type[PretextMethod]:
    """The pretext method class registered as ``name``."""
    from radiossl import registry

    obj = registry.get("radiossl.pretext", name)
    if not (isinstance(obj, type) and issubclass(obj, PretextMethod)):
        raise PluginError(f"pretext plugin {name!r} is {obj!r}, not a PretextMethod subclass")
    return obj


def method_name_from_file(file: str | Path) -> str | None:
    """The ``method.name`` written in a config file, if any."""
    data = read_config_file(file)
    section = data.get("method")
    if isinstance(section, dict) and isinstance(section.get("name"), str):
        return section["name"]
    return None


def load_pretrain_config(
    method: str | None = None,
    file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> PretrainConfig:
    """Resolve a pretraining config: class defaults < method defaults < file < ``--set`` < flags.

    Example:
        >>> cfg = load_pretrain_config("patch-cluster", overrides=["model.width=0.25"])
        >>> cfg.method.name, cfg.model.width
        ('patch-cluster', 0.25)
    """
    in_file = method_name_from_file(file) if file is not None else None
    if method is None:
        method = in_file
    if method is None:
        raise ConfigError("no pretext method given: use --method NAME or set method.name in the config file")
    if in_file is not None and in_file != method:
        raise ConfigError(f"{file}: method.name is {in_file!r} but --method is {method!r}")
    method_cls = get_method(method)
    defaults = deep_merge(method_cls.default_settings(), {"method": {"name": method}})
    return load_config_file_into(pretrain_config_class(method_cls), file, overrides, defaults, flags)
