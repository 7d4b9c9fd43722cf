"""Moved to :mod:`radiossl.runtime.precision` (every stage uses it, not only training); kept so older imports work."""

from radiossl.runtime.precision import (
    AMP_CHOICES,
    AMP_DTYPES,
    AmpChoice,
    amp_dtype,
    autocast_context,
    make_grad_scaler,
    resolve_amp,
)

__all__ = [
    "AMP_CHOICES",
    "AMP_DTYPES",
    "AmpChoice",
    "amp_dtype",
    "autocast_context",
    "make_grad_scaler",
    "resolve_amp",
]
