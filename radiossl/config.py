"""Typed configuration: shared sections, loading from YAML/TOML, ``--set`` overrides, schema export.

Every configurable thing is a Pydantic model with ``extra="forbid"``, so a typo fails with the
path of the offending field. A run's configuration is assembled in layers, later layers winning::

    class defaults < method/task defaults < --config FILE < --set a.b=value < explicit CLI flags

Example:
    >>> cfg = build_config(ExampleRunConfig, [{"optim": {"lr": 0.01}}], overrides=["optim.epochs=3"])
    >>> (cfg.optim.lr, cfg.optim.epochs)
    (0.01, 3)
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from radiossl.errors import ConfigError
from radiossl.shipped_configs import config_not_found_message, find_shipped_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib; tomli is the same parser as a package
    import tomli as tomllib

T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class DataConfig(Section):
    """Where the data is and how samples are cut from it."""

    root: Path | None = Field(
        None, description="Input folder: preprocessed folder (pretrain) or raw dataset (finetune/evaluate)."
    )
    crop_size: tuple[int, int, int] = Field(
        (64, 64, 32), description="Network input size (X, Y, Z) in voxels; each divisible by 8."
    )
    ratio: float = Field(1.0, gt=0.0, le=1.0, description="Fraction of training cases used (nested subsets).")
    workers: int = Field(2, ge=0, description="DataLoader worker processes.")


class ModelConfig(Section):
    """The backbone network. ``width`` scales every channel count (1.0 = published networks)."""

    name: str = Field(
        "unet3d",
        min_length=1,
        description="Backbone (a radiossl.models plugin): unet3d, plainconv-unet, resenc-unet, resenc-m, resenc-l, "
        "resenc-xl, or a plugin's name (radiossl plugins list).",
    )
    width: float = Field(1.0, gt=0.0, le=4.0, description="Channel multiplier; 1.0 = 19 M-parameter U-Net.")
    in_channels: int = Field(1, ge=1, description="Input channels (4 for BraTS as one multi-channel sample).")
    skip_connections: bool = Field(
        False, description="Decoder skip connections (unet3d; nnU-Net U-Nets always have them)."
    )
    norm: Literal["batch", "group", "instance", "genesis"] = Field(
        "batch", description="Normalisation: batch, group (8 groups), instance, or ModelsGenesis' batch-stat norm."
    )


class OptimConfig(Section):
    """Optimiser and learning-rate schedule."""

    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    implementation: Literal["auto", "fused", "foreach", "for-loop"] = Field(
        "auto",
        description="How the optimiser updates the parameters: fused (one kernel for all of them), foreach or "
        "for-loop (one parameter at a time); auto = fused for CUDA parameters, torch's default on other devices "
        "(on the CPU the fused step was no faster within a training step). The update is the same up to float "
        "rounding.",
    )
    lr: float = Field(2e-3, gt=0.0, description="Base learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    weight_decay: float = Field(1e-4, ge=0.0)
    epochs: int = Field(240, ge=1)
    batch_size: int = Field(16, ge=1, description="Batch size per process.")
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0, description="Linear warm-up length (cosine schedule).")
    min_lr: float = Field(0.0, ge=0.0, description="Final learning rate of the cosine schedule.")
    step_size: int = Field(50, ge=1, description="Epochs between decays (step schedule).")
    gamma: float = Field(0.5, gt=0.0, description="Decay factor (step schedule).")
    grad_clip: float | None = Field(None, gt=0.0, description="Clip the global gradient norm to this value.")
    accumulate: int = Field(1, ge=1, description="Gradient accumulation steps.")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none",
        description="Scale optim.lr with the effective batch size (batch_size x processes x accumulate) "
        "relative to reference_batch_size: linear (lr x ratio), sqrt (lr x sqrt(ratio)) or none.",
    )
    reference_batch_size: int | None = Field(
        None,
        ge=1,
        description="The effective batch size optim.lr was tuned for (unset: optim.batch_size, i.e. one "
        "process without accumulation).",
    )
    patience: int | None = Field(
        None, ge=1, description="Stop after this many epochs without a better validation loss (off when unset)."
    )


class RuntimeConfig(Section):
    """Device, precision and reproducibility."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 1
    deterministic: bool = Field(False, description="Deterministic kernels; resumed runs match uninterrupted ones.")
    amp: Literal["none", "bf16", "fp16", "auto"] = Field(
        "none",
        description="Autocast precision; losses stay float32. auto = bf16 where the device computes it natively. "
        "bf16/fp16 on a device without native support fall back to float32 with a warning.",
    )
    workers: int = Field(2, ge=0, description="Worker processes for CPU-bound stages.")
    dist_timeout_s: float = Field(
        600.0,
        gt=0.0,
        description="Under torchrun: seconds a rank waits in a collective for a peer that went silent (a frozen "
        "process, a lost machine or link) before every rank stops with an error naming it.",
    )
    memory_format: Literal["auto", "contiguous", "channels_last"] = Field(
        "auto",
        description="Memory layout of the network's 3D weights (activations follow): channels_last = "
        "torch.channels_last_3d, 1.1-1.4x faster small-channel 3D U-Net steps on CPUs; auto = channels_last "
        "on the CPU, contiguous on GPUs.",
    )
    sync_batchnorm: bool = Field(
        False,
        description="Under torchrun on GPUs, normalise BatchNorm layers with statistics of the whole global "
        "batch (SyncBatchNorm); ModelsGenesis' ContBatchNorm and the batch-of-one-safe heads stay per GPU.",
    )


