"""Finetuning a 3D U-Net on a segmentation task: ``radiossl finetune`` and :func:`finetune`.

:class:`FinetuneTask` implements the engine's :class:`~radiossl.engine.protocol.TrainingTask`, so
the engine provides device handling, mixed precision, DDP, checkpoints (``checkpoint_best.pt`` by
validation Dice), resume, logging and ``--vis`` PNGs. What it adds:

* the network: the backbone ``model.name`` (default ``unet3d``) with ``in_channels`` = task channels and
  ``out_channels`` = task regions, built by :func:`radiossl.models.network.build_network`, started from
  scratch, a radiossl pretext checkpoint or a foreign
  checkpoint (``weights`` + ``transfer``; the loader's report is shown per block and saved), with parts
  frozen per ``train`` (:mod:`radiossl.downstream.freezing`); an nnssl checkpoint brings its own network
  (the nnU-Net U-Net of its adaptation plan, :mod:`radiossl.models.nnssl_format`);
* data: the task's split (validation disjoint from test), the nested, seeded ``data.ratio`` subset of
  the training cases, cases cached in memory, random foreground-aware patches with augmentation.
  A case that cannot be used (unreadable, label values outside the task's label set, duplicate case
  id) is printed, left out, and listed under ``left_out`` in ``splits.json`` and
  :attr:`FinetuneResult.left_out`; training goes on with the other cases (``radiossl finetune``
  then exits with code 1);
* loss: soft Dice + BCE on logits in float32 (:mod:`radiossl.downstream.losses`);
* validation every ``validation.every`` epochs: hard Dice (threshold 0.5) per region on whole
  validation volumes by sliding-window inference; ``val_dice`` (mean over cases and regions) selects
  the best checkpoint, or, with ``validation.monitor: val_loss`` (the thesis' rule), the lowest loss on one
  centre crop per validation case; the engine's early stopping (``optim.patience``; ``validation.patience`` is
  another name for it) stops after that many validations without a better monitored value.

Example (CPU, tiny)::

    from radiossl.downstream.config import load_task_config
    from radiossl.downstream.finetune import finetune
    flags = {"data": {"root": "phantoms/brats", "crop_size": [32, 32, 16]},
             "model": {"width": 0.125}, "optim": {"epochs": 2}}
    cfg = load_task_config("finetune", "brats", flags=flags)
    result = finetune(cfg)
    print(result.best_checkpoint, result.best_metric)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from radiossl.data.splits import training_subset
from radiossl.downstream.datasets import CaseCache, CaseIndexDataset, LeftOutCase, PatchDataset
from radiossl.downstream.freezing import FreezeReport, freeze, train_mode
from radiossl.downstream.inference import InferenceSettings, predict_probabilities
from radiossl.downstream.losses import DiceBCELoss
from radiossl.downstream.metrics import dice
from radiossl.downstream.tasks.base import SegmentationTask, get_task_class
from radiossl.engine.progress import current_reporter
from radiossl.engine.protocol import Monitor, StepContext, StepOutput, TaskDefaults
from radiossl.errors import CheckpointError, ConfigError, DataError, RadiosslError

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset

    from radiossl.data.splits import Splits
    from radiossl.downstream.config import FinetuneConfig

VIS_SAMPLES = 2


def metric_key(region: str) -> str:
    """``val_dice_<region>`` with the region name lower-cased and made key-safe."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in region.lower()).strip("_")
    return f"val_dice_{safe or 'region'}"


def check_sizes(config: FinetuneConfig) -> None:
    """Patch and window sizes must be multiples of the backbone's total stride (8 for unet3d).

    Training patches are also checked with the batch size (a one-voxel bottleneck under batch norm
    needs two samples); the sliding window runs in eval mode, where running statistics serve.
    """
    from radiossl.models.network import check_sizes as check_backbone_sizes

    check_backbone_sizes(config.model, {"data.crop_size": config.data.crop_size}, batch_size=config.optim.batch_size)
    check_backbone_sizes(config.model, {"sliding_window.roi": config.sliding_window.roi})


