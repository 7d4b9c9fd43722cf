"""Full-volume sliding-window inference with Gaussian blending and optional test-time flips.

A volume larger than the network's patch (``roi``) is covered by overlapping windows; each window's
output is weighted by an importance map (a Gaussian centred on the window with
``sigma = sigma_scale * roi``, floored at 1e-3, or constant) and the weighted outputs are averaged
per voxel. Volumes smaller than ``roi`` are zero-padded symmetrically and the padding is cut off
again. Windows start every ``int(roi * (1 - overlap))`` voxels along each axis; the last window of
an axis is shifted back so it ends at the border.

``backend="monai"`` delegates to MONAI's ``sliding_window_inference`` (an optional dependency,
imported lazily), ``"builtin"`` uses the implementation here, and ``"auto"`` (default) picks MONAI
when it is installed. Both follow the same window placement and weighting, so they agree to float
precision (tested).

:class:`InferenceSettings` holds everything that decides how a case is predicted (window, blending,
backend, test-time flips); finetuning's validation and ``evaluate`` build one from the
``sliding_window`` config section and pass it whole to :func:`predict_probabilities`.

Example:
    >>> import torch
    >>> x = torch.rand(1, 1, 20, 20, 12)
    >>> out = sliding_window(x, lambda w: 2 * w, roi=(16, 16, 8), backend="builtin")
    >>> bool(torch.allclose(out, 2 * x, atol=1e-6))
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radiossl.errors import ConfigError

if TYPE_CHECKING:
    from radiossl.downstream.config import SlidingWindowConfig

Predictor = Callable[[torch.Tensor], torch.Tensor]
Backend = Literal["auto", "monai", "builtin"]
BlendMode = Literal["gaussian", "constant"]

MIN_WEIGHT = 1e-3
"""Smallest importance weight, so that window borders still count where nothing else covers them."""


@dataclass(frozen=True)
class InferenceSettings:
    """How :func:`predict_probabilities` predicts a whole case.

    Attributes:
        roi: the window (network input) size per spatial axis.
        overlap: overlap of neighbouring windows, in [0, 1).
        mode: blending weights of a window: ``gaussian`` or ``constant``.
        sigma_scale: Gaussian sigma as a fraction of the window size.
        sw_batch_size: windows per forward pass.
        backend: ``auto`` (MONAI when installed), ``monai`` or ``builtin``.
        tta_flips: average over the 8 flips of the three spatial axes.
    """

    roi: tuple[int, ...]
    overlap: float = 0.5
    mode: BlendMode = "gaussian"
    sigma_scale: float = 0.125
    sw_batch_size: int = 1
    backend: Backend = "auto"
    tta_flips: bool = False

    @classmethod
    def from_config(
        cls, section: SlidingWindowConfig, roi: Sequence[int], tta_flips: bool = False
    ) -> InferenceSettings:
        """The settings of a ``sliding_window`` config section, with its window size resolved to ``roi``."""
        return cls(roi=tuple(int(r) for r in roi), tta_flips=tta_flips, **section.model_dump(exclude={"roi"}))


def monai_available() -> bool:
    """True when MONAI can be imported."""
    try:
        import monai.inferers  # noqa: F401
    except ImportError:
        return False
    return True


def importance_map(
    roi: Sequence[int],
    mode: BlendMode = "gaussian",
    sigma_scale: float = 0.125,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-voxel weight of one window: a centred Gaussian (peak 1, floored at 1e-3) or ones."""
    if mode == "constant":
        return torch.ones(tuple(roi), device=device, dtype=dtype)
    if mode != "gaussian":
        raise ConfigError(f"sliding window mode must be 'gaussian' or 'constant', got {mode!r}")
    weight: torch.Tensor | None = None
    for size in roi:
        coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
        sigma = size * sigma_scale
        profile = torch.exp(-(coords**2) / (2.0 * sigma**2))
        weight = profile if weight is None else weight.unsqueeze(-1) * profile
    assert weight is not None
    floor = max(float(weight.min()), MIN_WEIGHT)
    return weight.clamp(min=floor).to(dtype)


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of the windows along one axis of length ``size`` (``size >= roi``)."""
    if size < roi:
        raise ValueError(f"axis of {size} voxels is shorter than the window ({roi})")
    step = roi if roi == size else max(int(roi * (1.0 - overlap)), 1)
    starts = [0]
    while starts[-1] + roi < size:
        starts.append(min(starts[-1] + step, size - roi))
    return starts


def _symmetric_padding(shape: Sequence[int], roi: Sequence[int]) -> list[int]:
    """``F.pad`` argument (last axis first) padding each axis up to ``roi``."""
    pad: list[int] = []
    for size, window in reversed(list(zip(shape, roi, strict=True))):
        missing = max(window - size, 0)
        pad.extend([missing // 2, missing - missing // 2])
    return pad


def _builtin(
    inputs: torch.Tensor,
    predictor: Predictor,
    roi: tuple[int, ...],
    overlap: float,
    mode: BlendMode,
    sigma_scale: float,
    sw_batch_size: int,
) -> torch.Tensor:
    batch, _, *shape = inputs.shape
    pad = _symmetric_padding(shape, roi)
    padded = F.pad(inputs, pad) if any(pad) else inputs
    full = tuple(padded.shape[2:])
    axes_starts = [window_starts(size, window, overlap) for size, window in zip(full, roi, strict=True)]
    windows = [
        (b, tuple(slice(s, s + w) for s, w in zip(start, roi, strict=True)))
        for b in range(batch)
        for start in itertools.product(*axes_starts)
    ]
    weight = importance_map(roi, mode, sigma_scale, device=inputs.device)
    output: torch.Tensor | None = None
    norm = torch.zeros(full, device=inputs.device, dtype=torch.float32)
    for _, box in windows[: len(windows) // batch]:
        norm[box] += weight
    for first in range(0, len(windows), sw_batch_size):
        group = windows[first : first + sw_batch_size]
        chunk = torch.cat([padded[(slice(b, b + 1), slice(None), *box)] for b, box in group])
        result = predictor(chunk).float()
        if output is None:
            output = torch.zeros((batch, result.shape[1], *full), device=inputs.device, dtype=torch.float32)
        for (b, box), piece in zip(group, result, strict=True):
            index: tuple[Any, ...] = (b, slice(None), *box)
            output[index] += piece * weight
    assert output is not None
    output = output / norm
    crop = tuple(slice(pad[2 * i], full[-1 - i] - pad[2 * i + 1]) for i in range(len(roi)))[::-1]
    return output[(slice(None), slice(None), *crop)]


def _monai(
    inputs: torch.Tensor,
    predictor: Predictor,
    roi: tuple[int, ...],
    overlap: float,
    mode: BlendMode,
    sigma_scale: float,
    sw_batch_size: int,
) -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    out = sliding_window_inference(
        inputs.float(),
        roi_size=roi,
        sw_batch_size=sw_batch_size,
        predictor=lambda window: predictor(window).float(),
        overlap=overlap,
        mode=mode,
        sigma_scale=sigma_scale,
        padding_mode="constant",
        cval=0.0,
    )
    return torch.as_tensor(out).float()


def sliding_window(
    inputs: torch.Tensor,
    predictor: Predictor,
    roi: Sequence[int],
    overlap: float = 0.5,
    mode: BlendMode = "gaussian",
    sigma_scale: float = 0.125,
    sw_batch_size: int = 1,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Blend ``predictor`` outputs over windows of size ``roi`` covering ``inputs`` ``[B, C, *spatial]``.

    Returns float32 ``[B, K, *spatial]`` where ``K`` is the predictor's channel count.
    """
    roi_t = tuple(int(r) for r in roi)
    if inputs.dim() != len(roi_t) + 2:
        raise ValueError(f"inputs of shape {tuple(inputs.shape)} do not match a {len(roi_t)}-D window")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"sliding window overlap must be in [0, 1), got {overlap}")
    if sw_batch_size < 1:
        raise ConfigError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
    if backend not in ("auto", "monai", "builtin"):
        raise ConfigError(f"sliding window backend must be auto, monai or builtin, got {backend!r}")
    if backend == "monai" and not monai_available():
        raise ConfigError("sliding_window.backend is 'monai' but MONAI is not installed (pip install monai)")
    use_monai = backend == "monai" or (backend == "auto" and monai_available())
    run = _monai if use_monai else _builtin
    return run(inputs, predictor, roi_t, overlap, mode, sigma_scale, sw_batch_size)