class LoggingConfig(Section):
    """Progress, metrics files, TensorBoard, visualisations and checkpoint frequency."""

    tensorboard: bool = False
    vis: bool = Field(False, description="Write PNG visualisations to <run>/vis (and TensorBoard).")
    vis_every: int = Field(1, ge=1, description="Epochs between visualisations.")
    log_every: int = Field(10, ge=1, description="Steps between metric lines in metrics.jsonl.")
    checkpoint_every: int = Field(1, ge=1, description="Epochs between checkpoint_latest.pt writes.")
    progress: bool = Field(
        True, description="Live progress on a terminal (off: plain epoch lines at a bounded rate, as in pipes)."
    )
    verbose: bool = Field(
        False,
        description="Console: every epoch's full metric line and every tensor of a weights-loading report "
        "(train.log and metrics.jsonl always have everything).",
    )


DEFAULT_PROBE_OVERRIDES: tuple[str, ...] = ("optim.epochs=10", "data.ratio=0.25", "validation.every=5")
"""The default ``monitoring.probe_overrides``: a short probe on a quarter of the training cases."""


class MonitoringConfig(Section):
    """Monitoring during pretraining: collapse statistics of the bottleneck embeddings every epoch, and
    (with ``probe_task``) a frozen-encoder segmentation probe of the encoder every ``probe_every`` epochs."""

    enabled: bool = Field(True, description="Log emb_rank and emb_spread every epoch and warn on collapse.")
    samples: int = Field(
        256,
        ge=2,
        description="Training samples embedded per epoch (all processes together; the first batches of the epoch).",
    )
    rank_fraction: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="An epoch looks collapsed when the effective rank is below this fraction of "
        "min(samples, embedding dimension)...",
    )
    min_spread: float = Field(0.05, ge=0.0, description="...or the spread ratio (about 1 when healthy) is below this.")
    patience: int = Field(3, ge=1, description="Collapsed epochs in a row before the one-line warning.")
    probe_task: str | None = Field(
        None,
        min_length=1,
        description="Probe the encoder during pretraining on this downstream task (a radiossl.tasks plugin: "
        "radiossl plugins list); None = no probes.",
    )
    probe_data: Path | None = Field(None, description="The probe task's raw dataset folder (a small labelled set).")
    probe_every: int = Field(10, ge=1, description="Probe every N epochs (and after the last epoch).")
    probe_overrides: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROBE_OVERRIDES),
        description="key=value settings of each probe run (its --set options, after the pretraining's model.*).",
    )
    probe_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads of each probe when pretraining on the CPU (None: a quarter of the cores, at least 1).",
    )


class MethodConfig(Section):
    """Base of every pretext method's config; ``name`` is the discriminator."""

    name: str


