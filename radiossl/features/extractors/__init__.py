"""Built-in feature extractors (loaded through the ``radiossl.feature_extractors`` entry points)."""
