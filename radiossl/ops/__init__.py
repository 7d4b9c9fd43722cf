"""Tensor operations shared by the pretext methods (pure functions)."""

from radiossl.ops.roi_align import AlignedPair, overlap_of_boxes, roi_align_overlap

__all__ = ["AlignedPair", "overlap_of_boxes", "roi_align_overlap"]