class FinetuneTask(TaskDefaults):
    """The engine-facing finetuning task (see the module docstring).

    Its messages go through the run's reporter, which the engine lets through on the main process only.

    Args:
        config: the resolved finetune config (``config.task`` is the task's section).
        task: the segmentation task; built from ``config.task`` and ``config.data.root`` when omitted.
    """

    kind: str = "finetune"
    headline_metrics: ClassVar[tuple[str, ...] | None] = ("loss", "val_dice", "lr")

    def __init__(self, config: FinetuneConfig, task: SegmentationTask | None = None) -> None:
        self.config = config
        if task is None:
            task = get_task_class(config.task.name)(config.task, config.data.root)
        self.task = task
        self.name = task.name
        self.monitor: Monitor | None = (
            ("val_loss", "min") if config.validation.monitor == "val_loss" else ("val_dice", "max")
        )
        if config.validation.monitor == "val_loss":  # the thesis' checkpoint rule: show that loss too
            self.headline_metrics = ("loss", "val_loss", "val_dice", "lr")  # type: ignore[misc]
        self.loss_fn = DiceBCELoss(
            config.loss.dice_weight,
            config.loss.bce_weight,
            config.loss.reduction,
            config.loss.legacy_double_sigmoid,
        )
        self.freeze_report: FreezeReport | None = None
        self.load_report: Any = None
        self.splits: Splits | None = None
        self.train_ids: list[str] = []
        self.train_cache: CaseCache | None = None
        self.val_cache: CaseCache | None = None
        self.left_out: list[dict[str, str]] = []

    # ------------------------------------------------------------------------------------ model

    def build_model(self) -> nn.Module:
        cfg = self.config
        model = self.build_backbone()
        if cfg.weights is not None and cfg.transfer != "none":
            self.load_report = self._load_weights(model)
        elif cfg.weights is not None:
            _print(f"transfer=none: not loading {cfg.weights}")
        self.freeze_report = freeze(model, cfg.train)
        _print(self.freeze_report.summary())
        return model

    def build_backbone(self) -> nn.Module:
        """The freshly initialised backbone network (that of an nnssl checkpoint, else ``model.*``'s)."""
        from radiossl.models.factory import build_model
        from radiossl.models.network import build_network
        from radiossl.models.nnssl_format import finetune_model_spec

        cfg = self.config
        # An nnssl checkpoint describes its own network: build that one (the model.* settings do not apply).
        nnssl_spec = (
            finetune_model_spec(
                cfg.weights,
                self.task.in_channels,
                self.task.out_channels,
                {"data.crop_size": cfg.data.crop_size, "sliding_window.roi": cfg.sliding_window.roi},
            )
            if cfg.weights is not None and cfg.transfer != "none"
            else None
        )
        if nnssl_spec is not None:
            model = build_model(nnssl_spec)
            _print(f"{cfg.weights}: nnssl checkpoint; building its {nnssl_spec['class']} (model.* settings unused)")
        else:
            model = build_network(cfg.model, in_channels=self.task.in_channels, out_channels=self.task.out_channels)
        return model

    def _load_weights(self, model: nn.Module) -> Any:
        from radiossl.models.loading import load_pretrained

        cfg = self.config
        assert cfg.weights is not None
        adapt = {"scale": "scale", "repeat": "repeat", "none": False}[cfg.adapt_in_channels]
        report = load_pretrained(
            model,
            cfg.weights,
            transfer=cfg.transfer,  # type: ignore[arg-type]
            strict=False,
            adapt_in_channels=adapt,  # type: ignore[arg-type]
            allow_unsafe=cfg.allow_unsafe_pickle,
        )
        if report.loaded == 0:
            raise CheckpointError(
                f"{cfg.weights}: no tensor fits this network (transfer={cfg.transfer}); {report.summary()}"
            )
        current_reporter().table(report.as_table(verbose=cfg.logging.verbose))
        return report

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        from radiossl.models.factory import model_spec

        return model_spec(model)

    def train_mode(self, model: nn.Module) -> None:
        train_mode(model, self.freeze_report)

    # ------------------------------------------------------------------------------------- data

    def prepare_splits(self) -> Splits:
        """The case split (validation carved out when needed) and the ratio subset of training cases."""
        if self.splits is None:
            cfg = self.config
            cases = self.task.list_cases()
            self.splits = self.task.splits(cases, cfg.runtime.seed)
            self.train_ids = training_subset(self.splits, cfg.data.ratio, cfg.runtime.seed, cfg.ratio_order)
            self._cases = {case.case_id: case for case in cases}
        return self.splits

    def build_datasets(self) -> tuple[Dataset[Any], Dataset[Any] | None]:
        cfg = self.config
        splits = self.prepare_splits()
        if not self.train_ids:
            raise DataError(f"{cfg.data.root}: no training cases in the split (ratio {cfg.data.ratio})")
        threads = max(1, cfg.runtime.workers)
        self.left_out = []
        self.train_cache = CaseCache(self.task, [self._cases[c] for c in self.train_ids], cfg.runtime.seed, threads)
        self.train_cache.preload()
        self._record_left_out(self.train_cache.left_out, "train")
        if len(self.train_cache) == 0:
            raise DataError(
                f"{cfg.data.root}: none of the {len(self.train_ids)} training case(s) could be loaded "
                f"(first: {self.train_cache.left_out[0].error})"
            )
        train_set = PatchDataset(self.train_cache, cfg.data.crop_size, cfg.sampling, cfg.augment, cfg.runtime.seed)
        val_ids = list(splits.test if self.task.settings.val_is_test else splits.val)
        val_ids = val_ids[: cfg.validation.max_cases] if cfg.validation.max_cases else val_ids
        if val_ids:
            self.val_cache = CaseCache(self.task, [self._cases[c] for c in val_ids], cfg.runtime.seed, threads)
            self.val_cache.preload()
            self._record_left_out(self.val_cache.left_out, "val")
            if len(self.val_cache):
                return train_set, CaseIndexDataset(self.val_cache)
            self.val_cache = None
        self.monitor = None
        _print("no validation cases: the best checkpoint follows the training loss")
        return train_set, None

    def _record_left_out(self, cases: list[LeftOutCase], split: str) -> None:
        """Remember (and report) the cases of ``split`` that could not be loaded."""
        for case in cases:
            self.left_out.append({"case": case.case_id, "split": split, "error": case.error})
            _print(f"left out {split} case {case.case_id}: {case.error}")

    # ------------------------------------------------------------------------------------- steps

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        image, target = batch[0], batch[1]  # a Patch (image, target, index) or a plain pair
        logits = model(image)
        terms = self.loss_fn.terms(logits, target)
        return StepOutput(loss=terms.loss, metrics={"dice_loss": terms.dice, "bce": terms.bce})

    def roi(self) -> tuple[int, int, int]:
        """Sliding-window size: ``sliding_window.roi`` or the training crop size."""
        roi = self.config.sliding_window.roi or self.config.data.crop_size
        return (int(roi[0]), int(roi[1]), int(roi[2]))

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]:
        """Hard Dice per region on whole validation volumes (every ``validation.every`` epochs).

        Epochs without validation report ``val_dice = nan`` (never selected as best).
        """
        from radiossl.models.factory import unwrap_model

        if loader is None or self.val_cache is None:
            return {}
        cfg = self.config
        epoch = context.epoch + 1
        names = self.task.region_names()
        if epoch % cfg.validation.every and epoch != context.total_epochs:
            return {"val_dice": math.nan, **({"val_loss": math.nan} if self._monitored() == "val_loss" else {})}
        net = unwrap_model(model)
        inference = InferenceSettings.from_config(cfg.sliding_window, self.roi())
        per_region: list[list[float]] = [[] for _ in names]
        for batch in loader:
            for index in torch.as_tensor(batch).reshape(-1).tolist():
                item = self.val_cache.get(int(index))
                probs = predict_probabilities(net, item.image, inference, device=context.device)
                masks = probs.numpy() > 0.5
                targets = self.task.region_targets(item.label)
                for r in range(len(names)):
                    per_region[r].append(dice(masks[r], targets[r]))
        if not per_region[0]:  # this rank received no validation case
            return {"val_dice": math.nan}
        metrics = {metric_key(name): float(np.mean(values)) for name, values in zip(names, per_region, strict=True)}
        metrics["val_dice"] = float(np.mean([v for values in per_region for v in values]))
        if self._monitored() == "val_loss":
            metrics["val_loss"] = self.centre_crop_loss(net, context.device)
        return metrics

    def _monitored(self) -> str:
        return self.monitor[0] if self.monitor is not None else "val_dice"

    @torch.no_grad()
    def centre_crop_loss(self, net: nn.Module, device: torch.device) -> float:
        """The thesis' validation loss: the finetuning loss on one centre crop per validation case, averaged
        over batches of ``optim.batch_size`` cases (the thesis then also rounded each to 4 decimals)."""
        from radiossl.downstream.crops import centre_crop

        assert self.val_cache is not None
        crop = tuple(int(c) for c in self.config.data.crop_size)
        was_training = net.training
        net.eval()
        losses = []
        try:
            size = self.config.optim.batch_size
            for start in range(0, len(self.val_cache), size):
                images, targets = [], []
                for index in range(start, min(start + size, len(self.val_cache))):
                    item = self.val_cache.get(index)
                    images.append(self.task.normalise_crop(centre_crop(item.image, crop)))  # type: ignore[arg-type]
                    targets.append(self.task.region_targets(centre_crop(item.label, crop)))  # type: ignore[arg-type]
                image = torch.from_numpy(np.stack(images)).to(device)
                target = torch.from_numpy(np.stack(targets)).to(device)
                losses.append(float(self.loss_fn(net(image), target)))
        finally:
            net.train(was_training)
        return float(np.mean(losses))

    # ----------------------------------------------------------------------------------- output

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """``segmentation``: a row per training patch (the first :data:`VIS_SAMPLES` of the batch).

        Panels: the first input channel, ground truth, prediction (regions painted in channel order,
        so nested regions show the innermost) and the prediction over the input; a legend names the
        regions. The axial slice shown is the one with most ground-truth foreground (the middle
        slice of a patch without any).
        """
        from radiossl.engine.visualise import batch_case
        from radiossl.utils.figures import (
            Figure,
            Panel,
            Row,
            blend,
            colour_values,
            figure_title,
            label_colours,
            most_foreground_slice,
            paint_regions,
            region_legend,
            render,
            to_rgb_uint8,
        )

        image, target = batch[0][:VIS_SAMPLES], batch[1][:VIS_SAMPLES]
        probs = torch.sigmoid(model(image).float())
        names = self.task.region_names()
        colours = label_colours(range(1, len(names) + 1))
        channel = self._first_channel_name()
        rows, cases = [], []
        for i in range(image.shape[0]):
            truth = (target[i] > 0.5).cpu().numpy()
            z = most_foreground_slice(truth.any(axis=0))
            grey = to_rgb_uint8(image[i, 0, :, :, z])
            truth_map = paint_regions(truth[:, :, :, z])
            predicted_map = paint_regions((probs[i, :, :, :, z] > 0.5).cpu().numpy())
            predicted = colour_values(predicted_map, colours)
            case = batch_case(batch, context, i)
            if case is not None and case not in cases:
                cases.append(case)
            panels = [
                Panel(f"input {channel} (z={z})", grey),
                Panel("ground truth", colour_values(truth_map, colours), exact=True),
                Panel("prediction", predicted, exact=True),
                Panel("prediction over input", blend(grey, predicted, predicted_map > 0)),
            ]
            rows.append(Row(f"patch {i + 1}" + (f" of case {case}" if case else ""), panels))
        title = figure_title(
            f"{self.name} segmentation",
            case=", ".join(cases) or None,
            epoch=context.epoch + 1,
            total_epochs=context.total_epochs,
        )
        return {"segmentation": render(Figure(title, rows, region_legend(names), legend_title="regions"))}

    def _first_channel_name(self) -> str:
        """Name of input channel 0 for picture titles (``channel 0`` where the dataset cannot say)."""
        try:
            return self.task.channel_names()[0]
        except (RadiosslError, OSError, IndexError):
            return "channel 0"

    def run_name_parts(self) -> list[str]:
        cfg = self.config
        source = (
            "scratch" if cfg.weights is None or cfg.transfer == "none" else f"{cfg.transfer}-{Path(cfg.weights).stem}"
        )
        return [source, f"r{round(100 * cfg.data.ratio)}", f"train-{cfg.train}"]


