"""Configs of ``radiossl finetune`` (:class:`FinetuneConfig`) and ``radiossl evaluate``
(:class:`EvaluateConfig`).

Both carry a ``task`` section whose class depends on the task (``name`` is the discriminator):
:func:`task_config_class` builds the typed config class of one task and stage, and
:func:`load_task_config` resolves a config in layers (class defaults < task defaults < file <
``--set`` < explicit flags).

Example:
    >>> cfg = load_task_config("finetune", "brats", overrides=["task.et_label=3", "optim.epochs=2"])
    >>> cfg.task.et_label, cfg.optim.epochs, cfg.optim.lr, cfg.data.crop_size
    (3, 2, 0.001, (128, 128, 128))
    >>> load_task_config("evaluate", "lits").sliding_window.overlap
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from radiossl.config import (
    DataConfig,
    RunConfig,
    RuntimeConfig,
    Section,
    deep_merge,
    load_config_file_into,
    read_config_file,
)
from radiossl.downstream.tasks.base import TaskConfig
from radiossl.errors import ConfigError

Stage = Literal["finetune", "evaluate"]


class SamplingConfig(Section):
    """How training patches are cut from the cached training cases."""

    foreground_fraction: float = Field(
        0.33,
        ge=0.0,
        le=1.0,
        description="Share of patches centred on a random foreground voxel; the rest are "
        "uniformly random (thesis: 0, random crops only).",
    )
    patches_per_case: int = Field(1, ge=1, description="Patches per training case per epoch (epoch length).")


class AugmentConfig(Section):
    """Online augmentation of training patches (thesis BraTS/LiTS: none; ``enabled: false``)."""

    enabled: bool = True
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a flip, per spatial axis.")
    intensity_prob: float = Field(
        0.3, ge=0.0, le=1.0, description="Probability of a random per-channel scale and shift."
    )
    intensity_scale: float = Field(0.1, ge=0.0, lt=1.0, description="Scale drawn from [1 - s, 1 + s].")
    intensity_shift: float = Field(0.1, ge=0.0, description="Shift drawn from [-s, s] (normalised units).")
    noise_std: float = Field(0.0, ge=0.0, description="Std of additive Gaussian noise (0 = off).")


class ValidationConfig(Section):
    """Validation during finetuning: hard Dice (threshold 0.5) on whole validation volumes.

    Early stopping is ``optim.patience`` (validations without a better ``val_dice``), as for every run;
    ``validation.patience`` in a finetune config is read as another name for it.
    """

    every: int = Field(1, ge=1, description="Validate every N epochs (and after the last epoch).")
    max_cases: int | None = Field(None, ge=1, description="Validate on at most this many validation cases.")
    monitor: Literal["val_dice", "val_loss"] = Field(
        "val_dice",
        description="What selects checkpoint_best.pt (and counts for patience): val_dice (highest hard Dice on "
        "whole volumes) or val_loss (lowest finetuning loss on one centre crop per case, in batches of "
        "optim.batch_size: the thesis' rule).",
    )


class SlidingWindowConfig(Section):
    """Full-volume sliding-window inference."""

    roi: tuple[int, int, int] | None = Field(
        None, description="Window size (X, Y, Z); null = the training crop size (data.crop_size)."
    )
    overlap: float = Field(0.5, ge=0.0, lt=1.0, description="Overlap of neighbouring windows.")
    mode: Literal["gaussian", "constant"] = Field("gaussian", description="Blending weights of a window.")
    sigma_scale: float = Field(0.125, gt=0.0, description="Gaussian sigma as a fraction of the window size.")
    sw_batch_size: int = Field(1, ge=1, description="Windows per forward pass.")
    backend: Literal["auto", "monai", "builtin"] = Field(
        "auto", description="auto = MONAI's sliding_window_inference when installed, else the built-in one."
    )


class LossConfig(Section):
    """Soft Dice + BCE on region logits (computed in float32)."""

    dice_weight: float = Field(1.0, ge=0.0)
    bce_weight: float = Field(0.2, ge=0.0, description="Thesis: 0.2.")
    reduction: Literal["sum", "mean"] = Field("sum", description="Over regions (thesis: sum).")
    legacy_double_sigmoid: bool = Field(
        False, description="Reproduce the thesis' BCE on probabilities-as-logits (spec §8 item 13)."
    )


class EmptyPolicyConfig(Section):
    """Metrics when the ground truth and/or the prediction of a region is empty."""

    both_empty: Literal["perfect", "nan"] = Field(
        "perfect", description="Both empty: perfect = Dice 1 and HD 0; nan = left out of the mean."
    )
    one_empty_hd: Literal["diagonal", "nan", "inf"] = Field(
        "diagonal",
        description="HD when exactly one is empty (Dice is 0): the image diagonal in mm, nan or inf.",
    )


class FinetuneConfig(RunConfig):
    """A finetuning run: shared sections, the task section and the finetuning settings."""

    task: TaskConfig = Field(description="Task section; its class depends on task.name.")
    mode: Literal["finetune", "probe"] = Field(
        "finetune",
        description="finetune = train the network (the parts named by train); probe = keep the encoder frozen "
        "and train only a 1x1x1 convolution per encoder stage (radiossl probe; train must stay all).",
    )
    weights: Path | None = Field(None, description="Checkpoint to start from; null = train from scratch.")
    transfer: Literal["encoder", "all", "none"] = Field(
        "encoder", description="What to copy from weights: the encoder, everything that fits, or nothing."
    )
    train: Literal["all", "decoder", "last"] = Field(
        "all", description="Parts that train; the rest is frozen (norm layers in eval mode)."
    )
    adapt_in_channels: Literal["scale", "repeat", "none"] = Field(
        "scale",
        description="First conv for other input channel counts: scale (tile / C), repeat (thesis), none.",
    )
    allow_unsafe_pickle: bool = Field(False, description="Unpickle weights files with Python objects (trusted only).")
    ratio_order: Literal["seeded", "given"] = Field(
        "seeded",
        description="How the data.ratio subset is chosen: seeded (nested, by a key per case) or given (the "
        "first cases in split order: the thesis took the first patients of brats_train.txt).",
    )
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    sliding_window: SlidingWindowConfig = Field(default_factory=SlidingWindowConfig)
    loss: LossConfig = Field(default_factory=LossConfig)

    @model_validator(mode="after")
    def _probe_trains_its_head(self) -> FinetuneConfig:
        if self.mode == "probe" and self.train != "all":
            raise ValueError(
                f"train={self.train!r} does not apply to mode=probe: a probe always trains only its head "
                "(the encoder is frozen); leave train at all"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _patience_alias(cls, data: Any) -> Any:
        """Read ``validation.patience`` (finetune configs before one early-stopping setting) as ``optim.patience``."""
        validation = data.get("validation") if isinstance(data, Mapping) else None
        if not isinstance(validation, Mapping) or "patience" not in validation:
            return data
        data, validation = dict(data), dict(validation)
        alias = validation.pop("patience")
        data["validation"] = validation
        optim = data.get("optim")
        optim = dict(optim.model_dump() if isinstance(optim, BaseModel) else optim or {})
        if alias is not None:
            if optim.get("patience") not in (None, alias):
                raise ValueError(
                    f"validation.patience={alias} and optim.patience={optim['patience']} disagree; "
                    "validation.patience is another name for optim.patience: set only optim.patience"
                )
            optim["patience"] = alias
        data["optim"] = optim
        return data


class EvaluateConfig(Section):
    """An evaluation of a finetuned checkpoint on the cases of one split."""

    task: TaskConfig = Field(description="Task section; its class depends on task.name.")
    data: DataConfig = Field(default_factory=DataConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    weights: Path | None = Field(None, description="Finetuned checkpoint (checkpoint_best.pt of a finetune run).")
    out: Path = Field(Path("evaluation"), description="Output folder (metrics.csv, summary.json, predictions/).")
    split: Literal["test", "val", "train", "train_subset", "all"] = Field(
        "test",
        description="Which cases to evaluate: train is the whole training split, train_subset only the "
        "data.ratio subset the checkpoint was finetuned on.",
    )
    protocol: Literal["full", "thesis-crops"] = Field(
        "full",
        description="full = sliding window on whole volumes, hard Dice + HD95; thesis-crops = one centre "
        "crop per case, soft Dice (spec §7.3).",
    )
    save_predictions: bool = Field(False, description="Write predicted label maps as NIfTI (full protocol).")
    tta_flips: bool = Field(False, description="Average predictions over the 8 flips of the spatial axes.")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Probability above which a voxel is in a region.")
    sliding_window: SlidingWindowConfig = Field(default_factory=SlidingWindowConfig)
    empty_policy: EmptyPolicyConfig = Field(default_factory=EmptyPolicyConfig)
    hd_percentile: float = Field(95.0, ge=0.0, le=100.0, description="Percentile of the Hausdorff distance.")
    task_from_checkpoint: bool = Field(
        True, description="Take task settings not given explicitly from the checkpoint's finetune config."
    )
    max_cases: int | None = Field(None, ge=1, description="Evaluate at most this many cases.")
    allow_unsafe_pickle: bool = Field(False, description="Unpickle weights files with Python objects (trusted only).")


@cache
def task_config_class(task: str, stage: Stage = "finetune") -> tuple[type[Section], dict[str, Any]]:
    """``(config class, defaults)`` of ``task`` for ``stage`` (``finetune`` or ``evaluate``).

    The class is :class:`FinetuneConfig`/:class:`EvaluateConfig` with a ``task`` section typed as the
    task's config class; the defaults hold the task's recipe (learning rate, crop size, ...).
    """
    from radiossl.downstream.tasks.base import get_task_class

    if stage not in ("finetune", "evaluate"):
        raise ConfigError(f"unknown stage {stage!r}; use finetune or evaluate")
    task_cls = get_task_class(task)
    section = task_cls.config_class
    base: type[Section] = FinetuneConfig if stage == "finetune" else EvaluateConfig
    config_class = create_model(  # type: ignore[call-overload]
        f"{base.__name__}_{task_cls.__name__}",
        __base__=base,
        __doc__=base.__doc__,
        task=(section, Field(default_factory=section, description=f"Settings of task {task!r}.")),
    )
    recipe = task_cls.default_settings()
    if stage == "finetune":
        defaults = deep_merge(recipe, {"task": {"name": task}})
    else:
        crop = recipe.get("data", {}).get("crop_size")
        defaults = {"task": {"name": task}, **({"data": {"crop_size": crop}} if crop else {})}
    return config_class, defaults


def task_name_from_file(file: str | Path) -> str | None:
    """The ``task.name`` written in a config file, if any."""
    section = read_config_file(file).get("task")
    if isinstance(section, dict) and isinstance(section.get("name"), str):
        return section["name"]
    return None


def load_task_config(
    stage: Stage = "finetune",
    name: str | None = None,
    file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> Any:
    """Resolve a finetune or evaluate config: defaults < task defaults < file < ``--set`` < flags.

    ``name`` may be omitted when the file names the task (``task.name``).
    """
    in_file = task_name_from_file(file) if file is not None else None
    name = name or in_file
    if name is None:
        raise ConfigError("no task given: use --task NAME or set task.name in the config file")
    if in_file is not None and in_file != name:
        raise ConfigError(f"{file}: task.name is {in_file!r} but --task is {name!r}")
    config_class, defaults = task_config_class(name, stage)
    return load_config_file_into(config_class, file, overrides, defaults, flags)
