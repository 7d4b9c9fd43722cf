"""``featup-jbu``: FeatUp's learned JBU stack (Fu et al., ICLR 2024) in plain torch, for 2-D features.

The architecture — and the parameter names, so that FeatUp's released checkpoints load — follow
FeatUp's ``JBUStack``: four 2x stages ``up1`` .. ``up4`` and a final ``x + 0.1·fixup_proj(x)``.
Each stage, given the image average-pooled to its output size as guidance:

1. projects the guidance with two 1x1 convolutions (``range_proj``: 3 -> 32 -> 32, GELU between);
2. range kernel: softmax over the 7x7 neighbourhood (radius 3, reflect padding) of
   ``exp(range_temp) · <key(q), key(p)>``;
3. spatial kernel ``exp(-|d|² / 2·sigma_spatial²)`` with offsets ``d`` on a [-1, 1]² grid;
4. normalised product, plus ``0.1·fixup_proj([kernel, guidance])`` (two 1x1 convolutions);
5. the features, bicubically upsampled 2x, are filtered with that per-pixel 7x7 kernel.

FeatUp applies step 5 with a CUDA/C++ extension; here it is a loop over the 49 kernel offsets,
vectorised over pixels. Checkpoints: the PyTorch-Lightning files FeatUp publishes (``state_dict``
with ``upsampler.*`` keys; a ``model.1.norm.*`` channel LayerNorm, present in the ``use_norm``
variant, is applied to the features first) or a plain ``state_dict`` of this module.

Example:
    >>> import torch
    >>> up = FeatUpJBU.untrained(feature_dim=8)
    >>> up(torch.rand(2, 8, 2, 2), torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 8, 32, 32])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from radiossl.errors import CheckpointError, ConfigError
from radiossl.features.base import Upsampler, UpsamplerConfig, resize_to, to_rgb

FEATUP_REPO = "https://github.com/mhamilton723/FeatUp"
FEATUP_DOWNLOADS = "https://marhamilresearch4.blob.core.windows.net/feature-upsampling-public/pretrained"
STAGES = ("up1", "up2", "up3", "up4")


class FeatUpJBUConfig(UpsamplerConfig):
    """Options of the ``featup-jbu`` upsampler."""

    weights: Path | None = Field(None, description="FeatUp JBU checkpoint (.ckpt) or a saved state_dict.")
    imagenet_norm: bool = Field(True, description="ImageNet-normalise the guidance image (false = thesis).")
    channel_norm: bool = Field(True, description="Apply the checkpoint's channel LayerNorm when it has one.")
    allow_unsafe: bool = Field(False, description="Unpickle arbitrary objects (trusted files only).")


class JBUStage(nn.Module):
    """One learned 2x joint bilateral upsampling stage (FeatUp ``JBULearnedRange``)."""

    def __init__(self, guidance_dim: int = 3, key_dim: int = 32, radius: int = 3) -> None:
        super().__init__()
        self.radius = radius
        self.diameter = 2 * radius + 1
        taps = self.diameter**2
        self.range_temp = nn.Parameter(torch.tensor(0.0))
        self.range_proj = nn.Sequential(
            nn.Conv2d(guidance_dim, key_dim, 1), nn.GELU(), nn.Dropout2d(0.1), nn.Conv2d(key_dim, key_dim, 1)
        )
        self.fixup_proj = nn.Sequential(
            nn.Conv2d(guidance_dim + taps, taps, 1), nn.GELU(), nn.Dropout2d(0.1), nn.Conv2d(taps, taps, 1)
        )
        self.sigma_spatial = nn.Parameter(torch.tensor(1.0))

    def _offsets(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.diameter) for j in range(self.diameter)]

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        r = self.radius
        mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
        return F.pad(x, [r, r, r, r], mode=mode)

    def spatial_kernel(self) -> torch.Tensor:
        """``[1, taps, 1, 1]`` Gaussian over the offset grid spanning [-1, 1]²."""
        axis = torch.linspace(-1.0, 1.0, self.diameter, device=self.sigma_spatial.device)
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        kernel = torch.exp(-(rows**2 + cols**2) / (2 * self.sigma_spatial**2))
        return kernel.reshape(1, -1, 1, 1)

    def kernel(self, guidance: torch.Tensor) -> torch.Tensor:
        """Per-pixel filter weights ``[N, taps, H, W]`` for guidance ``[N, 3, H, W]``."""
        h, w = guidance.shape[-2:]
        keys = self.range_proj(guidance)
        padded = self._pad(keys)
        logits = torch.stack(
            [(padded[:, :, i : i + h, j : j + w] * keys).sum(dim=1) for i, j in self._offsets()], dim=1
        )
        temperature = self.range_temp.exp().clamp(1e-4, 1e4)
        kernel = torch.softmax(temperature * logits, dim=1) * self.spatial_kernel()
        kernel = kernel / kernel.sum(dim=1, keepdim=True).clamp_min(1e-7)
        return kernel + 0.1 * self.fixup_proj(torch.cat([kernel, guidance], dim=1))

    def forward(self, source: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        h, w = guidance.shape[-2:]
        kernel = self.kernel(guidance)
        upsampled = self._pad(F.interpolate(source, size=(h, w), mode="bicubic", align_corners=False))
        out = torch.zeros(source.shape[0], source.shape[1], h, w, device=source.device, dtype=source.dtype)
        for tap, (i, j) in enumerate(self._offsets()):
            out.add_(upsampled[:, :, i : i + h, j : j + w] * kernel[:, tap : tap + 1])
        return out


def _read_state(path: Path, allow_unsafe: bool) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: FeatUp weights file not found")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=not allow_unsafe)
    except Exception as err:  # torch raises many types for foreign, pickled or corrupt files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = "" if allow_unsafe else "; if you trust the file, set upsampler_options.allow_unsafe=true"
        raise CheckpointError(f"{path}: cannot read FeatUp weights ({first}){hint}") from err
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state_dict or a Lightning checkpoint, got {type(obj).__name__}")
    from radiossl.models.checkpoint import clean_state_dict

    state = clean_state_dict(obj)
    if any(k.startswith("upsampler.") for k in state):
        mapped = {k.removeprefix("upsampler."): v for k, v in state.items() if k.startswith("upsampler.")}
        for key in ("weight", "bias"):
            if f"model.1.norm.{key}" in state:
                mapped[f"channel_norm.{key}"] = state[f"model.1.norm.{key}"]
        state = mapped
    return state


class FeatUpJBU(Upsampler):
    """FeatUp's JBU stack (16x) for 2-D features; the result is resized to the image if sizes differ."""

    name: ClassVar[str] = "featup-jbu"
    config_class: ClassVar[type[UpsamplerConfig]] = FeatUpJBUConfig
    supported_dims: ClassVar[tuple[int, ...]] = (2,)
    config: FeatUpJBUConfig

    def __init__(
        self,
        config: FeatUpJBUConfig | Mapping[str, Any] | None = None,
        feature_dim: int | None = None,
        *,
        pretrained: bool = True,
    ) -> None:
        super().__init__(config, feature_dim)
        state: dict[str, torch.Tensor] | None = None
        if pretrained:
            if self.config.weights is None:
                raise ConfigError(self.missing_weights_message())
            state = _read_state(Path(self.config.weights), self.config.allow_unsafe)
            found = state.get("fixup_proj.1.weight")
            if found is None or found.dim() != 4:
                raise CheckpointError(f"{self.config.weights}: no FeatUp JBU stack inside (no fixup_proj.1.weight)")
            if feature_dim is not None and int(found.shape[0]) != feature_dim:
                raise ConfigError(
                    f"{self.config.weights}: JBU stack for {int(found.shape[0])}-dim features, "
                    f"the extractor gives {feature_dim}"
                )
            feature_dim = int(found.shape[0])
        if feature_dim is None:
            raise ConfigError("featup-jbu needs the feature dimension (pass feature_dim)")
        self.feature_dim = feature_dim
        for stage in STAGES:
            self.add_module(stage, JBUStage(3, 32, radius=3))
        self.fixup_proj = nn.Sequential(nn.Dropout2d(0.2), nn.Conv2d(feature_dim, feature_dim, kernel_size=1))
        has_norm = state is not None and "channel_norm.weight" in state
        self.channel_norm: nn.LayerNorm | None = nn.LayerNorm(feature_dim) if has_norm else None
        if state is not None:
            self._load(state)
        self.eval()

    @classmethod
    def untrained(cls, feature_dim: int, config: Mapping[str, Any] | None = None) -> FeatUpJBU:
        """A randomly initialised stack (for training or tests)."""
        return cls(config, feature_dim, pretrained=False)

    @classmethod
    def missing_weights_message(cls) -> str:
        return (
            "upsampler featup-jbu needs a FeatUp JBU checkpoint, e.g. dino16_jbu_stack_cocostuff.ckpt from "
            f"{FEATUP_REPO} ({FEATUP_DOWNLOADS}/no_norm/dino16_jbu_stack_cocostuff.ckpt as in the thesis, "
            f"or {FEATUP_DOWNLOADS}/dino16_jbu_stack_cocostuff.ckpt); pass --upsampler-weights PATH"
        )

    def _load(self, state: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            first = (missing or unexpected or wrong)[0]
            raise CheckpointError(
                f"{self.config.weights}: does not fit the FeatUp JBU stack ({len(missing)} missing, "
                f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped tensors; e.g. {first})"
            )
        self.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4:
            raise ValueError(f"featup-jbu upsamples 2-D features [N, C, h, w], got {tuple(features.shape)}")
        guidance = to_rgb(image.to(features.dtype), self.config.imagenet_norm)
        x = features
        if self.channel_norm is not None and self.config.channel_norm:
            x = self.channel_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        for stage_name in STAGES:
            h, w = x.shape[-2:]
            stage_guidance = F.adaptive_avg_pool2d(guidance, (2 * h, 2 * w))
            x = getattr(self, stage_name)(x, stage_guidance)
        x = x + 0.1 * self.fixup_proj(x)
        return resize_to(x, tuple(image.shape[-2:]))
