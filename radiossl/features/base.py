"""Feature extractors, upsamplers, and the pipeline that turns a crop batch into per-voxel features.

Pixel-level clustering needs one feature vector per voxel. An *extractor* computes features, often
at a lower resolution (a ViT gives one token per 16x16 patch); an *upsampler* brings them back to the
input grid, optionally guided by the image. Both are plugins (entry-point groups
``radiossl.feature_extractors`` and ``radiossl.upsamplers``) built from a name and a config dict.

Layouts:

* A crop batch is ``[B, C, H, W, D]`` float32 in [0, 1] (slice axis last).
* A 2-D extractor (``spatial_dims = 2``) works on axial slices: the pipeline moves depth into the
  batch (``[B*D, C, H, W]``), the extractor returns ``[B*D, dim, h, w]``.
* A 3-D extractor works on the volume and returns ``[B, dim, h, w, d]``.
* An upsampler maps ``features [N, dim, *low]`` and ``image [N, C, *high]`` (the raw [0, 1] input
  in the same layout) to ``[N, dim, *high]``.

Example:
    >>> import torch
    >>> pipe = build_pipeline("filterbank", "bilinear")
    >>> pipe(torch.rand(1, 1, 16, 16, 8)).shape[2:]
    torch.Size([16, 16, 8])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from radiossl.config import Section, format_validation_error
from radiossl.errors import ConfigError, PluginError

EXTRACTOR_GROUP = "radiossl.feature_extractors"
UPSAMPLER_GROUP = "radiossl.upsamplers"

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class ExtractorConfig(Section):
    """Base of every extractor's options (each extractor subclasses it)."""


class UpsamplerConfig(Section):
    """Base of every upsampler's options (each upsampler subclasses it)."""


def validate_options(config_class: type[Section], options: Any, where: str) -> Any:
    """Validate ``options`` (dict, config or None) as ``config_class``; ConfigError names ``where``."""
    if isinstance(options, config_class):
        return options
    if options is None:
        options = {}
    if isinstance(options, Section):
        options = options.model_dump()
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}: expected a mapping of options, got {type(options).__name__}")
    try:
        return config_class.model_validate(dict(options))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from exc


class FeatureExtractor(nn.Module, ABC):
    """Per-voxel (or per-patch) features of an image batch.

    Subclasses set ``name``, ``config_class``, ``spatial_dims`` and implement :meth:`feature_dim`
    and :meth:`extract`. Extractors are frozen: they run in ``eval()`` mode without gradients.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ExtractorConfig]] = ExtractorConfig
    spatial_dims: ClassVar[int] = 3
    standardize_default: ClassVar[bool] = False
    """Whether k-means should z-score each feature channel (over its fit sample) by default."""

    def __init__(self, config: ExtractorConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = validate_options(self.config_class, config, f"extractor {self.name}")

    @abstractmethod
    def feature_dim(self, in_channels: int) -> int:
        """Number of feature channels produced for an input with ``in_channels`` channels."""

    @abstractmethod
    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Features in the extractor's native layout (see the module docstring)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extract(images)

    def channel_weights(self, in_channels: int) -> list[float] | None:
        """How much each (standardised) channel counts in K-means distances; None = all equally."""
        return None

    def describe(self) -> dict[str, Any]:
        """Name and options (JSON-compatible), recorded next to centroids and targets."""
        return {"name": self.name, "config": self.config.model_dump(mode="json")}


class Upsampler(nn.Module, ABC):
    """Brings low-resolution features to the image grid.

    Subclasses set ``name``, ``config_class`` and ``supported_dims`` and implement :meth:`forward`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[UpsamplerConfig]] = UpsamplerConfig
    supported_dims: ClassVar[tuple[int, ...]] = (2, 3)

    def __init__(
        self, config: UpsamplerConfig | Mapping[str, Any] | None = None, feature_dim: int | None = None
    ) -> None:
        super().__init__()
        self.config = validate_options(self.config_class, config, f"upsampler {self.name}")
        self.feature_dim = feature_dim

    @abstractmethod
    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``[N, dim, *low]`` features and ``[N, C, *high]`` image -> ``[N, dim, *high]``."""

    def describe(self) -> dict[str, Any]:
        """Name and options (JSON-compatible)."""
        return {"name": self.name, "config": self.config.model_dump(mode="json")}


def to_rgb(images: torch.Tensor, imagenet_norm: bool) -> torch.Tensor:
    """``[N, C, H, W]`` in [0, 1] -> ``[N, 3, H, W]``: grey repeated (C=1), kept (C=3), else channel mean.

    With ``imagenet_norm`` the ImageNet mean/std are applied, as the DINO and FeatUp networks expect.
    """
    c = images.shape[1]
    if c == 1:
        rgb = images.expand(-1, 3, -1, -1)
    elif c == 3:
        rgb = images
    else:
        rgb = images.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    if imagenet_norm:
        mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        rgb = (rgb - mean) / std
    return rgb.contiguous()


def resize_to(features: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear (2-D) or trilinear (3-D) resize; a no-op when the size already matches."""
    if tuple(features.shape[2:]) == tuple(size):
        return features
    mode = "bilinear" if features.dim() == 4 else "trilinear"
    return F.interpolate(features, size=size, mode=mode, align_corners=False)


