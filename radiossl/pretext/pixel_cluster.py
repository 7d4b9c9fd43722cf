"""Pixel-level clustering (thesis ``cluster``): predict every voxel's K-means cluster, swapped across views.

Offline, ``radiossl kmeans fit|predict`` assigns every voxel of every crop to one of K clusters of
2D/3D features (the targets ``t``, stored with the crop pairs under a tag). The 3D U-Net predicts K
logits per voxel; ``p = softmax(logits)`` over the cluster axis. With ``loss: swav`` predictions and
targets of both crops are resampled onto the crops' physical overlap
(:func:`radiossl.ops.roi_align_overlap`) and each view predicts the other view's clusters::

    L = ½ [CE(t₁, p₂) + CE(t₂, p₁)]        (mean over overlap voxels of -log p[t])

``loss: ce`` trains view 1 against its own targets (no alignment). Cross-entropy is computed from
logits with ``log_softmax`` (finite for any logits), equal to ``-Σ_k onehot(t)_k log p_k``.

Fixed thesis defects (``legacy: true`` restores them, spec §8 items 1-2, 37):

* no sigmoid on the cluster logits (the thesis squashed them to (0, 1), making the softmax near uniform);
* softmax over the cluster axis (the thesis normalised over the H axis, dim 2);
* per-voxel cross-entropy with a safe log (the thesis averaged ``target·log p`` over all elements, K
  included, and produced NaN for ``p = 0``);
* exact overlap alignment with masking of non-overlapping pairs (the thesis truncated box fractions).

Example:
    >>> from radiossl.pretext.base import load_pretrain_config
    >>> cfg = load_pretrain_config("pixel-cluster", overrides=["model.width=0.125"])
    >>> method = PixelCluster(cfg)
    >>> method.run_name_parts(), method.build_model().out_channels
    (['k10', 'swav'], 10)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.engine.visualise import vis_title
from radiossl.errors import ConfigError, DataError
from radiossl.losses.legacy_ce import legacy_ce, legacy_swav
from radiossl.models.network import build_network
from radiossl.ops.roi_align import roi_align_overlap
from radiossl.pretext.base import PretextMethod, PretrainConfig
from radiossl.pretext.cluster_metrics import usage_metrics
from radiossl.pretext.patch_cluster import cluster_picture, pair_datasets
from radiossl.runtime.device import move_to_device

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset


class PixelClusterConfig(MethodConfig):
    """Settings of the pixel-level clustering pretext."""

    name: Literal["pixel-cluster"] = "pixel-cluster"
    k: int = Field(10, ge=2, description="Number of clusters; must equal the k of the targets (10 in the thesis).")
    targets: str | None = Field(
        None,
        description="Tag of the `radiossl kmeans predict` targets; default: the only tag in the data folder.",
    )
    loss: Literal["swav", "ce"] = Field(
        "swav", description="swav: each view predicts the other's clusters on the overlap; ce: view 1 only."
    )
    align_mode: Literal["nearest", "trilinear"] = Field(
        "nearest", description="Resampling of the logits onto the overlap grid (targets: nearest)."
    )
    legacy: bool = Field(
        False,
        description="Reproduce the thesis: sigmoid then softmax over the H axis, truncating ROI-align, "
        "mean-over-all-elements ce.",
    )

    @model_validator(mode="after")
    def _legacy_is_nearest(self) -> PixelClusterConfig:
        if self.legacy and self.align_mode != "nearest":
            raise ValueError("legacy: true aligns with nearest sampling only; set align_mode: nearest")
        return self


def resolve_target_tag(root: Any, requested: str | None, k: int) -> str:
    """The targets tag to train on (``requested``, or the only one present), checked to have ``k`` clusters.

    Raises ConfigError when there are no targets, several without a choice, an unknown tag, or a
    different k; DataError when the set's description is unreadable or records no k.
    """
    from radiossl.data.processed import ProcessedDataset

    processed = ProcessedDataset.open(root)
    tags = processed.target_tags()
    if requested is None:
        if not tags:
            raise ConfigError(f"{root}: no cluster targets found; run `radiossl kmeans predict` first")
        if len(tags) > 1:
            raise ConfigError(
                f"{root}: several target sets ({', '.join(tags)}); choose one with --set method.targets=TAG"
            )
        tag = tags[0]
    elif requested not in tags:
        available = ", ".join(tags) if tags else "none; run `radiossl kmeans predict` first"
        raise ConfigError(f"{root}: no targets tagged {requested!r} (available: {available})")
    else:
        tag = requested
    target_set = processed.target_set(tag)
    meta_path, target_k = target_set.path, target_set.k
    if target_k is None:
        raise DataError(f"{meta_path}: has no integer 'k' (number of clusters)")
    if target_k != k:
        raise ConfigError(
            f"method.k is {k} but targets {tag!r} have k={target_k} ({meta_path}); set --set method.k={target_k}"
        )
    return tag


@dataclass
class _PixelOutputs:
    loss: torch.Tensor
    scores: tuple[torch.Tensor, ...]
    """What the loss sees per view, ``[B, K, H, W, D]`` (logits; probabilities when legacy)."""
    labels: tuple[torch.Tensor, ...]
    """Target cluster ids per view, ``[B, H, W, D]``."""


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    weight = valid.to(values.dtype).view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


class PixelCluster(PretextMethod):
    """Pixel-level clustering: a U-Net predicts fixed K-means cluster maps, swapped across the two crops."""

    name = "pixel-cluster"
    config_class = PixelClusterConfig
    views = "cluster"
    needs_targets = True
    headline_metrics = ("loss", "val_loss", "pred_clusters_used", "lr")
    summary: ClassVar[str] = "Pixel-level clustering (U-Net predicts K-means cluster maps, thesis cluster)"
    ddp_find_unused_parameters: ClassVar[bool] = False
    """The U-Net is built without the unused PCRLv2 heads, so every parameter gets a gradient."""

    def __init__(self, config: PretrainConfig) -> None:
        super().__init__(config)
        self._tag: str | None = None

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """The thesis' settings: SGD, lr 4e-3, batch 8, 240 epochs, 128x128x32 crops."""
        return {
            "optim": {
                "optimizer": "sgd",
                "lr": 4e-3,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "epochs": 240,
                "batch_size": 8,
                "schedule": "cosine",
            },
            "data": {"crop_size": [128, 128, 32]},
        }

    def build_model(self) -> nn.Module:
        model_cfg = self.config.model
        return build_network(
            model_cfg,
            in_channels=model_cfg.in_channels,
            out_channels=self.settings.k,
            input_sizes={"data.crop_size": self.config.data.crop_size},
            batch_size=self.config.optim.batch_size,
        )

    def build_datasets(self) -> tuple[Dataset[Any], Dataset[Any] | None]:
        root = self.config.data.root
        if root is None:
            raise ConfigError("data.root is not set: pass --data PROC_DIR (a folder written by `radiossl preprocess`)")
        self._tag = resolve_target_tag(root, self.settings.targets, self.settings.k)
        return pair_datasets(self.config, targets=self._tag)

    @classmethod
    def cluster_scores(cls, model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """Per-voxel cluster logits ``[B, K, X, Y, Z]`` (the network's output)."""
        scores: torch.Tensor = model(x)
        return scores

    def run_name_parts(self) -> list[str]:
        parts = [f"k{self.settings.k}", self.settings.loss]
        if self.settings.legacy:
            parts.append("legacy")
        return parts

    # ------------------------------------------------------------------------------------------
    # training

    def _forward(self, model: nn.Module, batch: Any) -> _PixelOutputs:
        s = self.settings
        labels1, labels2 = batch.target1, batch.target2
        if labels1.numel() == 0:
            raise DataError("pixel-cluster batch has no targets: build the dataset with targets=TAG")
        logits1 = model(batch.view1)
        two_views = s.loss == "swav"
        logits2 = model(batch.view2) if two_views else None
        with torch.autocast(device_type=batch.view1.device.type, enabled=False):
            if s.legacy:
                return self._legacy_loss(batch, logits1, logits2)
            logits1 = logits1.float()
            if logits2 is None:
                loss = F.cross_entropy(logits1, labels1)
                return _PixelOutputs(loss=loss, scores=(logits1,), labels=(labels1,))
            logits2 = logits2.float()
            aligned = roi_align_overlap(logits1, logits2, batch.box1, batch.box2, mode=s.align_mode)
            targets = roi_align_overlap(labels1[:, None], labels2[:, None], batch.box1, batch.box2)
            ce_2_from_1 = F.cross_entropy(aligned.view2, targets.view1[:, 0], reduction="none")
            ce_1_from_2 = F.cross_entropy(aligned.view1, targets.view2[:, 0], reduction="none")
            loss = 0.5 * (_masked_mean(ce_2_from_1, targets.valid) + _masked_mean(ce_1_from_2, targets.valid))
            return _PixelOutputs(loss=loss, scores=(logits1, logits2), labels=(labels1, labels2))

    def _legacy_loss(self, batch: Any, logits1: torch.Tensor, logits2: torch.Tensor | None) -> _PixelOutputs:
        """Thesis: sigmoid, softmax over dim 2 (H), one-hot targets, mean-over-all-elements ce."""
        k = self.settings.k
        prob1 = F.softmax(torch.sigmoid(logits1.float()), dim=2)
        onehot1 = F.one_hot(batch.target1, k).permute(0, 4, 1, 2, 3).float()
        if logits2 is None:
            return _PixelOutputs(loss=legacy_ce(onehot1, prob1), scores=(prob1,), labels=(batch.target1,))
        prob2 = F.softmax(torch.sigmoid(logits2.float()), dim=2)
        onehot2 = F.one_hot(batch.target2, k).permute(0, 4, 1, 2, 3).float()
        probs = roi_align_overlap(prob1, prob2, batch.box1, batch.box2, legacy=True)
        targets = roi_align_overlap(onehot1, onehot2, batch.box1, batch.box2, legacy=True)
        loss = legacy_swav(targets.view1, targets.view2, probs.view1, probs.view2)
        return _PixelOutputs(loss=loss, scores=(prob1, prob2), labels=(batch.target1, batch.target2))

    def _metrics(self, out: _PixelOutputs) -> dict[str, float]:
        k = self.settings.k
        scores = torch.cat([s.detach() for s in out.scores])
        labels = torch.cat(list(out.labels))
        agreement = (scores.argmax(1) == labels).float().mean()
        return {
            **usage_metrics(scores, k, prefix="pred_"),
            **usage_metrics(labels, k, prefix="target_"),
            "target_agreement": float(agreement),
        }

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        out = self._forward(model, batch)
        return StepOutput(loss=out.loss, metrics=self._metrics(out))

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]:
        """Mean loss, cluster usage and target agreement on validation pairs (``val_`` prefix)."""
        if loader is None:
            return {}
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        batches = 0
        try:
            with torch.no_grad():
                for batch in loader:
                    out = self._forward(model, move_to_device(batch, context.device))
                    for key, value in {"loss": float(out.loss), **self._metrics(out)}.items():
                        sums[key] = sums.get(key, 0.0) + value
                    batches += 1
        finally:
            model.train(was_training)
        return {f"val_{key}": value / batches for key, value in sums.items()} if batches else {}

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """``clusters``: middle slice of both views of sample 0 (see :func:`cluster_picture`)."""
        if batch.target1.numel() == 0:
            return {}
        device = next(model.parameters()).device
        batch = move_to_device(batch, device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = (model(batch.view1[:1]), model(batch.view2[:1]))
        finally:
            model.train(was_training)
        if self.settings.legacy:  # what the thesis' loss sees: softmax over H of sigmoid outputs
            logits = (
                F.softmax(torch.sigmoid(logits[0].float()), 2),
                F.softmax(torch.sigmoid(logits[1].float()), 2),
            )
        preds = (logits[0][0].argmax(0), logits[1][0].argmax(0))
        targets = (batch.target1[0], batch.target2[0])
        title = vis_title(f"{self.name} clusters", batch, context)
        return {"clusters": cluster_picture((batch.view1[0], batch.view2[0]), preds, targets, self.settings.k, title)}
