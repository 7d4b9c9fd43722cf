"""Rotation prediction: classify by how many quarter turns a cube was rotated in-plane.

The method trains on its own view, ``rotation-cubes`` (:mod:`radiossl_rotation.view`), which
stores every rotated cube with its rotation; a linear head on the pooled bottleneck of the U-Net
encoder predicts the rotation. radiossl's ``pretrain`` refuses a folder preprocessed for another view.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.errors import DataError
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


class RotationPrediction(PretextMethod):
    """3D rotation prediction (four in-plane rotations)."""

    name = "rotation-3d"
    config_class = RotationConfig
    views = "rotation-cubes"
    summary = "Predict the in-plane rotation of a cube (example plugin)."

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {"optim": {"lr": 1e-2, "epochs": 50, "batch_size": 8}}

    def build_model(self) -> nn.Module:
        cfg = self.config
        return RotationNet(
            cfg.model.in_channels, cfg.model.width, cfg.model.norm, self.settings.rotations, self.settings.dropout
        )

    def build_datasets(self) -> tuple[Any, Any]:
        from radiossl_rotation.view import RotationCubeDataset

        root = self.config.data.root
        if root is None:
            raise DataError("no data folder given: use --data PROC_DIR (or data.root in the config)")
        return RotationCubeDataset(root, "train", seed=self.config.runtime.seed), None

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        labels = batch.rotation
        if int(labels.max()) >= self.settings.rotations:
            raise ValueError(
                f"the cubes hold up to {int(labels.max()) + 1} rotations but method.rotations is "
                f"{self.settings.rotations}; preprocess with --set rotation-cubes.rotations={self.settings.rotations}"
            )
        logits = model(batch.cube)
        loss = F.cross_entropy(logits.float(), labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
        return StepOutput(loss=loss, metrics={"accuracy": accuracy})