def _print(message: str) -> None:
    current_reporter().message(message)  # the run's console channel (and its train.log)


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced."""

    run_dir: Path
    final_checkpoint: Path
    best_checkpoint: Path | None
    epochs_completed: int
    best_metric: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    splits: dict[str, Any] = field(default_factory=dict)
    load_report: dict[str, Any] | None = None
    stopped_early: bool = False
    left_out: list[dict[str, str]] = field(default_factory=list)
    """Cases that could not be loaded (``case``, ``split``, ``error``); training used the others."""
    is_main: bool = True
    """Whether this process is the job's main process (rank 0): the one that wrote the run folder and reports."""


RANDOM_ENCODER_WARNING = (
    "warning: probing a random, frozen encoder (no --weights): this is the random-features baseline, "
    "not a measure of any pretraining"
)


class ProbeTask(FinetuneTask):
    """The task of ``mode: probe`` (:mod:`radiossl.downstream.probe`): :class:`FinetuneTask` with a
    :class:`~radiossl.models.probe_net.ProbeNet`, encoder frozen and head trained."""

    kind: str = "probe"

    def build_model(self) -> nn.Module:
        from radiossl.models.probe_net import HEAD, ProbeNet

        cfg = self.config
        model = ProbeNet(self.build_backbone(), out_channels=self.task.out_channels)
        if cfg.weights is not None and cfg.transfer != "none":
            self.load_report = self._load_weights(model)
        else:
            _print(RANDOM_ENCODER_WARNING)
        self.freeze_report = freeze(model, "last")  # the head is the network's only head_prefixes
        head = sum(p.numel() for name, p in model.named_parameters() if name.startswith(HEAD + "."))
        _print(
            f"probe: encoder frozen ({len(self.freeze_report.frozen)} parameter tensors, "
            f"{len(self.freeze_report.frozen_norms)} norm layers in eval mode); the head trains "
            f"({len(self.freeze_report.trainable)} tensors, {head} parameters, on {len(model.stage_channels)} stages)"
        )
        return model

    def run_name_parts(self) -> list[str]:
        cfg = self.config
        source = "random" if cfg.weights is None or cfg.transfer == "none" else Path(cfg.weights).stem
        return [source, f"r{round(100 * cfg.data.ratio)}"]


