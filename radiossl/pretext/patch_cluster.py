"""Patch-level clustering (thesis ``cluster_patch``): SwAV-style swapped prediction on the crops' overlap.

Every block of a crop that the backbone reduces to one bottleneck cell is a patch (8³ voxels with
``unet3d``; its total stride with another backbone). For both crops of a pair the encoder gives patch embeddings
``z`` (L2-normalised, ``[B, N, 64]``); K prototypes ``c_k`` (unit rows of ``prototypes.weight``) score
them. Without gradient, Sinkhorn-Knopp turns the cosines ``z·c`` into balanced soft assignments ``q``
(targets; ε = 0.05, 3 iterations). The student predicts ``p = softmax(z·c / τ)`` (τ = 0.1). Targets
and predictions are laid out on the patch grid (``B x K x H/8 x W/8 x D/8``), resampled onto the
physical overlap of the two crops (:func:`radiossl.ops.roi_align_overlap`), and each view's
prediction is trained towards the *other* view's target::

    L = ½ [CE(q₁, p₂) + CE(q₂, p₁)]      (mean over overlap cells of -Σ_k q log p)

Fixed thesis defects (``legacy: true`` restores each of them, spec §8 items 3-4):

* the Sinkhorn output is reshaped to ``[B, N, K]`` directly (the thesis transposed it first, mixing
  patches and prototypes);
* the student uses the same normalised embeddings and prototypes as the teacher, with temperature
  τ (the thesis used raw dot products and τ = 1), and the prototypes are renormalised to unit length
  after every optimiser step;
* the prototypes can be frozen for the first ``freeze_prototypes_epochs`` epochs (SwAV practice):
  their gradient is dropped before each optimiser step, so the optimiser leaves them alone entirely
  (no update, and no momentum or weight decay accumulating for the epoch they are released);
* overlap alignment samples cell centres exactly instead of truncating box fractions, and samples
  without overlap are masked out instead of crashing.

Example:
    >>> from radiossl.pretext.base import load_pretrain_config
    >>> cfg = load_pretrain_config("patch-cluster", overrides=["method.k=20", "model.width=0.125"])
    >>> method = PatchCluster(cfg)
    >>> method.run_name_parts(), type(method.build_model()).__name__
    (['k20'], 'PatchClusterNet')
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
from radiossl.errors import ConfigError
from radiossl.losses.legacy_ce import legacy_swav
from radiossl.losses.sinkhorn import scrambled_reshape, sinkhorn_knopp
from radiossl.losses.swapped_ce import swapped_prediction_loss
from radiossl.models.factory import unwrap_model
from radiossl.models.network import build_network
from radiossl.models.patch_cluster_net import PatchClusterNet
from radiossl.ops.roi_align import roi_align_overlap
from radiossl.pretext.base import PretextMethod, PretrainConfig
from radiossl.pretext.cluster_metrics import usage_metrics
from radiossl.runtime.device import move_to_device

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset


class PatchClusterConfig(MethodConfig):
    """Settings of the patch-level clustering pretext."""

    name: Literal["patch-cluster"] = "patch-cluster"
    k: int = Field(50, ge=2, description="Number of prototypes (clusters); 50 in the thesis.")
    proj_dim: int = Field(64, ge=1, description="Size of the patch embeddings (projection head output).")
    epsilon: float = Field(0.05, gt=0.0, description="Sinkhorn entropy weight ε (smaller = sharper targets).")
    sinkhorn_iterations: int = Field(3, ge=0, description="Sinkhorn-Knopp iterations.")
    sinkhorn_global: bool = Field(
        True, description="Under DDP, balance the assignments over the global batch (all ranks)."
    )
    temperature: float = Field(0.1, gt=0.0, description="Student softmax temperature τ (ignored when legacy).")
    freeze_prototypes_epochs: int = Field(
        1, ge=0, description="Keep the prototypes fixed for this many initial epochs (ignored when legacy)."
    )
    align_mode: Literal["nearest", "trilinear"] = Field(
        "nearest", description="Resampling of the student logits onto the overlap grid (targets: nearest)."
    )
    legacy: bool = Field(
        False,
        description="Reproduce the thesis: scrambled Sinkhorn reshape, raw dot-product student (τ = 1), "
        "no prototype renormalisation/freezing, truncating ROI-align, mean-over-all-elements ce.",
    )

    @model_validator(mode="after")
    def _legacy_is_nearest(self) -> PatchClusterConfig:
        if self.legacy and self.align_mode != "nearest":
            raise ValueError("legacy: true aligns with nearest sampling only; set align_mode: nearest")
        return self


def pair_datasets(config: PretrainConfig, targets: str | None = None) -> tuple[Dataset[Any], Dataset[Any] | None]:
    """Training and validation :class:`ClusterPairDataset` of ``data.root`` (val None: no pairs/targets).

    ``data.ratio < 1`` keeps a nested, seeded subset of the training *cases* (all pairs of a kept case).
    Raises ConfigError when ``data.root`` is unset or ``model.in_channels`` does not fit the crops.
    """
    from radiossl.views.cluster import ClusterPairDataset

    root = config.data.root
    if root is None:
        raise ConfigError("data.root is not set: pass --data PROC_DIR (a folder written by `radiossl preprocess`)")
    seed = config.runtime.seed
    train = ClusterPairDataset(root, "train", targets=targets, seed=seed, ratio=config.data.ratio)
    channels = sorted({r.channels for r in train.records})
    if channels != [config.model.in_channels]:
        raise ConfigError(
            f"{root}: crop pairs have {channels} channel(s) but model.in_channels is "
            f"{config.model.in_channels}; set --set model.in_channels={channels[0]}"
        )
    val_records = [r for r in train.data.records(split="val") if ClusterPairDataset.accepts(r.view)]
    val: Dataset[Any] | None = None
    # targets are often predicted for the training split only: validate only where every pair has them
    if val_records and (targets is None or all(targets in r.targets for r in val_records)):
        val = ClusterPairDataset(root, "val", targets=targets, seed=seed)
    return train, val


def cluster_picture(
    inputs: tuple[torch.Tensor, torch.Tensor],
    preds: tuple[torch.Tensor, torch.Tensor],
    targets: tuple[torch.Tensor, torch.Tensor],
    k: int,
    title: str,
) -> np.ndarray:
    """The ``clusters`` picture of one crop pair: a row per view, the middle slice ``z = D // 2``.

    Panels: input (channel 0), target clusters, predicted clusters, and the prediction over the
    input; a legend of the ``k`` cluster colours. ``inputs`` are ``[C, H, W, D]`` crops;
    ``preds``/``targets`` are integer cluster maps ``[h, w, d]`` at full or patch resolution,
    repeated (nearest neighbour) up to ``H x W``.
    """
    from radiossl.utils.figures import Figure, Panel, Row, blend, cluster_legend, colorize_labels, render, to_rgb_uint8

    height, width, depth = inputs[0].shape[1:]
    z = depth // 2

    def cluster_slice(labels: torch.Tensor) -> np.ndarray:
        h, w, d = labels.shape
        plane = labels[:, :, z * d // depth].detach().cpu().numpy()
        return colorize_labels(np.repeat(np.repeat(plane, height // h, axis=0), width // w, axis=1), k)

    rows = []
    for view in range(2):
        grey = to_rgb_uint8(inputs[view][0, :, :, z])
        target, predicted = cluster_slice(targets[view]), cluster_slice(preds[view])
        panels = [
            Panel(f"input (z={z})", grey),
            Panel("target clusters", target, exact=True),
            Panel("predicted clusters", predicted, exact=True),
            Panel("prediction over input", blend(grey, predicted, np.ones(grey.shape[:2], bool))),
        ]
        rows.append(Row(f"view {view + 1}", panels))
    return render(Figure(title, rows, cluster_legend(k), legend_title="clusters"))


@dataclass
class _PatchOutputs:
    loss: torch.Tensor
    student: tuple[torch.Tensor, torch.Tensor]
    """Student scores per view, ``[B, K, h, w, d]``."""
    targets: tuple[torch.Tensor, torch.Tensor]
    """Sinkhorn targets per view, ``[B, K, h, w, d]``."""


def _to_grid(values: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """``[B, N, K]`` (patches in ``(h, w, d)`` row-major order) -> ``[B, K, h, w, d]``."""
    batch, _, k = values.shape
    return values.transpose(1, 2).reshape(batch, k, *grid)


class PatchCluster(PretextMethod):
    """Patch-level clustering with Sinkhorn targets and a swapped prediction on the crops' overlap."""

    name = "patch-cluster"
    config_class = PatchClusterConfig
    views = "cluster"
    headline_metrics = ("loss", "val_loss", "pred_clusters_used", "lr")
    summary: ClassVar[str] = "Patch-level clustering (SwAV-style prototypes on 8³ patches, thesis cluster_patch)"
    ddp_find_unused_parameters: ClassVar[bool] = False
    """Every parameter (encoder, projection, prototypes) gets a gradient in every step."""

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """The thesis' settings: SGD, lr 2e-3, batch 16, 240 epochs, 64x64x32 crops."""
        return {
            "optim": {
                "optimizer": "sgd",
                "lr": 2e-3,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "epochs": 240,
                "batch_size": 16,
                "schedule": "cosine",
            },
            "data": {"crop_size": [64, 64, 32]},
        }

    def build_model(self) -> nn.Module:
        model_cfg = self.config.model
        encoder = build_network(
            model_cfg,
            in_channels=model_cfg.in_channels,
            out_channels=self.settings.k,
            decoder=False,
            input_sizes={"data.crop_size": self.config.data.crop_size},
            batch_size=self.config.optim.batch_size,
        )
        return PatchClusterNet(k=self.settings.k, proj_dim=self.settings.proj_dim, backbone=encoder)

    def build_datasets(self) -> tuple[Dataset[Any], Dataset[Any] | None]:
        return pair_datasets(self.config)

    @classmethod
    def cluster_scores(cls, model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """Prototype scores of every patch on the bottleneck grid, ``[B, K, gx, gy, gz]``."""
        _, logits = model(x)
        net: Any = unwrap_model(model)
        grid = [size // stride for size, stride in zip(x.shape[2:], net.total_stride, strict=True)]
        return logits.transpose(1, 2).reshape(logits.shape[0], logits.shape[2], *grid)

    def run_name_parts(self) -> list[str]:
        parts = [f"k{self.settings.k}"]
        if self.settings.legacy:
            parts.append("legacy")
        return parts

    # ------------------------------------------------------------------------------------------
    # training

    def _prototypes_frozen(self, context: StepContext) -> bool:
        return not self.settings.legacy and context.epoch < self.settings.freeze_prototypes_epochs

    def _prototype_weight(self, net: PatchClusterNet, context: StepContext | None) -> torch.Tensor:
        weight = net.prototypes.weight
        if context is None or not torch.is_grad_enabled() or not self._prototypes_frozen(context):
            return weight
        # zero gradient, but the parameter stays in the graph so DDP sees it used
        return weight.detach() + 0.0 * weight

    def _forward(self, model: nn.Module, batch: Any, context: StepContext | None, distributed: bool) -> _PatchOutputs:
        s = self.settings
        net = unwrap_model(model)
        if not isinstance(net, PatchClusterNet):
            raise TypeError(f"patch-cluster needs a PatchClusterNet, got {type(net).__name__}")
        x1, x2 = batch.view1, batch.view2
        emb1, logits1 = model(x1)
        emb2, logits2 = model(x2)
        batch_size, patches, _ = emb1.shape
        stride = net.total_stride
        grid = (x1.shape[2] // stride[0], x1.shape[3] // stride[1], x1.shape[4] // stride[2])
        if grid[0] * grid[1] * grid[2] != patches:
            raise ValueError(f"{patches} patch embeddings do not tile an input of shape {tuple(x1.shape[2:])}")
        weight = self._prototype_weight(net, context)
        with torch.autocast(device_type=x1.device.type, enabled=False):
            z1 = F.normalize(emb1.float(), dim=-1)
            z2 = F.normalize(emb2.float(), dim=-1)
            with torch.no_grad():
                protos = F.normalize(weight.detach().float(), dim=1)
                q1, q2 = (
                    sinkhorn_knopp(
                        (z.detach() @ protos.t()).reshape(batch_size * patches, s.k),
                        epsilon=s.epsilon,
                        iterations=s.sinkhorn_iterations,
                        distributed=distributed,
                    )
                    for z in (z1, z2)
                )
            if s.legacy:
                q1 = scrambled_reshape(q1, batch_size, patches)
                q2 = scrambled_reshape(q2, batch_size, patches)
                student1, student2 = _to_grid(logits1.float(), grid), _to_grid(logits2.float(), grid)
                targets1, targets2 = _to_grid(q1, grid), _to_grid(q2, grid)
                probs = roi_align_overlap(
                    F.softmax(student1, dim=1),
                    F.softmax(student2, dim=1),
                    batch.box1,
                    batch.box2,
                    legacy=True,
                )
                aligned_t = roi_align_overlap(targets1, targets2, batch.box1, batch.box2, legacy=True)
                loss = legacy_swav(aligned_t.view1, aligned_t.view2, probs.view1, probs.view2)
            else:
                unit_protos = F.normalize(weight.float(), dim=1)
                student1 = _to_grid(z1 @ unit_protos.t() / s.temperature, grid)
                student2 = _to_grid(z2 @ unit_protos.t() / s.temperature, grid)
                targets1 = _to_grid(q1.reshape(batch_size, patches, s.k), grid)
                targets2 = _to_grid(q2.reshape(batch_size, patches, s.k), grid)
                aligned_s = roi_align_overlap(student1, student2, batch.box1, batch.box2, mode=s.align_mode)
                aligned_t = roi_align_overlap(targets1, targets2, batch.box1, batch.box2, mode="nearest")
                loss = swapped_prediction_loss(
                    aligned_t.view1,
                    aligned_t.view2,
                    F.log_softmax(aligned_s.view1, dim=1),
                    F.log_softmax(aligned_s.view2, dim=1),
                    dim=1,
                    mask=aligned_t.valid,
                )
        return _PatchOutputs(loss=loss, student=(student1, student2), targets=(targets1, targets2))

    def _metrics(self, out: _PatchOutputs) -> dict[str, float]:
        k = self.settings.k
        student = torch.cat([out.student[0].detach(), out.student[1].detach()])
        targets = torch.cat([out.targets[0], out.targets[1]])
        return {**usage_metrics(student, k, prefix="pred_"), **usage_metrics(targets, k, prefix="target_")}

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        out = self._forward(model, batch, context, distributed=self.settings.sinkhorn_global)
        return StepOutput(loss=out.loss, metrics=self._metrics(out))

    def before_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
        """While the prototypes are frozen, drop their (zero) gradient so the optimiser skips them.

        A zero gradient is not enough: SGD would still add weight decay to the momentum buffer and
        move the prototypes, and the buffer would carry that into the first unfrozen steps.
        """
        net = unwrap_model(model)
        if isinstance(net, PatchClusterNet) and self._prototypes_frozen(context):
            net.prototypes.weight.grad = None

    def after_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
        """Renormalise every prototype to unit length (not when legacy)."""
        if self.settings.legacy:
            return
        net = unwrap_model(model)
        if not isinstance(net, PatchClusterNet):
            raise TypeError(f"patch-cluster needs a PatchClusterNet, got {type(net).__name__}")
        with torch.no_grad():
            weight = net.prototypes.weight
            weight.copy_(F.normalize(weight, dim=1))

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]:
        """Mean loss and cluster usage on the validation pairs (``val_`` prefix); ``{}`` without a loader."""
        if loader is None:
            return {}
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        batches = 0
        try:
            with torch.no_grad():
                for batch in loader:
                    out = self._forward(model, move_to_device(batch, context.device), None, distributed=False)
                    values = {"loss": float(out.loss), **self._metrics(out)}
                    for key, value in values.items():
                        sums[key] = sums.get(key, 0.0) + value
                    batches += 1
        finally:
            model.train(was_training)
        return {f"val_{key}": value / batches for key, value in sums.items()} if batches else {}

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """``clusters``: middle slice of both views of sample 0 (see :func:`cluster_picture`)."""
        device = next(model.parameters()).device
        batch = move_to_device(batch, device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = self._forward(model, batch, None, distributed=False)
        finally:
            model.train(was_training)
        preds = (out.student[0][0].argmax(0), out.student[1][0].argmax(0))
        targets = (out.targets[0][0].argmax(0), out.targets[1][0].argmax(0))
        title = vis_title(f"{self.name} clusters", batch, context)
        return {"clusters": cluster_picture((batch.view1[0], batch.view2[0]), preds, targets, self.settings.k, title)}