def flip_sets(spatial_dims: int, enabled: bool) -> list[tuple[int, ...]]:
    """Tensor axes to flip for test-time augmentation: ``[()]`` or every subset of the spatial axes."""
    axes = tuple(range(2, 2 + spatial_dims))
    if not enabled:
        return [()]
    return [combo for n in range(len(axes) + 1) for combo in itertools.combinations(axes, n)]


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    settings: InferenceSettings,
    *,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Sigmoid probabilities ``[R, X, Y, Z]`` (float32, on the CPU) of one case ``[C, X, Y, Z]``.

    Logits are blended over windows as ``settings`` say, turned into probabilities, and with
    ``settings.tta_flips`` averaged over the 8 flip combinations of the three spatial axes. The model
    is put in eval mode for the call and its previous mode is restored.
    """
    target = torch.device(device) if device is not None else next(model.parameters()).device
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    x = x.to(target, torch.float32).unsqueeze(0)
    was_training = model.training
    model.eval()

    def predictor(window: torch.Tensor) -> torch.Tensor:
        if autocast_dtype is not None:
            with torch.autocast(device_type=target.type, dtype=autocast_dtype):
                return model(window).float()
        return model(window).float()

    try:
        total: torch.Tensor | None = None
        combos = flip_sets(x.dim() - 2, settings.tta_flips)
        for axes in combos:
            flipped = torch.flip(x, axes) if axes else x
            logits = sliding_window(
                flipped,
                predictor,
                settings.roi,
                settings.overlap,
                settings.mode,
                settings.sigma_scale,
                settings.sw_batch_size,
                settings.backend,
            )
            probs = torch.sigmoid(logits)
            probs = torch.flip(probs, axes) if axes else probs
            total = probs if total is None else total + probs
        assert total is not None
        return (total / len(combos))[0].cpu()
    finally:
        model.train(was_training)


def threshold(probabilities: torch.Tensor | np.ndarray, level: float = 0.5) -> np.ndarray:
    """Boolean region masks: probability > ``level``."""
    return np.asarray(torch.as_tensor(probabilities).cpu().numpy() > level)