def _task_class(mode: str) -> type[FinetuneTask]:
    """The engine task of ``mode``: :class:`FinetuneTask`, or the frozen-encoder probe's subclass of it."""
    return ProbeTask if mode == "probe" else FinetuneTask


def finetune(
    config: FinetuneConfig,
    resume: str | Path | None = None,
    extend_epochs: int | None = None,
    run_dir: str | Path | None = None,
) -> FinetuneResult:
    """Finetune ``config.task`` on ``config.data.root`` and return where the results are.

    ``resume`` and ``extend_epochs`` work as for :func:`radiossl.pretrain`; ``run_dir`` is the run
    folder to use instead of a new time-stamped one under ``config.out`` (with ``resume="auto"`` a
    folder holding a checkpoint is continued; ``radiossl sweep`` gives every cell its own).

    With ``mode: probe`` the encoder stays frozen and only a linear head on its stage features trains
    (:mod:`radiossl.downstream.probe`); everything else (data, validation, checkpoints, resume) is the same.

    Writes the engine's run folder plus ``splits.json`` (the cases used: training subset, validation,
    test, and ``left_out``: the cases that could not be loaded, with their errors) and, when weights
    were loaded, ``load_report.json``.
    """
    from radiossl.engine.trainer import run_training
    from radiossl.utils.atomic import write_json

    if config.data.root is None:
        raise ConfigError("data.root: no dataset folder given (--data RAW_DIR)")
    if not Path(config.data.root).is_dir():
        raise DataError(f"{config.data.root}: dataset folder not found")
    if config.weights is not None and config.transfer != "none" and not Path(config.weights).is_file():
        raise CheckpointError(f"{config.weights}: weights file not found")
    check_sizes(config)
    config = config.model_copy(deep=True)
    task = get_task_class(config.task.name)(config.task, config.data.root)
    config.model.in_channels = task.in_channels
    runner = _task_class(config.mode)(config, task)
    splits = runner.prepare_splits()
    folder = Path(run_dir) if run_dir is not None else None
    result = run_training(runner, config, run_dir=folder, resume=resume, extend_epochs=extend_epochs)
    split_info = {
        **splits.as_dict(),
        "train_subset": runner.train_ids,
        "ratio": config.data.ratio,
        "seed": config.runtime.seed,
        "left_out": runner.left_out,
    }
    load_report = runner.load_report.to_dict() if runner.load_report is not None else None
    if result.is_main:
        write_json(result.run_dir / "splits.json", split_info)
        if load_report is not None:
            write_json(result.run_dir / "load_report.json", load_report)
    return FinetuneResult(
        run_dir=result.run_dir,
        final_checkpoint=result.final_checkpoint,
        best_checkpoint=result.best_checkpoint,
        epochs_completed=result.epochs_completed,
        best_metric=result.best_metric,
        history=result.history,
        splits=split_info,
        load_report=load_report,
        stopped_early=result.stopped_early,
        left_out=runner.left_out,
        is_main=result.is_main,
    )
