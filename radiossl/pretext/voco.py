"""VoCo, volume contrast (Wu, Zhuang and Chen, CVPR 2024): predict where a random crop lies among base crops.

Each training cube (the ``genesis`` view: 64x64x32, intensities in [0, 1]) is split on a grid
(``method.grid``, default 2x2x1) into ``K`` base crops; ``method.crops`` random crops of the same
size are placed uniformly inside the cube. The regression target of crop ``m`` and base ``k`` is the
fraction of the crop inside the base (:func:`radiossl.ops.crop_grid.overlap_fractions`). Per step,
on the training device: every crop is flipped at random (each axis with p 0.2, as the authors), all
crops of the batch go through the encoder at once, the average of every encoder stage (concatenated)
goes through the projection head (3 layers, 2048 wide), and the loss is VoCo's prediction loss on
``relu(cos(crop, sg(base)))`` plus the regularisation that pushes different base crops apart
(:func:`radiossl.losses.voco.voco_loss`).

``docs/methods/voco.md`` gives the definitions, the sources of every default, and where radiossl
differs from the authors' code and from nnssl's ``VoCoTrainer`` (no EMA teacher, crops not resized,
the grid scaled to the cube). The network is :class:`radiossl.pretext.projection.ContrastiveEncoder`.

Example::

    from radiossl import load_config, pretrain
    cfg = load_config("pretrain", "voco", overrides=["data.root=proc", "method.crops=2"])
    pretrain(cfg)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.errors import ConfigError
from radiossl.losses.voco import voco_loss
from radiossl.models.network import input_divisor
from radiossl.ops.crop_grid import base_crop_size, cut_boxes, grid_boxes, overlap_fractions, random_boxes
from radiossl.pretext.base import PretextMethod
from radiossl.pretext.projection import Pooled, build_contrastive_encoder
from radiossl.transforms import RandomFlip, generator_for
from radiossl.utils.seeding import rng_for


class VoCoConfig(MethodConfig):
    """VoCo settings; defaults from the authors' code and nnssl's ``VoCoTrainer`` (see docs/methods/voco.md)."""

    name: Literal["voco"] = "voco"
    grid: tuple[int, int, int] = Field((2, 2, 1), description="Base crops per axis; each cube size must divide.")
    crops: int = Field(4, ge=1, description="Random crops per cube.")
    hidden_dim: int = Field(2048, ge=1, description="Hidden width of the projection head.")
    out_dim: int = Field(2048, ge=1, description="Embedding size.")
    head_layers: int = Field(3, ge=1, description="Linear layers of the projection head.")
    pooled: Pooled = Field("all", description="Encoder stages averaged into the head: all or bottleneck.")
    positive_weight: Literal["overlap", "uniform"] = Field(
        "overlap", description="Weight of an overlapping pair in the positive term: its overlap, or 1."
    )
    reg_weight: float = Field(1.0, ge=0.0, description="Weight of the base-crop regularisation.")
    flip_prob: float = Field(0.2, ge=0.0, le=1.0, description="Probability of flipping each axis of each crop.")

    @field_validator("grid")
    @classmethod
    def _several_bases(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(value) < 1 or value[0] * value[1] * value[2] < 2:
            raise ValueError("the grid needs counts >= 1 and at least 2 base crops")
        return value


def _cubes(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"voco expects batches of cubes [B, C, X, Y, Z], got {type(batch).__name__}")


class VoCo(PretextMethod):
    """VoCo pretraining (``radiossl pretrain --method voco``); see the module docstring."""

    name = "voco"
    config_class = VoCoConfig
    views = "genesis"
    summary = "VoCo: regress the overlap of random crops with base crops from embedding similarities"
    headline_metrics = ("loss", "prediction", "regularisation", "lr")
    ddp_find_unused_parameters = False
    """Every parameter gets a gradient in every step."""

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """The authors' optimiser: AdamW lr 1e-4 (weight decay 0.01), warm-up then cosine, batch 2."""
        return {
            "optim": {
                "optimizer": "adamw",
                "lr": 1e-4,
                "weight_decay": 0.01,
                "batch_size": 2,
                "epochs": 240,
                "schedule": "cosine",
                "warmup_epochs": 5.0,
            },
            "model": {"norm": "instance"},
            "data": {"crop_size": (64, 64, 32)},
        }

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        s = self.settings
        cube = tuple(config.data.crop_size)
        try:
            self.crop_size = base_crop_size(cube, s.grid)
        except ValueError as err:
            raise ConfigError(f"method.grid: {err} (data.crop_size {list(cube)})") from err
        stride = input_divisor(config.model)
        if any(size % axis for size, axis in zip(self.crop_size, stride, strict=True)):
            stride_text = str(stride[0]) if len(set(stride)) == 1 else str(list(stride))
            raise ConfigError(
                f"method.grid {list(s.grid)} cuts data.crop_size {list(cube)} into crops of {list(self.crop_size)}; "
                f"every crop size must be a multiple of {stride_text}, the total stride of the "
                f"{config.model.name} backbone"
            )
        self.flip = RandomFlip((0, 1, 2), s.flip_prob)

    def input_sizes(self) -> dict[str, tuple[int, ...]]:
        """The crops the encoder sees, by setting name (checked against the backbone's total stride)."""
        return {"method.grid": tuple(self.crop_size)}

    def build_model(self) -> nn.Module:
        return build_contrastive_encoder(self.config, self.input_sizes())

    def build_datasets(self) -> tuple[Any, Any]:
        from radiossl.views.genesis import GenesisCubeDataset

        data = self.config.data
        root = self.data_root()
        return GenesisCubeDataset(root, "train", seed=self.config.runtime.seed, ratio=data.ratio), None

    def run_name_parts(self) -> list[str]:
        gx, gy, gz = self.settings.grid
        return [f"g{gx}x{gy}x{gz}", f"c{self.settings.crops}"]

    def _rng(self, context: StepContext, purpose: str) -> np.random.Generator:
        index = context.extra.get("batch_index", context.step)
        return rng_for(self.config.runtime.seed, "voco", purpose, context.epoch, index, context.rank)

    def make_crops(
        self, cubes: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(base crops [B·K, ...], random crops [B·M, ...], overlaps [B, M, K])``, crops augmented."""
        volume = tuple(cubes.shape[2:])
        size = base_crop_size(volume, self.settings.grid)
        bases = grid_boxes(volume, self.settings.grid)
        crops = torch.stack([random_boxes(volume, size, self.settings.crops, rng) for _ in range(cubes.shape[0])])
        overlaps = overlap_fractions(crops, bases).to(cubes.device)
        generator = generator_for(rng, cubes.device)
        with torch.autocast(cubes.device.type, enabled=False):
            base_crops = self.flip(cut_boxes(cubes.float(), bases), generator)
            random_crops = self.flip(cut_boxes(cubes.float(), crops), generator)
        return base_crops, random_crops, overlaps

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        cubes = _cubes(batch)
        base_crops, random_crops, overlaps = self.make_crops(cubes, self._rng(context, "step"))
        embeddings = model(torch.cat([base_crops, random_crops])).float()
        batch_size, k = cubes.shape[0], base_crops.shape[0] // cubes.shape[0]
        base_embeddings = embeddings[: batch_size * k].reshape(batch_size, k, -1)
        crop_embeddings = embeddings[batch_size * k :].reshape(batch_size, self.settings.crops, -1)
        parts = voco_loss(
            crop_embeddings, base_embeddings, overlaps, self.settings.positive_weight, self.settings.reg_weight
        )
        metrics = {
            "prediction": float(parts.prediction.detach()),
            "regularisation": float(parts.regularisation.detach()),
        }
        return StepOutput(loss=parts.total, metrics=metrics)
