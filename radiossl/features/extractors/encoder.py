"""``encoder``: features of a radiossl-pretrained 3-D encoder (e.g. a patch-cluster run), on any backbone.

The checkpoint (``{"model": state_dict, "model_spec": ...}`` as written by ``radiossl pretrain``, an
exported encoder, or any layout :mod:`radiossl.models.checkpoint` recognises) is rebuilt with
:func:`radiossl.models.loading.model_from_checkpoint` and run in ``eval()`` mode. Everything the
extractor needs comes from the backbone interface (:class:`radiossl.models.backbone.BackboneNetwork`),
so every registered backbone works (``unet3d``, ``plainconv-unet``, ``resenc-*``, a plugin's):

* the *levels* are the encoder's stages, finest first (``encode(x)``'s list); ``level`` indexes them
  and may count from the end: -1 (default) is the bottleneck, the representation patch-level
  clustering trains. ``unet3d`` has 4 levels (full resolution, 1/2, 1/4, 1/8), ResEnc-L 6 (full
  resolution down to 1/32), ``resenc-xl`` 7;
* the features of a level have ``stage_channels[level]`` channels, and one feature cell covers
  :attr:`EncoderExtractor.stride` input voxels per axis: the product of ``stage_strides`` up to that
  stage (an nnU-Net plan may stride some stages only along some axes, e.g. ``(2, 2, 1)``);
* the network runs its whole encoder whatever the level, so an input must be a multiple of the
  encoder's total stride along each axis (8 for ``unet3d``, 32 for ResEnc-L): crop sizes that are
  not are first resized (trilinearly) up to the next multiple, so that the feature grid still spans
  the whole crop (:meth:`EncoderExtractor.feature_grid` gives it for a crop size).

An upsampler (``bilinear``, which is trilinear for these 3-D features, or ``jbu``) brings the
features back to the crop grid.

Example (with a checkpoint from ``radiossl pretrain``):
    >>> # EncoderExtractor({"weights": "runs/patch-cluster/checkpoint_final.pt", "level": 2})
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from radiossl.errors import ConfigError
from radiossl.features.base import ExtractorConfig, FeatureExtractor

Size3 = tuple[int, int, int]


class EncoderConfig(ExtractorConfig):
    """Options of the ``encoder`` extractor."""

    weights: Path | None = Field(None, description="radiossl checkpoint holding a 3-D encoder (any backbone).")
    level: int = Field(
        -1,
        description="Encoder stage: 0 (finest, full resolution) .. stages-1, or negative from the end "
        "(-1 = bottleneck).",
    )
    allow_unsafe: bool = Field(False, description="Unpickle arbitrary objects (trusted files only).")


def _input_channels(network: Any) -> int:
    """Input channels of the network's first convolution (``stem_key``), else its ``in_channels``."""
    stem = network.state_dict().get(getattr(network, "stem_key", ""))
    if isinstance(stem, torch.Tensor) and stem.dim() == 5:
        return int(stem.shape[1])
    return int(getattr(network, "in_channels", 1))


class EncoderExtractor(FeatureExtractor):
    """One stage (level) of a pretrained radiossl 3-D encoder (see the module docstring)."""

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
        from radiossl.models.backbone import stage_scales
        from radiossl.models.loading import model_from_checkpoint

        weights = Path(self.config.weights)
        model, _ = model_from_checkpoint(weights, allow_unsafe=self.config.allow_unsafe)
        if not callable(getattr(model, "encode", None)) or not all(
            hasattr(model, member) for member in ("stage_channels", "stage_strides")
        ):
            raise ConfigError(
                f"{weights}: {type(model).__name__} has no 3-D encoder to take features from "
                "(no encode/stage_channels/stage_strides of a radiossl backbone)"
            )
        network: Any = model.eval()
        self.network = network
        self.in_channels = _input_channels(network)
        self.channels: tuple[int, ...] = tuple(int(c) for c in network.stage_channels)
        self.strides: tuple[Size3, ...] = tuple(stage_scales(network))
        """Input voxels per feature cell along each axis, of every level (finest first)."""
        levels = len(self.channels)
        if not -levels <= self.config.level < levels:
            raise ConfigError(
                f"{weights}: extractor encoder level {self.config.level} is out of range: the "
                f"{type(network).__name__} encoder has {levels} stages, so level must be 0..{levels - 1} "
                f"or -{levels}..-1 (-1 = bottleneck)"
            )
        self.level = self.config.level % levels

    @property
    def divisor(self) -> Size3:
        """Input sizes the network takes are multiples of this along each axis (its total stride)."""
        return self.strides[-1]

    @property
    def stride(self) -> Size3:
        """Input voxels per feature cell of the chosen level along each axis (e.g. ``(4, 4, 4)``)."""
        return self.strides[self.level]

    def input_size(self, size: Sequence[int]) -> Size3:
        """The size a crop of ``size`` is resized to: the next multiple of :attr:`divisor` per axis."""
        x, y, z = (-(-int(s) // d) * d for s, d in zip(size, self.divisor, strict=True))
        return (x, y, z)

    def feature_grid(self, size: Sequence[int]) -> Size3:
        """The grid of the features :meth:`extract` gives for a crop of ``size``."""
        x, y, z = (s // d for s, d in zip(self.input_size(size), self.stride, strict=True))
        return (x, y, z)

    def feature_dim(self, in_channels: int) -> int:
        if in_channels != self.in_channels:
            raise ConfigError(
                f"{self.config.weights}: the encoder takes {self.in_channels} input channel(s), "
                f"the crops have {in_channels}"
            )
        return self.channels[self.level]

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``[B, channels[level], *feature_grid]`` of ``[B, C, X, Y, Z]``; sizes that are not
        multiples of the encoder's total stride are first resized (trilinearly) up to the next multiple."""
        self.feature_dim(int(images.shape[1]))
        images = images.float()
        crop = tuple(int(s) for s in images.shape[2:])
        size = self.input_size(crop)
        if size != crop:
            images = F.interpolate(images, size=size, mode="trilinear", align_corners=False)
        try:
            stages = self.network.encode(images)
        except ValueError as exc:  # e.g. instance norm on a one-voxel bottleneck
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if size == self.divisor:
                reason += " (a one-voxel bottleneck, which instance norm cannot normalise)"
            raise ConfigError(
                f"{self.config.weights}: the encoder cannot run on crops of {list(crop)} (resized to {list(size)}, "
                f"the next multiples of its total stride {list(self.divisor)}): {reason}; use larger crops"
            ) from exc
        features: torch.Tensor = stages[self.level]
        return features
