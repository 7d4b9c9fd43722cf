"""Per-voxel features for pixel-level clustering: extractors, upsamplers and the pipeline joining them.

Built-in extractors (entry-point group ``radiossl.feature_extractors``): ``filterbank`` (weight-free,
3-D, default), ``dino-vits16`` / ``dino-vits8`` / ``dino-vitb16`` (2-D, need the DINO weights file),
``encoder`` (a stage of a radiossl-pretrained 3-D encoder, any backbone). Upsamplers
(``radiossl.upsamplers``): ``bilinear``, ``jbu`` (weight-free joint bilateral), ``featup-jbu`` (FeatUp's
learned JBU stack, needs its file).

Example:
    >>> import torch
    >>> from radiossl.features import build_pipeline
    >>> build_pipeline("filterbank", "bilinear")(torch.rand(1, 1, 8, 8, 8)).shape
    torch.Size([1, 19, 8, 8, 8])
"""

from radiossl.features.base import (
    ExtractorConfig,
    FeatureExtractor,
    FeaturePipeline,
    Upsampler,
    UpsamplerConfig,
    build_extractor,
    build_pipeline,
    build_upsampler,
)

__all__ = [
    "ExtractorConfig",
    "FeatureExtractor",
    "FeaturePipeline",
    "Upsampler",
    "UpsamplerConfig",
    "build_extractor",
    "build_pipeline",
    "build_upsampler",
]