class RunConfig(Section):
    """Sections common to every training run (pretrain and finetune)."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    out: Path = Field(Path("runs"), description="Folder under which the run folder is created.")


class ExampleRunConfig(RunConfig):
    """A run config without a method section (used in docs and tests)."""


# --------------------------------------------------------------------------------------------------
# Reading files and overrides


def read_config_text(path: str | Path) -> tuple[str, str]:
    """The text and lower-case suffix of a config given as a file path or as a shipped config's name.

    An existing file always wins; otherwise ``path`` is looked up among the configs shipped with
    radiossl (``thesis/pretrain/patch-cluster-k50-brats18``, with or without ``.yaml``).
    """
    file = Path(path)
    if file.is_file():
        return file.read_text(encoding="utf-8"), file.suffix.lower()
    shipped = find_shipped_config(str(path))
    if shipped is None:
        raise ConfigError(config_not_found_message(str(path)))
    return shipped.read_text(encoding="utf-8"), PurePosixPath(shipped.name).suffix.lower()


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config into a dict.

    ``path`` is a file or, when no such file exists, the name of a shipped config (see :func:`read_config_text`).
    """
    text, suffix = read_config_text(path)
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in {".yaml", ".yml", ".json"}:
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: unknown config format (use .yaml, .yml or .toml)")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: cannot parse: {first_line}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return data


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"a.b=value"`` into ``{"a": {"b": value}}``; the value is parsed as a YAML scalar or list."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected section.field=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: cannot parse value") from exc
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``; nested mappings merge, everything else is replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(exc: ValidationError, source: str = "config") -> str:
    """One line per problem, each naming the dotted field path."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; `radiossl config show` lists all fields)"
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)


def build_config(
    config_class: type[T],
    layers: Sequence[Mapping[str, Any]] = (),
    overrides: Iterable[str] = (),
    source: str = "config",
) -> T:
    """Validate the merge of ``layers`` (lowest precedence first) and ``--set`` overrides."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    for text in overrides:
        merged = deep_merge(merged, parse_override(text))
    try:
        return config_class.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


def load_config_file_into(
    config_class: type[T],
    file: str | Path | None = None,
    overrides: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> T:
    """defaults < file < ``--set`` overrides < explicit flags (a nested dict), validated as ``config_class``."""
    layers: list[Mapping[str, Any]] = [defaults or {}]
    if file is not None:
        layers.append(read_config_file(file))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    for text in overrides:
        merged = deep_merge(merged, parse_override(text))
    if flags:
        merged = deep_merge(merged, flags)
    try:
        return config_class.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(file) if file else "config")) from exc


# --------------------------------------------------------------------------------------------------
# Writing configs


def to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML (paths as strings, tuples as lists)."""
    data = json.loads(config.model_dump_json())
    return yaml.safe_dump(data, sort_keys=False)


def commented_yaml(config: BaseModel) -> str:
    """The config as YAML with each field's description as a comment (for ``radiossl config show``)."""
    lines: list[str] = []
    _emit_commented(config, 0, lines)
    return "\n".join(lines) + "\n"


def _emit_commented(model: BaseModel, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    fields = type(model).model_fields
    for name, info in fields.items():
        value = getattr(model, name)
        if info.description:
            lines.append(f"{pad}# {info.description}")
        if isinstance(value, BaseModel):
            doc = (type(value).__doc__ or "").strip().splitlines()
            if doc and not info.description:
                lines.append(f"{pad}# {doc[0]}")
            lines.append(f"{pad}{name}:")
            _emit_commented(value, indent + 1, lines)
            continue
        plain = json.loads(json.dumps(value, default=_plain))
        dumped = yaml.safe_dump({name: plain}, default_flow_style=True, sort_keys=False).strip()
        if dumped.startswith("{") and dumped.endswith("}"):
            dumped = dumped[1:-1]
        choices = _literal_choices(info.annotation)
        suffix = f"  # one of: {', '.join(choices)}" if choices and len(choices) > 1 else ""
        lines.append(f"{pad}{dumped}{suffix}")


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def _literal_choices(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is Literal:
        return [str(arg) for arg in typing.get_args(annotation)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        out: list[str] = []
        for arg in typing.get_args(annotation):
            out.extend(_literal_choices(arg))
        return out
    return []


def json_schema(config_class: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a config class."""
    return config_class.model_json_schema()
