"""``filterbank``: weight-free multi-scale 3-D image features (the default extractor).

For each input channel and each scale σ (voxels) the volume is smoothed with a separable 3-D
Gaussian, and from the smoothed volume ``S`` the extractor takes:

* ``smoothed``  ``S`` itself — local mean intensity (tissue brightness, denoised);
* ``gradient``  ``σ·|∇S|`` — edge strength (tissue boundaries);
* ``log``       ``σ²·ΔS`` (Laplacian of Gaussian) — blob/valley contrast: negative in bright blobs
  and ridges narrower than ~σ, positive in dark ones;
* ``hessian``   the three eigenvalues of ``σ²·∇²S``, ascending — local shape: one strongly negative
  eigenvalue for bright sheets, two for bright tubes (vessels), three for bright blobs.

plus the raw ``intensity`` once. The σ and σ² factors (scale normalisation) make responses at
different scales comparable. Derivatives are central finite differences of the smoothed volume.
The output has the input's resolution, so ``bilinear`` upsampling is the identity and ``jbu`` acts
as an edge-preserving (joint bilateral) smoothing of the features.

For clustering, ``kmeans`` z-scores each channel over its fit sample and then multiplies it by
:meth:`FilterBankExtractor.channel_weights`: the kind's weight (default 1 for intensities, 0.3 for
derivative responses) times ``σ^-scale_power`` (default 1/σ). With equal weights the 15 derivative
channels dominate the distance and clusters follow edges and blobs rather than tissue (see
``benchmarks/kmeans_nmi.py``); ``kind_weights`` and ``scale_power`` move that balance.

Example:
    >>> import torch
    >>> fb = FilterBankExtractor({"sigmas": [1.0, 2.0]})
    >>> fb.feature_dim(1), fb.extract(torch.rand(2, 1, 16, 16, 8)).shape
    (13, torch.Size([2, 13, 16, 16, 8]))
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from radiossl.features.base import ExtractorConfig, FeatureExtractor

FeatureKind = Literal["intensity", "smoothed", "gradient", "log", "hessian"]
ALL_KINDS: tuple[FeatureKind, ...] = ("intensity", "smoothed", "gradient", "log", "hessian")
_PER_SCALE = {"smoothed": 1, "gradient": 1, "log": 1, "hessian": 3}
DEFAULT_WEIGHTS: dict[FeatureKind, float] = {
    "intensity": 1.0,
    "smoothed": 1.0,
    "gradient": 0.3,
    "log": 0.3,
    "hessian": 0.3,
}


class FilterBankConfig(ExtractorConfig):
    """Options of the ``filterbank`` extractor."""

    sigmas: tuple[float, ...] = Field((1.0, 2.0, 4.0), description="Gaussian scales in voxels.")
    features: tuple[FeatureKind, ...] = Field(ALL_KINDS, description="Which responses to compute.")
    truncate: float = Field(3.0, gt=0.0, description="Gaussian kernels are cut at truncate·σ.")
    kind_weights: dict[FeatureKind, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description="K-means weight of each response kind (after standardisation); missing kinds weigh 1.",
    )
    scale_power: float = Field(
        1.0, ge=0.0, description="Responses at scale σ are further weighted by σ^-scale_power (0 = equal)."
    )

    @field_validator("sigmas")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(s <= 0 for s in value):
            raise ValueError("sigmas must be a non-empty list of positive numbers")
        return value

    @field_validator("features")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("features must be a non-empty list without repeats")
        return value


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` (float32, odd length)."""
    radius = max(1, math.ceil(truncate * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).float()


def _conv_axis(volume: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Correlate ``[N, 1, X, Y, Z]`` with a 1-D kernel along spatial ``axis`` (0..2), replicate padding."""
    k = kernel.numel()
    r = k // 2
    shape = [1, 1, 1, 1, 1]
    shape[2 + axis] = k
    pad = [0, 0, 0, 0, 0, 0]
    pad[2 * (2 - axis)] = r
    pad[2 * (2 - axis) + 1] = r
    padded = F.pad(volume, pad, mode="replicate")
    return F.conv3d(padded, kernel.to(volume).view(shape))


def gaussian_smooth(volume: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Separable 3-D Gaussian smoothing of ``[N, 1, X, Y, Z]``."""
    kernel = gaussian_kernel(sigma, truncate)
    for axis in range(3):
        volume = _conv_axis(volume, kernel, axis)
    return volume


def _pad_axis(volume: torch.Tensor, axis: int) -> torch.Tensor:
    pad = [0, 0, 0, 0, 0, 0]
    pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = 1
    return F.pad(volume, pad, mode="replicate")


def central_difference(volume: torch.Tensor, axis: int) -> torch.Tensor:
    """``(v[i+1] - v[i-1]) / 2`` along spatial ``axis`` of ``[N, 1, X, Y, Z]`` (replicated borders)."""
    padded = _pad_axis(volume, axis)
    n = volume.shape[2 + axis]
    return 0.5 * (padded.narrow(2 + axis, 2, n) - padded.narrow(2 + axis, 0, n))


def second_difference(volume: torch.Tensor, axis: int) -> torch.Tensor:
    """``v[i+1] - 2 v[i] + v[i-1]`` along spatial ``axis`` (replicated borders)."""
    padded = _pad_axis(volume, axis)
    n = volume.shape[2 + axis]
    return padded.narrow(2 + axis, 2, n) - 2.0 * volume + padded.narrow(2 + axis, 0, n)


def derivatives(smoothed: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """First derivatives ``[dx, dy, dz]`` and the symmetric Hessian ``h[i][j]`` (finite differences)."""
    grad = [central_difference(smoothed, a) for a in range(3)]
    hess: list[list[torch.Tensor]] = [[smoothed] * 3 for _ in range(3)]
    for i in range(3):
        hess[i][i] = second_difference(smoothed, i)
        for j in range(i + 1, 3):
            hess[i][j] = hess[j][i] = central_difference(grad[i], j)
    return grad, hess


def symmetric_eigvals3(
    a11: torch.Tensor,
    a22: torch.Tensor,
    a33: torch.Tensor,
    a12: torch.Tensor,
    a13: torch.Tensor,
    a23: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) of symmetric 3x3 matrices given element-wise, in closed form.

    Uses the trigonometric solution of the characteristic cubic; exact for diagonal matrices.
    """
    q = (a11 + a22 + a33) / 3.0
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    off = a12 * a12 + a13 * a13 + a23 * a23
    p = torch.sqrt(((b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * off) / 6.0).clamp_min(0.0))
    det = b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13) + a13 * (a12 * a23 - b22 * a13)
    tiny = p <= 1e-12
    p_safe = torch.where(tiny, torch.ones_like(p), p)
    r = (det / (2.0 * p_safe**3)).clamp(-1.0, 1.0)
    phi = torch.acos(r) / 3.0
    largest = q + 2.0 * p * torch.cos(phi)
    smallest = q + 2.0 * p * torch.cos(phi + 2.0 * math.pi / 3.0)
    middle = 3.0 * q - largest - smallest
    largest = torch.where(tiny, q, largest)
    smallest = torch.where(tiny, q, smallest)
    middle = torch.where(tiny, q, middle)
    return smallest, middle, largest


class FilterBankExtractor(FeatureExtractor):
    """Multi-scale Gaussian filter bank computed natively in 3-D (see the module docstring)."""

    name: ClassVar[str] = "filterbank"
    config_class: ClassVar[type[ExtractorConfig]] = FilterBankConfig
    spatial_dims: ClassVar[int] = 3
    standardize_default: ClassVar[bool] = True
    config: FilterBankConfig

    def feature_dim(self, in_channels: int) -> int:
        kinds = self.config.features
        per_channel = int("intensity" in kinds) + len(self.config.sigmas) * sum(
            _PER_SCALE[k] for k in kinds if k in _PER_SCALE
        )
        return in_channels * per_channel

    def channel_names(self, in_channels: int) -> list[str]:
        """Human-readable name of every output channel, in order."""
        names: list[str] = []
        kinds = self.config.features
        for c in range(in_channels):
            if "intensity" in kinds:
                names.append(f"c{c}:intensity")
            for sigma in self.config.sigmas:
                for kind in ("smoothed", "gradient", "log"):
                    if kind in kinds:
                        names.append(f"c{c}:{kind}@{sigma:g}")
                if "hessian" in kinds:
                    names.extend(f"c{c}:hessian{i}@{sigma:g}" for i in (1, 2, 3))
        return names

    def channel_weights(self, in_channels: int) -> list[float]:
        """Kind weight x σ^-scale_power for every channel, in :meth:`channel_names` order."""
        weights = []
        for name in self.channel_names(in_channels):
            kind, _, sigma = name.split(":", 1)[1].partition("@")
            kind = kind.rstrip("123") if kind.startswith("hessian") else kind
            weight = self.config.kind_weights.get(kind, 1.0)  # type: ignore[call-overload]
            if sigma:
                weight *= float(sigma) ** -self.config.scale_power
            weights.append(float(weight))
        return weights

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 5:
            raise ValueError(f"filterbank expects [B, C, X, Y, Z], got shape {tuple(images.shape)}")
        b, c = images.shape[:2]
        volume = images.reshape(b * c, 1, *images.shape[2:]).float()
        kinds = self.config.features
        out: list[torch.Tensor] = []
        if "intensity" in kinds:
            out.append(volume)
        for sigma in self.config.sigmas:
            smoothed = gaussian_smooth(volume, sigma, self.config.truncate)
            if "smoothed" in kinds:
                out.append(smoothed)
            if any(k in kinds for k in ("gradient", "log", "hessian")):
                grad, hess = derivatives(smoothed)
                if "gradient" in kinds:
                    out.append(sigma * torch.sqrt(grad[0] ** 2 + grad[1] ** 2 + grad[2] ** 2))
                if "log" in kinds:
                    out.append(sigma**2 * (hess[0][0] + hess[1][1] + hess[2][2]))
                if "hessian" in kinds:
                    eig = symmetric_eigvals3(hess[0][0], hess[1][1], hess[2][2], hess[0][1], hess[0][2], hess[1][2])
                    out.extend(sigma**2 * e for e in eig)
        features = torch.cat(out, dim=1)  # [B*C, F, X, Y, Z]
        return features.reshape(b, c * features.shape[1], *images.shape[2:])
