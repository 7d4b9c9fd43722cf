"""Former home of the PCRLv2 sampler; it now lives in :mod:`radiossl.views.pcrlv2` (kept for imports)."""

from radiossl.views.pcrlv2 import LocalSettings, PCRLv2Samples, draw_local_boxes, sample_pcrlv2

__all__ = ["LocalSettings", "PCRLv2Samples", "draw_local_boxes", "sample_pcrlv2"]
