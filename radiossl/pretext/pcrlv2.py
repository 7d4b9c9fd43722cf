"""PCRLv2 (Zhou et al., TPAMI 2023): multi-scale pixel restoration and siamese feature comparison.

The network is the non-skip 3D U-Net with the PCRLv2 heads at each decoder level (projection
``pro`` with BatchNorm1d, C->2C->C predictor ``pre``, 1-channel deep-supervision map). Each training
sample brings two global views (64x64x32) and six local views (16x16x16) cut by
``radiossl preprocess --views pcrlv2``. Per step, on the training device:

1. spatial augmentation of every view independently: random X flip (p 0.5), then a random
   affine (scale 0.9-1.1, rotation ±10° per axis, trilinear, padded with the view minimum);
   the augmented global view 1, still in [0, 1], is the restoration target;
2. intensity augmentation: global views get blur (σ ≤ 2), noise (σ ≤ 0.25), gamma (log γ ±0.3),
   100 swaps of 8x4x4 patches and z-normalisation; local views the same without the swaps;
3. loss = ``MSE(sigmoid(out1), target)`` + ``β(e)·MSE(sigmoid(mask1[s]), target)`` + symmetric
   stop-gradient negative cosine between the global views at level ``s`` + the same between each
   global and each local view at freshly drawn levels, summed and divided by 12.
   ``β(e) = ½(1 + cos(π e / E))`` over the *configured* epoch count ``E`` (the original hard-coded
   240); ``s`` is drawn uniformly from the decoder levels with heads (three on the unet3d backbone,
   one per decoder stage on others; local views smaller than the backbone's total stride are resized up to it).

Differences from the original, on purpose: β follows ``optim.epochs``; no "skip the batch when the
loss exceeds 1000" rule; BatchNorm1d heads accept a batch of one; augmentation runs batched on the
training device (torchio ran it per sample in the loader workers).

Example::

    from radiossl import load_config, pretrain
    cfg = load_config("pretrain", "pcrlv2", overrides=["data.root=proc", "model.width=0.25"])
    pretrain(cfg)
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.models.factory import model_spec, unwrap_model
from radiossl.models.multiscale import MultiScaleHeadNet
from radiossl.models.network import build_network
from radiossl.pretext.base import PretextMethod
from radiossl.transforms import (
    BatchTransform,
    Compose,
    RandomAffine,
    RandomBlur,
    RandomFlip,
    RandomGamma,
    RandomNoise,
    RandomPatchSwap,
    ZNormalise,
    generator_for,
)
from radiossl.utils.seeding import rng_for

Features = list[tuple[torch.Tensor, torch.Tensor]]


class PCRLv2Config(MethodConfig):
    """PCRLv2 settings; the augmentation defaults are torchio's, as the original used them."""

    name: Literal["pcrlv2"] = "pcrlv2"
    flip_axes: tuple[int, ...] = Field((0,), description="Spatial axes flipped at random (0 = X).")
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="Probability of flipping each of flip_axes.")
    scales: tuple[float, float] = Field((0.9, 1.1), description="Range of the random scale factor per axis.")
    degrees: float = Field(10.0, ge=0.0, description="Rotation range ±degrees per axis.")
    blur_std: tuple[float, float] = Field((0.0, 2.0), description="Range of the Gaussian blur σ (voxels).")
    noise_std: tuple[float, float] = Field((0.0, 0.25), description="Range of the additive noise σ.")
    log_gamma: tuple[float, float] = Field((-0.3, 0.3), description="Range of log γ of the gamma transform.")
    swap_patch: tuple[int, int, int] = Field((8, 4, 4), description="Size of the swapped patches (global views).")
    swap_iterations: int = Field(100, ge=0, description="Patch swaps per global view.")
    local_weight: float = Field(1.0, ge=0.0, description="Weight of the global-local comparison term.")
    deep_supervision: bool = Field(True, description="Add the β-weighted restoration at a random level.")

    @field_validator("flip_axes")
    @classmethod
    def _spatial_axes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(axis not in (0, 1, 2) for axis in value):
            raise ValueError("axes must be a non-empty selection of 0, 1, 2 (X, Y, Z); use flip_prob=0 for none")
        return value

    @field_validator("scales", "blur_std", "noise_std", "log_gamma")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError("a range must be (low, high) with low <= high")
        return value

    @field_validator("scales")
    @classmethod
    def _positive_scales(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] <= 0:
            raise ValueError("scale factors must be positive")
        return value

    @field_validator("blur_std", "noise_std")
    @classmethod
    def _non_negative(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] < 0:
            raise ValueError("standard deviations must be >= 0")
        return value

    @field_validator("swap_patch")
    @classmethod
    def _positive_patch(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(value) < 1:
            raise ValueError("patch sizes must be >= 1")
        return value


class PCRLv2Outputs(NamedTuple):
    """One training forward: restoration logits of view 1, features of all views, masks of view 1."""

    out1: torch.Tensor
    feats1: Features
    masks1: list[torch.Tensor]
    feats2: Features
    feats_local: Features


class PCRLv2Net(MultiScaleHeadNet):
    """The PCRLv2 network with a training ``forward`` over all views (one call, so DDP sees one forward).

    On the unet3d backbone its ``state_dict`` is exactly :class:`~radiossl.models.UNet3D`'s (with
    ``pretrain_heads``), and checkpoints describe it as ``UNet3D``; on other backbones as a
    :class:`~radiossl.models.multiscale.MultiScaleHeadNet` (same weights, standard forward).
    """

    described_as = MultiScaleHeadNet

    def forward(  # type: ignore[override]
        self, view1: torch.Tensor, view2: torch.Tensor, local_views: torch.Tensor | None = None
    ) -> PCRLv2Outputs:
        out1, feats1, masks1 = self.forward_pretrain(view1)
        _, feats2, _ = self.forward_pretrain(view2)
        feats_local: Features = []
        if local_views is not None and local_views.shape[0] > 0:
            feats_local = self.forward_pretrain(local_views, local=True)[1]
        return PCRLv2Outputs(out1, feats1, masks1, feats2, feats_local)


def deep_supervision_weight(epoch: int, total_epochs: int) -> float:
    """β(e) = ½(1 + cos(π e / E)): 1 at the first epoch, 0 at ``E`` (the configured epoch count)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(epoch, 0), total_epochs) / max(total_epochs, 1)))


def negative_cosine(pre: torch.Tensor, pro: torch.Tensor) -> torch.Tensor:
    """``-mean cos(pre, stopgrad(pro))`` over the batch (float32)."""
    return -F.cosine_similarity(pre.float(), pro.detach().float(), dim=1).mean()


def symmetric_cosine(feats_a: Features, feats_b: Features, level: int) -> torch.Tensor:
    """``½[-cos(pre_a, sg(pro_b)) - cos(pre_b, sg(pro_a))]`` at one decoder level."""
    pro_a, pre_a = feats_a[level]
    pro_b, pre_b = feats_b[level]
    return 0.5 * (negative_cosine(pre_a, pro_b) + negative_cosine(pre_b, pro_a))


def _rows(feats: Features, start: int, stop: int) -> Features:
    return [(pro[start:stop], pre[start:stop]) for pro, pre in feats]


def _views(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if hasattr(batch, "global1"):
        return batch.global1, batch.global2, batch.locals
    if isinstance(batch, (tuple, list)) and len(batch) >= 3:
        return batch[0], batch[1], batch[2]
    raise TypeError(f"pcrlv2 expects PCRLv2Sample batches, got {type(batch).__name__}")


class PCRLv2(PretextMethod):
    """PCRLv2 pretraining (``radiossl pretrain --method pcrlv2``); see the module docstring."""

    name = "pcrlv2"
    config_class = PCRLv2Config
    views = "pcrlv2"
    headline_metrics = ("loss", "restoration", "global", "lr")
    summary = "PCRLv2: multi-scale restoration + siamese global/local feature comparison (non-skip U-Net)"
    ddp_find_unused_parameters = True
    """Only one deep-supervision head (a random level) gets a gradient per step."""

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """The thesis' PCRLv2 settings: SGD lr 2e-3, momentum 0.9, wd 1e-4, batch 16, 240 epochs, cosine."""
        return {
            "optim": {
                "optimizer": "sgd",
                "lr": 2e-3,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "batch_size": 16,
                "epochs": 240,
                "schedule": "cosine",
            },
            "model": {"skip_connections": False, "norm": "batch"},
            "data": {"crop_size": (64, 64, 32)},
        }

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        s = self.settings
        self.spatial = Compose([RandomFlip(s.flip_axes, s.flip_prob), RandomAffine(s.scales, s.degrees)])
        common: list[BatchTransform] = [RandomBlur(s.blur_std), RandomNoise(s.noise_std), RandomGamma(s.log_gamma)]
        self.global_intensity = Compose([*common, RandomPatchSwap(s.swap_patch, s.swap_iterations), ZNormalise()])
        self.local_intensity = Compose([*common, ZNormalise()])

    def build_model(self) -> nn.Module:
        m = self.config.model
        backbone = build_network(
            m,
            in_channels=m.in_channels,
            out_channels=m.in_channels,
            stage_heads=True,
            input_sizes={"data.crop_size": self.config.data.crop_size},
            batch_size=self.config.optim.batch_size,
        )
        return PCRLv2Net(backbone)

    def build_datasets(self) -> tuple[Any, Any]:
        from radiossl.views.pcrlv2 import PCRLv2ViewDataset

        data = self.config.data
        root = self.data_root()
        return PCRLv2ViewDataset(root, "train", seed=self.config.runtime.seed, ratio=data.ratio), None

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        """Checkpoints describe the network without its training forward (a plain ``UNet3D`` on unet3d)."""
        net = unwrap_model(model)
        if not isinstance(net, MultiScaleHeadNet):
            raise TypeError(f"pcrlv2 needs a MultiScaleHeadNet, got {type(net).__name__}")
        return model_spec(net.described_network())

    def run_name_parts(self) -> list[str]:
        return [] if self.settings.deep_supervision else ["nods"]

    # ------------------------------------------------------------------------------------------

    def _rng(self, context: StepContext, purpose: str) -> np.random.Generator:
        index = context.extra.get("batch_index", context.step)
        return rng_for(self.config.runtime.seed, "pcrlv2", purpose, context.epoch, index, context.rank)

    def augment(
        self, batch: Any, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(input1, input2, local inputs [L·B, C, ...] view-major, target1)`` from a raw batch."""
        global1, global2, local = _views(batch)
        batch_size, n_local = local.shape[0], local.shape[1]
        with torch.autocast(global1.device.type, enabled=False):
            target1 = self.spatial(global1.float(), generator)
            view2 = self.spatial(global2.float(), generator)
            # Rows i·B ... (i+1)·B - 1 hold local view i of every sample, as in the original.
            local_flat = local.float().transpose(0, 1).reshape(n_local * batch_size, *local.shape[2:])
            local_flat = self.spatial(local_flat, generator) if local_flat.shape[0] else local_flat
            input1 = self.global_intensity(target1, generator)
            input2 = self.global_intensity(view2, generator)
            local_in = self.local_intensity(local_flat, generator) if local_flat.shape[0] else local_flat
        return input1, input2, local_in, target1

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        s = self.settings
        rng = self._rng(context, "step")
        input1, input2, local_in, target1 = self.augment(batch, generator_for(rng, _batch_device(batch)))
        net = unwrap_model(model)
        if not isinstance(net, MultiScaleHeadNet):
            raise TypeError(f"pcrlv2 needs a MultiScaleHeadNet, got {type(net).__name__}")
        levels = net.levels
        local_in = fit_to_stride(local_in, net.total_stride)
        out = model(input1, input2, local_in if s.local_weight > 0 else None)
        level = int(rng.integers(levels))
        restoration = F.mse_loss(torch.sigmoid(out.out1.float()), target1)
        global_term = symmetric_cosine(out.feats1, out.feats2, level)
        loss = restoration + global_term
        beta = deep_supervision_weight(context.epoch, context.total_epochs)
        metrics = {
            "restoration": float(restoration.detach()),
            "global": float(global_term.detach()),
            "beta": beta,
        }
        if s.deep_supervision:
            mask = torch.sigmoid(out.masks1[level].float()).expand_as(target1)
            deep = F.mse_loss(mask, target1)
            loss = loss + beta * deep
            metrics["deep_supervision"] = float(deep.detach())
        if out.feats_local and s.local_weight > 0:
            batch_size = target1.shape[0]
            n_local = out.feats_local[0][0].shape[0] // batch_size
            local_levels = rng.integers(levels, size=(n_local, 2))
            terms = []
            for i in range(n_local):
                feats_i = _rows(out.feats_local, i * batch_size, (i + 1) * batch_size)
                terms.append(symmetric_cosine(out.feats1, feats_i, int(local_levels[i, 0])))
                terms.append(symmetric_cosine(out.feats2, feats_i, int(local_levels[i, 1])))
            local_term = torch.stack(terms).sum() / len(terms)
            loss = loss + s.local_weight * local_term
            metrics["local"] = float(local_term.detach())
        return StepOutput(loss=loss, metrics=metrics)

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """``pcrlv2_restoration``: middle axial slice of global view 1 of sample 0: input, target, restoration."""
        from radiossl.engine.visualise import restoration_picture, vis_title

        rng = self._rng(context, "vis")
        input1, _, _, target1 = self.augment(batch, generator_for(rng, _batch_device(batch)))
        net = unwrap_model(model)
        out = torch.sigmoid(net.forward_pretrain(input1[:1])[0].float())  # type: ignore[operator]
        z = input1.shape[-1] // 2
        title = vis_title(f"{self.name} restoration", batch, context)
        return {"pcrlv2_restoration": restoration_picture(title, input1[0, 0], target1[0, 0], out[0, 0], z)}


def fit_to_stride(views: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """``views`` ``[N, C, X, Y, Z]`` resized (trilinear) up to the next multiple of ``stride`` per axis.

    Local views (16³ by default) are smaller than the smallest input of a backbone with a total
    stride above 16; with the unet3d backbone (stride 8) they pass unchanged.
    """
    size = views.shape[2:]
    target = [-(-int(n) // int(s)) * int(s) for n, s in zip(size, stride, strict=True)]
    if views.shape[0] == 0 or list(size) == target:
        return views
    return F.interpolate(views, size=target, mode="trilinear", align_corners=False)


def _batch_device(batch: Any) -> torch.device:
    """The device the batch lives on."""
    return _views(batch)[0].device
