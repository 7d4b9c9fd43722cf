"""``encoder``: features of a radiossl-pretrained 3-D encoder (e.g. a patch-cluster run).

The checkpoint (``{"model": state_dict, "model_spec": ...}`` as written by ``radiossl pretrain``, an
exported encoder, or any layout :mod:`radiossl.models.checkpoint` recognises) is rebuilt with
:func:`radiossl.models.loading.model_from_checkpoint` and run in ``eval()`` mode. The features are
one encoder level's output: level 0 is full resolution, 1 is 1/2, 2 is 1/4, 3 (= -1, default) is the
1/8 bottleneck — the representation patch-level clustering trains. An upsampler (``bilinear``, which
is trilinear for these 3-D features, or ``jbu``) brings them back to the crop grid.

Example (with a checkpoint from ``radiossl pretrain``):
    >>> # EncoderExtractor({"weights": "runs/patch-cluster/checkpoint_final.pt", "level": 2})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from radiossl.errors import ConfigError
from radiossl.features.base import ExtractorConfig, FeatureExtractor

ENCODER_DIVISOR = 8
"""The 3-D U-Net encoder pools three times: its input sizes must be multiples of 8."""


class EncoderConfig(ExtractorConfig):
    """Options of the ``encoder`` extractor."""

    weights: Path | None = Field(None, description="radiossl checkpoint holding a 3-D U-Net/encoder.")
    level: int = Field(-1, ge=-4, le=3, description="Encoder level: 0 (full res) .. 3 or -1 (bottleneck, 1/8).")
    allow_unsafe: bool = Field(False, description="Unpickle arbitrary objects (trusted files only).")


class EncoderExtractor(FeatureExtractor):
    """One level of a pretrained radiossl 3-D encoder."""

    name: ClassVar[str] = "encoder"
    config_class: ClassVar[type[ExtractorConfig]] = EncoderConfig
    spatial_dims: ClassVar[int] = 3
    standardize_default: ClassVar[bool] = True
    config: EncoderConfig

    def __init__(self, config: EncoderConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        if self.config.weights is None:
            raise ConfigError(
                "extractor encoder needs a radiossl checkpoint (e.g. <run>/checkpoint_final.pt from "
                "`radiossl pretrain --method patch-cluster`); pass --weights PATH"
            )
        from radiossl.models.loading import model_from_checkpoint

        model, _ = model_from_checkpoint(Path(self.config.weights), allow_unsafe=self.config.allow_unsafe)
        if not callable(getattr(model, "encode", None)) or not hasattr(model, "encoder_channels"):
            raise ConfigError(f"{self.config.weights}: {type(model).__name__} has no 3-D encoder to take features from")
        network: Any = model.eval()
        self.network = network
        self.in_channels = int(getattr(network, "in_channels", 1))
        self.channels: tuple[int, ...] = tuple(int(c) for c in network.encoder_channels)
        self.level = self.config.level % len(self.channels)

    @property
    def stride(self) -> int:
        """Downsampling factor of the chosen level."""
        return 2**self.level

    def feature_dim(self, in_channels: int) -> int:
        if in_channels != self.in_channels:
            raise ConfigError(
                f"{self.config.weights}: the encoder takes {self.in_channels} input channel(s), "
                f"the crops have {in_channels}"
            )
        return self.channels[self.level]

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Features of ``[B, C, X, Y, Z]``; sizes that are not multiples of 8 are first resized
        (trilinearly) up to the next multiple, so the feature grid still spans the whole crop."""
        self.feature_dim(int(images.shape[1]))
        images = images.float()
        size = tuple(-(-s // ENCODER_DIVISOR) * ENCODER_DIVISOR for s in images.shape[2:])
        if size != tuple(images.shape[2:]):
            images = F.interpolate(images, size=size, mode="trilinear", align_corners=False)
        features: torch.Tensor = self.network.encode(images)[self.level]
        return features
