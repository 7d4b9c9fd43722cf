"""Loss functions shared by the pretext methods (pure functions plus thin ``nn.Module`` wrappers)."""

from radiossl.losses.legacy_ce import legacy_ce, legacy_swav
from radiossl.losses.sinkhorn import scrambled_reshape, sinkhorn_knopp
from radiossl.losses.swapped_ce import (
    SoftCrossEntropy,
    SwappedPredictionLoss,
    cross_entropy_soft,
    safe_log,
    swapped_prediction_loss,
)

__all__ = [
    "SoftCrossEntropy",
    "SwappedPredictionLoss",
    "cross_entropy_soft",
    "legacy_ce",
    "legacy_swav",
    "safe_log",
    "scrambled_reshape",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
]
