"""Intensity normalisation: CT windows, MRI min-max, percentile clipping, z-scores.

Every mode is "clip to ``[low, high]``, then ``(v - shift) / scale``", so a fitted
:class:`IntensityMap` can also map a single raw value (e.g. −150 HU) into normalised units:

* ``ct-window`` — fixed window (default [−1000, 1000] HU) to [0, 1];
* ``minmax`` — per-volume minimum/maximum to [0, 1] (the thesis' MRI rule; 0 for a constant volume);
* ``percentile`` — clip to per-volume percentiles (default 0.5/99.5) and map them to [0, 1];
* ``zscore`` — per-volume mean 0 / standard deviation 1 (no clipping);
* ``percentile-zscore`` — clip to the percentiles, then z-score.

``nonzero=True`` computes the statistics over non-zero voxels only (skull-stripped MRI); every voxel
is still mapped with the same formula.

Example:
    >>> import numpy as np
    >>> normalise(np.array([-2000.0, -1000.0, 0.0, 1000.0]), IntensityConfig(mode="ct-window")).tolist()
    [0.0, 0.0, 0.5, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from radiossl.config import Section

IntensityMode = Literal["ct-window", "minmax", "percentile", "zscore", "percentile-zscore"]

#: Raw CT value that separates air/lung (below) from soft tissue (the ModelsGenesis −150 HU rule).
CT_TISSUE_HU = -150.0
#: MRI "background" = below this fraction of the raw intensity range above the volume's minimum.
MRI_BACKGROUND_FRACTION = 0.02


class IntensityConfig(Section):
    """How raw intensities are mapped (see the module docstring for the modes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    mode: IntensityMode = Field(
        default="ct-window", description="ct-window, minmax, percentile, zscore, percentile-zscore."
    )
    window: tuple[float, float] = Field(default=(-1000.0, 1000.0), description="CT window [low, high] (ct-window).")
    percentiles: tuple[float, float] = Field(
        default=(0.5, 99.5), description="Lower/upper percentiles (percentile and percentile-zscore)."
    )
    nonzero: bool = Field(default=False, description="Compute statistics over non-zero voxels only.")

    @model_validator(mode="after")
    def _check_ranges(self) -> IntensityConfig:
        if self.window[0] >= self.window[1]:
            raise ValueError(f"window low must be below high, got {self.window}")
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        return self

    @property
    def bounded(self) -> bool:
        """True when the output lies in [0, 1] (modes ct-window, minmax, percentile)."""
        return self.mode in ("ct-window", "minmax", "percentile")


@dataclass(frozen=True)
class IntensityMap:
    """A fitted normalisation: ``(clip(v, low, high) - shift) / scale``."""

    low: float
    high: float
    shift: float
    scale: float

    def __call__(self, array: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Normalise ``array`` into a new float32 array, or into ``out`` (same shape, float32)."""
        out = np.clip(np.asarray(array, dtype=np.float32), self.low, self.high, out=out)
        out -= np.float32(self.shift)
        out *= np.float32(1.0 / self.scale)
        return out

    def value(self, raw: float) -> float:
        """The normalised value of one raw intensity."""
        return (min(max(raw, self.low), self.high) - self.shift) / self.scale


def default_intensity(modality: str) -> IntensityConfig:
    """The default normalisation of a modality: CT window [−1000, 1000] HU, MRI per-volume min-max."""
    return IntensityConfig(mode="ct-window") if modality == "ct" else IntensityConfig(mode="minmax")


def fit_intensity(array: np.ndarray, config: IntensityConfig) -> IntensityMap:
    """Fit the normalisation of ``config`` to ``array`` (statistics of this volume)."""
    inf = float("inf")
    if config.mode == "ct-window":
        low, high = config.window
        return IntensityMap(low, high, low, high - low)
    values = array[array != 0] if config.nonzero else array
    if values.size == 0:
        values = np.zeros(1, dtype=np.float32)
    if config.mode == "minmax":
        low, high = float(values.min()), float(values.max())
        return IntensityMap(-inf, inf, low, _positive(high - low))
    low, high = (float(v) for v in np.percentile(values, config.percentiles))
    if config.mode == "percentile":
        return IntensityMap(low, high, low, _positive(high - low))
    if config.mode == "percentile-zscore":
        values = np.clip(values, low, high)
    else:
        low, high = -inf, inf
    mean, std = float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))
    return IntensityMap(low, high, mean, _positive(std))


def normalise(array: np.ndarray, config: IntensityConfig) -> np.ndarray:
    """``array`` normalised as ``config`` says, as float32."""
    return fit_intensity(array, config)(array)


def default_threshold(modality: str, intensity: IntensityMap, raw_min: float, raw_max: float) -> float:
    """Normalised value that separates background (below) from foreground.

    CT: −150 HU (air and lung are background). MRI: 2 % of the volume's raw intensity range above its
    minimum (the zero background of skull-stripped scans is background).
    """
    if modality == "ct":
        return intensity.value(CT_TISSUE_HU)
    if raw_max <= raw_min:  # a constant (e.g. empty) volume has no foreground at all
        return float("inf")
    return intensity.value(raw_min + MRI_BACKGROUND_FRACTION * (raw_max - raw_min))


def _positive(value: float) -> float:
    return value if value > 1e-12 else 1.0