class FeaturePipeline(nn.Module):
    """Extractor + upsampler: a crop batch ``[B, C, H, W, D]`` -> features ``[B, dim, H, W, D]``.

    Args:
        extractor: any :class:`FeatureExtractor`.
        upsampler: any :class:`Upsampler` supporting the extractor's ``spatial_dims``.
        slice_batch: for 2-D extractors, how many axial slices go through the network at once.
    """

    def __init__(self, extractor: FeatureExtractor, upsampler: Upsampler, slice_batch: int = 32) -> None:
        super().__init__()
        _check_dims(extractor, type(upsampler))
        if slice_batch < 1:
            raise ConfigError(f"slice_batch must be >= 1, got {slice_batch}")
        self.extractor = extractor.eval()
        self.upsampler = upsampler.eval()
        self.slice_batch = slice_batch
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def feature_dim(self, in_channels: int) -> int:
        """Channels of the output for an input with ``in_channels`` channels."""
        return self.extractor.feature_dim(in_channels)

    def describe(self) -> dict[str, Any]:
        return {"extractor": self.extractor.describe(), "upsampler": self.upsampler.describe()}

    @torch.no_grad()
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.dim() != 5:
            raise ValueError(f"expected a crop batch [B, C, H, W, D], got shape {tuple(crops.shape)}")
        if self.extractor.spatial_dims == 3:
            return self.upsampler(self.extractor.extract(crops), crops)
        b, c, h, w, d = crops.shape
        slices = crops.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w)
        chunks = [self.upsampler(self.extractor.extract(part), part) for part in torch.split(slices, self.slice_batch)]
        features = torch.cat(chunks)
        return features.reshape(b, d, -1, h, w).permute(0, 2, 3, 4, 1).contiguous()


def _check_dims(extractor: FeatureExtractor, upsampler: type[Upsampler]) -> None:
    if extractor.spatial_dims not in upsampler.supported_dims:
        supported = " or ".join(f"{d}-D" for d in upsampler.supported_dims)
        raise ConfigError(
            f"upsampler {upsampler.name} does not support {extractor.spatial_dims}-D features "
            f"(extractor {extractor.name}); it handles {supported} features"
        )


def _plugin_class(group: str, name: str, base: type) -> Any:
    from radiossl import registry

    cls = registry.get(group, name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"plugin {name!r} in {group} is not a {base.__name__} subclass")
    return cls


def build_extractor(
    name: str, options: Mapping[str, Any] | None = None, weights: str | Path | None = None
) -> FeatureExtractor:
    """The extractor plugin ``name`` built from ``options``; ``weights`` sets its ``weights`` option."""
    cls = _plugin_class(EXTRACTOR_GROUP, name, FeatureExtractor)
    merged = dict(options or {})
    if weights is not None:
        if "weights" not in cls.config_class.model_fields:
            raise ConfigError(f"extractor {name} takes no weights file (got --weights {weights})")
        merged["weights"] = Path(weights)
    return cls(merged)


def build_upsampler(
    name: str,
    options: Mapping[str, Any] | None = None,
    feature_dim: int | None = None,
    weights: str | Path | None = None,
) -> Upsampler:
    """The upsampler plugin ``name`` built from ``options``; ``weights`` sets its ``weights`` option."""
    cls = _plugin_class(UPSAMPLER_GROUP, name, Upsampler)
    merged = dict(options or {})
    if weights is not None:
        if "weights" not in cls.config_class.model_fields:
            raise ConfigError(f"upsampler {name} takes no weights file (got --upsampler-weights {weights})")
        merged["weights"] = Path(weights)
    return cls(merged, feature_dim=feature_dim)


def build_pipeline(
    extractor: str,
    upsampler: str,
    extractor_options: Mapping[str, Any] | None = None,
    upsampler_options: Mapping[str, Any] | None = None,
    in_channels: int = 1,
    slice_batch: int = 32,
    weights: str | Path | None = None,
    upsampler_weights: str | Path | None = None,
) -> FeaturePipeline:
    """Build an extractor and an upsampler by plugin name and join them.

    Example:
        >>> build_pipeline("filterbank", "jbu").feature_dim(1)
        19
    """
    ext = build_extractor(extractor, extractor_options, weights)
    _check_dims(ext, _plugin_class(UPSAMPLER_GROUP, upsampler, Upsampler))
    ups = build_upsampler(upsampler, upsampler_options, ext.feature_dim(in_channels), upsampler_weights)
    return FeaturePipeline(ext, ups, slice_batch=slice_batch)
