"""``dino-vits16``, ``dino-vits8``, ``dino-vitb16``: DINO ViT patch tokens of axial slices.

Each axial slice (grey repeated to RGB, ImageNet-normalised unless ``imagenet_norm: false``, the
thesis behaviour) goes through the ViT; the features are the patch tokens of the last block after
the final LayerNorm, CLS dropped: ``[N, dim, H/p, W/p]``. Slices whose size is not a multiple of the
patch size are resized up to the next multiple first. Weights come from a local file (``weights:``
in the config, ``--weights`` on the command line): the backbone files published by the DINO authors
load as they are; full DINO training checkpoints (``teacher``/``student`` entries, ``module.`` and
``backbone.`` prefixes) are accepted too.

Example (with a downloaded file):
    >>> # DinoViTS16({"weights": "dino_deitsmall16_pretrain.pth"}).feature_dim(1)  -> 384
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from radiossl.errors import CheckpointError, ConfigError
from radiossl.features.base import ExtractorConfig, FeatureExtractor, to_rgb
from radiossl.features.vit import VisionTransformer

DINO_REPO = "https://github.com/facebookresearch/dino"
DINO_DOWNLOADS = "https://dl.fbaipublicfiles.com/dino"


class DinoConfig(ExtractorConfig):
    """Options of the DINO extractors."""

    weights: Path | None = Field(None, description="Local DINO backbone file (.pth).")
    imagenet_norm: bool = Field(True, description="Apply ImageNet mean/std (false = thesis behaviour).")
    resize: int | None = Field(
        None, ge=8, description="Resize slices to this size (pixels) before the ViT; more tokens per slice."
    )


def read_dino_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The backbone tensors of a DINO file, with wrapper prefixes and head tensors removed."""
    if not path.is_file():
        raise CheckpointError(f"{path}: DINO weights file not found")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign or corrupt files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({first})") from err
    if isinstance(obj, dict):
        for key in ("teacher", "state_dict", "model", "student"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state_dict of tensors (a DINO backbone file)")
    from radiossl.models.checkpoint import clean_state_dict

    return clean_state_dict(obj, key_map={"backbone.": "", "head.": None})


class _DinoBase(FeatureExtractor):
    """Shared implementation; subclasses fix the architecture and the published file name."""

    config_class: ClassVar[type[ExtractorConfig]] = DinoConfig
    spatial_dims: ClassVar[int] = 2
    patch_size: ClassVar[int]
    embed_dim: ClassVar[int]
    num_heads: ClassVar[int]
    depth: ClassVar[int] = 12
    weights_file: ClassVar[str]
    description: ClassVar[str]
    config: DinoConfig

    def __init__(self, config: DinoConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        if self.config.weights is None:
            raise ConfigError(self.missing_weights_message())
        # Built on the meta device: every tensor is replaced by the file's, so random init is skipped.
        with torch.device("meta"):
            self.vit = VisionTransformer(
                patch_size=self.patch_size,
                embed_dim=self.embed_dim,
                depth=self.depth,
                num_heads=self.num_heads,
            )
        self.load_weights(Path(self.config.weights))
        self.eval()

    @classmethod
    def missing_weights_message(cls) -> str:
        """One line: which file is needed, where to get it, which flag to pass."""
        stem = cls.weights_file.removesuffix(".pth")
        return (
            f"extractor {cls.name} needs the {cls.description} weights {cls.weights_file} published by the "
            f"DINO authors ({DINO_REPO}, 'Pretrained models'; direct link {DINO_DOWNLOADS}/{stem}/"
            f"{cls.weights_file}); download it and pass --weights PATH "
            f"(or set features.extractor_options.weights)"
        )

    def load_weights(self, path: Path) -> None:
        """Load a DINO backbone file strictly; a different pos-embed grid is accepted and kept."""
        state = read_dino_state_dict(path)
        own = self.vit.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
            raise CheckpointError(f"{path}: not a {self.description} backbone ({'; '.join(parts)})")
        pos = state["pos_embed"]
        grid = math.isqrt(pos.shape[1] - 1) if pos.dim() == 3 else -1
        if pos.dim() == 3 and pos.shape[2] == self.embed_dim and grid * grid + 1 == pos.shape[1]:
            self.vit.pos_embed = torch.nn.Parameter(torch.zeros(pos.shape, device=self.vit.pos_embed.device))
            own = self.vit.state_dict()
        wrong = [
            f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape
        ]
        if wrong:
            raise CheckpointError(f"{path}: not a {self.description} backbone (shape mismatch: {wrong[0]})")
        self.vit.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True, assign=True)

    def feature_dim(self, in_channels: int) -> int:
        return self.embed_dim

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"{self.name} expects axial slices [N, C, H, W], got shape {tuple(images.shape)}")
        h, w = images.shape[-2:]
        p = self.patch_size
        if self.config.resize is not None:
            size = (self.config.resize, self.config.resize)
        else:
            size = (h, w)
        size = (math.ceil(size[0] / p) * p, math.ceil(size[1] / p) * p)
        if size != (h, w):
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        return self.vit.patch_tokens(to_rgb(images.float(), self.config.imagenet_norm))


class DinoViTS16(_DinoBase):
    """DINO ViT-S/16: 384-dim tokens, one per 16x16 pixels (the thesis extractor)."""

    name: ClassVar[str] = "dino-vits16"
    patch_size: ClassVar[int] = 16
    embed_dim: ClassVar[int] = 384
    num_heads: ClassVar[int] = 6
    weights_file: ClassVar[str] = "dino_deitsmall16_pretrain.pth"
    description: ClassVar[str] = "ViT-S/16"


class DinoViTS8(_DinoBase):
    """DINO ViT-S/8: 384-dim tokens, one per 8x8 pixels."""

    name: ClassVar[str] = "dino-vits8"
    patch_size: ClassVar[int] = 8
    embed_dim: ClassVar[int] = 384
    num_heads: ClassVar[int] = 6
    weights_file: ClassVar[str] = "dino_deitsmall8_pretrain.pth"
    description: ClassVar[str] = "ViT-S/8"


class DinoViTB16(_DinoBase):
    """DINO ViT-B/16: 768-dim tokens, one per 16x16 pixels."""

    name: ClassVar[str] = "dino-vitb16"
    patch_size: ClassVar[int] = 16
    embed_dim: ClassVar[int] = 768
    num_heads: ClassVar[int] = 12
    weights_file: ClassVar[str] = "dino_vitbase16_pretrain.pth"
    description: ClassVar[str] = "ViT-B/16"
