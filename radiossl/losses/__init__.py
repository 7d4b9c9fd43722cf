"""Loss functions shared by the pretext methods (pure functions plus thin ``nn.Module`` wrappers).

The thesis' losses for ``legacy: true`` runs live in :mod:`radiossl.losses.legacy_ce`.
"""

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
    "safe_log",
    "scrambled_reshape",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
]
