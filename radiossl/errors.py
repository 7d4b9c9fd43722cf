"""Error types raised by radiossl.

Every error that a user can cause (a bad file, a bad config, a missing plugin) is a
:class:`RadiosslError`; the CLI turns these into a one-line message and an exit code
instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class RadiosslError(Exception):
    """Base class of all errors radiossl reports to users."""


class ConfigError(RadiosslError):
    """A configuration file or override is invalid (names the field path)."""


class PluginError(RadiosslError):
    """A plugin is unknown, ambiguous, or failed to load."""


class DataError(RadiosslError):
    """A dataset, preprocessed folder or split file is missing or malformed."""


class ImageReadError(DataError):
    """An image file cannot be read or is not a valid 3-D volume.

    The message always starts with the file path, e.g.
    ``/data/case1.nii.gz: contains NaN voxels``.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(RadiosslError):
    """A checkpoint cannot be read or does not fit the model."""


class TrainingError(RadiosslError):
    """Training had to stop (e.g. a non-finite loss)."""
