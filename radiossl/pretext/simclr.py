"""SimCLR (Chen et al., ICML 2020) for 3D volumes: two augmented crops, pooled embeddings, NT-Xent.

Each training sample is a pair of overlapping crops of one volume (the ``cluster`` view cut by
``radiossl preprocess --views cluster``: two crops of ``data.crop_size`` with their boxes). Per step,
on the training device, each crop is augmented independently (random flips of every axis, Gaussian
blur, Gaussian noise, gamma: nnssl's ``SimCLRTransform`` without its rotations, brightness, contrast
and low-resolution steps), both go through the encoder in one batch, the bottleneck is averaged to
one vector per crop and the projection head (Linear 2048, BatchNorm1d, ReLU, Linear 128) maps it to
the embedding. The loss is NT-Xent with temperature 0.5
(:func:`radiossl.losses.nt_xent.nt_xent_loss`); under DDP the negatives are the pairs of every rank,
gathered with gradients, so the loss is the one of the global batch.

Defaults follow nnssl's ``SimCLRTrainer`` (``docs/methods/simclr.md`` lists them with their sources).
The network is :class:`radiossl.pretext.projection.ContrastiveEncoder`; finetuning reads its
encoder like any other.

Example::

    from radiossl import load_config, pretrain
    cfg = load_config("pretrain", "simclr", overrides=["data.root=proc", "method.temperature=0.1"])
    pretrain(cfg)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.losses.nt_xent import nt_xent_loss
from radiossl.models.network import check_sizes
from radiossl.pretext.base import PretextMethod
from radiossl.pretext.projection import Pooled, build_contrastive_encoder
from radiossl.transforms import Compose, RandomBlur, RandomFlip, RandomGamma, RandomNoise, generator_for
from radiossl.utils.seeding import rng_for


class SimCLRConfig(MethodConfig):
    """SimCLR settings; defaults from nnssl's ``SimCLRTrainer`` and SimCLR's projection head."""

    name: Literal["simclr"] = "simclr"
    temperature: float = Field(0.5, gt=0.0, description="NT-Xent temperature τ.")
    hidden_dim: int = Field(2048, ge=1, description="Hidden width of the projection head.")
    out_dim: int = Field(128, ge=1, description="Embedding size.")
    head_layers: int = Field(2, ge=1, description="Linear layers of the projection head.")
    pooled: Pooled = Field("bottleneck", description="Encoder stages averaged into the head: bottleneck or all.")
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="Probability of flipping each spatial axis.")
    blur_prob: float = Field(0.2, ge=0.0, le=1.0, description="Probability of a Gaussian blur.")
    blur_std: tuple[float, float] = Field((0.5, 1.0), description="Range of the blur σ (voxels).")
    noise_prob: float = Field(0.1, ge=0.0, le=1.0, description="Probability of additive Gaussian noise.")
    noise_std: tuple[float, float] = Field((0.0, math.sqrt(0.1)), description="Range of the noise σ.")
    gamma_prob: float = Field(0.3, ge=0.0, le=1.0, description="Probability of a gamma transform.")
    log_gamma: tuple[float, float] = Field((math.log(0.7), math.log(1.5)), description="Range of log γ.")

    @field_validator("blur_std", "noise_std", "log_gamma")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError("a range must be (low, high) with low <= high")
        return value

    @field_validator("blur_std", "noise_std")
    @classmethod
    def _non_negative(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] < 0:
            raise ValueError("standard deviations must be >= 0")
        return value


def _pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(batch, "view1"):
        return batch.view1, batch.view2
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(f"simclr expects crop-pair batches (PairSample), got {type(batch).__name__}")


class SimCLR(PretextMethod):
    """SimCLR pretraining (``radiossl pretrain --method simclr``); see the module docstring."""

    name = "simclr"
    config_class = SimCLRConfig
    views = "cluster"
    summary = "SimCLR: NT-Xent between two augmented crops of a volume, negatives from every rank"
    headline_metrics = ("loss", "positive_cosine", "lr")
    ddp_find_unused_parameters = False
    """Every parameter gets a gradient in every step."""

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """nnssl's optimiser (SGD lr 1e-2, momentum 0.99, wd 3e-5, clip 0.1, batch 32), cosine schedule."""
        return {
            "optim": {
                "optimizer": "sgd",
                "lr": 1e-2,
                "momentum": 0.99,
                "weight_decay": 3e-5,
                "grad_clip": 0.1,
                "batch_size": 32,
                "epochs": 240,
                "schedule": "cosine",
            },
            "model": {"norm": "instance"},
            "data": {"crop_size": (64, 64, 32)},
        }

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        check_sizes(config.model, self.input_sizes(), batch_size=config.optim.batch_size)
        s = self.settings
        self.augment = Compose(
            [
                RandomFlip((0, 1, 2), s.flip_prob),
                RandomBlur(s.blur_std, p=s.blur_prob),
                RandomNoise(s.noise_std, p=s.noise_prob),
                RandomGamma(s.log_gamma, p=s.gamma_prob),
            ]
        )

    def input_sizes(self) -> dict[str, tuple[int, ...]]:
        """The crops the encoder sees, by setting name (checked against the backbone's total stride)."""
        return {"data.crop_size": tuple(self.config.data.crop_size)}

    def build_model(self) -> nn.Module:
        return build_contrastive_encoder(self.config, self.input_sizes())

    def build_datasets(self) -> tuple[Any, Any]:
        from radiossl.views.cluster import ClusterPairDataset

        data = self.config.data
        root = self.data_root()
        return ClusterPairDataset(root, "train", seed=self.config.runtime.seed, ratio=data.ratio), None

    def run_name_parts(self) -> list[str]:
        return [f"t{self.settings.temperature:g}"]

    def _rng(self, context: StepContext, purpose: str) -> np.random.Generator:
        index = context.extra.get("batch_index", context.step)
        return rng_for(self.config.runtime.seed, "simclr", purpose, context.epoch, index, context.rank)

    def augment_pair(self, batch: Any, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The two crops of every sample, augmented independently (float32, on the batch's device)."""
        view1, view2 = _pair(batch)
        generator = generator_for(rng, view1.device)
        with torch.autocast(view1.device.type, enabled=False):
            return self.augment(view1.float(), generator), self.augment(view2.float(), generator)

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        crops1, crops2 = self.augment_pair(batch, self._rng(context, "step"))
        embeddings = model(torch.cat([crops1, crops2])).float()
        z1, z2 = embeddings.chunk(2)
        loss = nt_xent_loss(z1, z2, self.settings.temperature)
        positive = F.cosine_similarity(z1.detach(), z2.detach(), dim=1).mean()
        return StepOutput(loss=loss, metrics={"positive_cosine": float(positive)})
