"""Former home of the ModelsGenesis cube sampler; it now lives in :mod:`radiossl.views.genesis` (kept for imports)."""

from radiossl.views.genesis import GenesisSamples, GenesisSettings, sample_cube_box, sample_cubes

__all__ = ["GenesisSamples", "GenesisSettings", "sample_cube_box", "sample_cubes"]
