"""Former home of the crop-pair sampler; it now lives in :mod:`radiossl.views.cluster` (kept for imports)."""

from radiossl.views.cluster import (
    CANDIDATES_PER_ROUND,
    PairSamples,
    PairSettings,
    sample_pair_boxes,
    sample_pairs,
    uses_scorer,
)

__all__ = ["CANDIDATES_PER_ROUND", "PairSamples", "PairSettings", "sample_pair_boxes", "sample_pairs", "uses_scorer"]
