"""Rotation prediction: classify which in-plane rotation was applied to a crop.

The method reuses radiossl's preprocessed crop pairs (``views = "cluster"``): each crop of a pair
is rotated by a random multiple of 90° about the slice axis, and a linear head on the pooled
bottleneck of the U-Net encoder predicts the multiple.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.models import Encoder3D
from radiossl.models.factory import register_model_class
from radiossl.pretext.base import PretextMethod


class RotationConfig(MethodConfig):
    """Settings of the rotation-prediction pretext task."""

    name: Literal["rotation-3d"] = "rotation-3d"
    rotations: int = Field(4, ge=2, le=4, description="Number of 90° rotation classes (2 to 4).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the classifier.")


class RotationNet(Encoder3D):
    """radiossl's U-Net encoder (same ``down_tr*`` keys, so finetuning transfers it) plus a classifier."""

    def __init__(
        self,
        in_channels: int = 1,
        width: float = 1.0,
        norm: str = "batch",
        rotations: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_channels=in_channels, width=width, norm=norm)
        self.rotations = rotations
        self.dropout_p = dropout
        self.rotation_dropout = nn.Dropout(dropout)
        self.rotation_classifier = nn.Linear(self.encoder_channels[-1], rotations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.encode(x)[-1].float().mean(dim=(2, 3, 4))
        return self.rotation_classifier(self.rotation_dropout(pooled))

    def spec_kwargs(self) -> dict[str, Any]:
        return {**super().spec_kwargs(), "rotations": self.rotations, "dropout": self.dropout_p}


register_model_class(RotationNet)


def rotate_batch(x: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotate each sample of ``x`` (B, C, H, W, D) by ``quarter_turns[b] * 90°`` in the H-W plane."""
    return torch.stack([torch.rot90(sample, int(k), dims=(1, 2)) for sample, k in zip(x, quarter_turns, strict=False)])


class RotationPrediction(PretextMethod):
    """3D rotation prediction (four in-plane rotations)."""

    name = "rotation-3d"
    config_class = RotationConfig
    views = "cluster"
    summary = "Predict the in-plane rotation of a crop (example plugin)."

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {"optim": {"lr": 1e-2, "epochs": 50, "batch_size": 8}}

    def build_model(self) -> nn.Module:
        cfg = self.config
        return RotationNet(
            cfg.model.in_channels, cfg.model.width, cfg.model.norm, self.settings.rotations, self.settings.dropout
        )

    def build_datasets(self) -> tuple[Any, Any]:
        from radiossl.data.views import ClusterPairDataset

        return ClusterPairDataset(self.config.data.root, "train", seed=self.config.runtime.seed), None

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        crops = torch.cat([batch.view1, batch.view2])
        if crops.shape[2] != crops.shape[3]:
            raise ValueError(f"rotation-3d needs square crops in-plane, got {tuple(crops.shape[2:])}")
        labels = torch.randint(0, self.settings.rotations, (crops.shape[0],), device=crops.device)
        logits = model(rotate_batch(crops, labels))
        loss = F.cross_entropy(logits.float(), labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
        return StepOutput(loss=loss, metrics={"accuracy": accuracy})
