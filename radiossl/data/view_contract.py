"""The view plugin contract: how one kind of training sample is cut, described and read back.

A view is a :class:`View` subclass registered under the ``radiossl.views`` entry-point group
(``radiossl preprocess --views NAME`` accepts any registered name). It brings

* ``name`` and ``summary`` — what users type and what ``radiossl plugins list`` shows;
* ``options_class`` (optional) — a :class:`radiossl.config.Section` with the view's own settings,
  validated as the top-level preprocess config key of the same name (``pcrlv2: {local_count: 6}``);
* ``defaults`` — the :class:`ViewDefaults` that fill preprocess fields left unset (candidate box
  sizes, border, spacing, samples per volume), plus the hooks :meth:`View.candidate_sizes`,
  :meth:`View.inplane_zoom` and :meth:`View.rejection` for defaults that depend on more than the view;
* :meth:`View.sample` — its sampler: one padded, normalised volume and the resolved :class:`Plan` in,
  the arrays and boxes of its samples out (:class:`ViewSamples`); the preprocessing runner writes them
  and the manifest rows;
* ``dataset_class`` — the torch dataset that reads the samples back (a
  :class:`radiossl.views.base.ViewDataset` subclass);
* ``crop_pairs`` — whether each sample is two same-sized crops stored as ``(N, 2, C, ...)``, which
  k-means clustering and pair datasets can read whatever the view is called.

The contract lives in ``data/`` because the data layer asks views about themselves: the preprocess
config and runner resolve a view's defaults and run its sampler, and the preprocessed folder's owner
asks whether a view stores crop pairs. They find views through :mod:`radiossl.registry` only, so
``data/`` never imports :mod:`radiossl.views`, which builds on it. Plugins import these names from
:mod:`radiossl.views.base`, beside ``ViewDataset``.

Example (the built-ins are found through the registry like any plugin):
    >>> get_view("genesis").defaults.pairs
    32
    >>> get_view("cluster").crop_pairs, get_view("genesis").crop_pairs
    (True, False)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from radiossl import registry
from radiossl.config import Section
from radiossl.errors import PluginError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch.utils.data import Dataset

    from radiossl.data.normalise import IntensityConfig

GROUP = "radiossl.views"
Size3 = tuple[int, int, int]


class RejectionConfig(Section):
    """Which crops are rejected, by their fraction of foreground voxels.

    A voxel is *foreground* when its normalised value is at least ``threshold`` (in any channel of a
    multi-channel sample) and *background* otherwise. Fractions are normalised by the size of the box
    they score. With ``look_ahead = L > 0`` a voxel scores ``1 - k/L`` where ``k < L`` is the first of
    the next slices (including itself) that is foreground — ModelsGenesis' soft rule with ``L = 2``.
    """

    threshold: float | None = Field(
        default=None,
        description="Normalised foreground threshold; None = -150 HU for CT, 2% of the raw range for MRI.",
    )
    max_background: float | None = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        description="Reject a crop whose background fraction exceeds this (None = off).",
    )
    max_foreground: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Reject a crop whose foreground fraction exceeds this (None = off).",
    )
    look_ahead: int = Field(default=0, ge=0, le=8, description="Soft look-ahead over the next slices (0 = voxel test).")
    rule: Literal["fraction", "thesis"] = Field(
        default="fraction",
        description="fraction = the limits above; thesis = the thesis' bright-voxel rule with thesis_bg_max "
        "(cluster view only; max_background, max_foreground and look_ahead are then not used).",
    )
    thesis_bg_max: float = Field(
        default=0.85,
        ge=0.0,
        description="The thesis' --bg_max (rule: thesis): reject a pair when either crop's bright-voxel score "
        "on its resized window exceeds thesis_bg_max x the voxel count of crop 1's box before resizing.",
    )


@dataclass(frozen=True)
class ViewDefaults:
    """Defaults a view gives the preprocess fields left unset.

    ``candidate_sizes`` None means the crop size itself (no resizing); ``native_spacing`` keeps the
    volumes' own voxel spacing instead of resampling to 1 mm; ``pairs`` is the samples per volume.
    """

    candidate_sizes: tuple[Size3, ...] | None
    border: Size3
    native_spacing: bool
    pairs: int


@dataclass(frozen=True)
class ViewSamples:
    """What a view's sampler cut from one group's volume: arrays to store and the rows' boxes.

    ``crops`` ``(N, ...)`` go to ``arrays/<group>.npy`` in the folder's storage type (float16, or uint8
    = value x 255), the file every manifest row points to. ``boxes`` ``(N, 2, 6)`` are the two boxes
    recorded per row (a single crop records its box twice). ``numbers`` are the samples' numbers in the
    group (sample ids, default ``0..N-1``; a sampler that skips samples keeps the others' numbers).
    ``extra_crops`` (suffix -> ``(N, ...)``) are stored like ``crops`` as ``arrays/<group><suffix>.npy``,
    ``extra_arrays`` exactly as given (labels, integer codes).
    """

    crops: torch.Tensor
    boxes: np.ndarray
    numbers: Sequence[int] | None = None
    extra_crops: Mapping[str, torch.Tensor] = field(default_factory=dict)
    extra_arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def sample_numbers(self) -> list[int]:
        """The samples' numbers (``numbers``, or ``0..N-1``)."""
        return list(self.numbers) if self.numbers is not None else list(range(int(self.crops.shape[0])))


class View(ABC):
    """Base class of view plugins; see the module docstring."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    options_class: ClassVar[type[Section] | None] = None
    defaults: ClassVar[ViewDefaults]
    crop_pairs: ClassVar[bool] = False
    accepts_thesis_rejection: ClassVar[bool] = False
    """Whether the view's sampler implements ``rejection.rule: thesis`` (the thesis' bright-voxel rule)."""
    dataset_class: ClassVar[Callable[..., Dataset[Any]]]
    """The dataset class over a preprocessed folder, ``(root, split, **options)``: a ``ViewDataset`` subclass."""

    def __init__(self, options: Section | None = None) -> None:
        if self.options_class is not None:
            options = options if options is not None else self.options_class()
            if not isinstance(options, self.options_class):
                raise PluginError(
                    f"view {self.name!r}: options are {type(options).__name__}, expected {self.options_class.__name__}"
                )
        self.options = options

    # ---------------------------------------------------------------- defaults (config -> plan)

    def candidate_sizes(self, crop_size: Size3) -> tuple[Size3, ...]:
        """Box sizes drawn before resizing, when the config names none."""
        return self.defaults.candidate_sizes or (crop_size,)

    def inplane_zoom(self, all_ct: bool) -> float:
        """Extra in-plane zoom when the config sets none (``all_ct``: every channel is CT)."""
        return 1.0

    def rejection(self, any_ct: bool) -> RejectionConfig:
        """The crop rejection rule when the config sets none (``any_ct``: some channel is CT)."""
        return RejectionConfig()

    @classmethod
    def small_settings(cls, crop_size: Size3) -> dict[str, Any]:
        """Preprocess settings for small phantom volumes (the demo) with network crops of ``crop_size``."""
        return {"crop_size": crop_size}

    def describe(self) -> dict[str, Any]:
        """JSON-ready resolved view settings for ``preprocess.json`` (its options under its name)."""
        return {self.name: self.options.model_dump(mode="json")} if self.options is not None else {}

    # ---------------------------------------------------------------- preprocessing and training

    @abstractmethod
    def sample(
        self, volume: np.ndarray, group_id: str, plan: Plan, thresholds: Sequence[float], dtype: torch.dtype
    ) -> ViewSamples:
        """Cut ``plan.pairs`` samples from ``volume`` ``(C, X, Y, Z)`` (padded to at least the crop size).

        Sample ``i`` must draw only from ``rng_for(plan.seed, group_id, i)`` so that results do not
        depend on workers or shards. ``thresholds`` are the channels' foreground thresholds of the
        rejection rule ``plan.rejection``; ``dtype`` is the type to cut crops in. Raise
        :class:`radiossl.errors.DataError` (e.g. ``SamplingError``) when the volume yields no sample.
        """

    @classmethod
    def dataset(cls, root: str | Path, split: str | None = "train", **kwargs: Any) -> Dataset[Any]:
        """The training dataset of this view over the preprocessed folder ``root``."""
        return cls.dataset_class(root, split, **kwargs)


@dataclass(frozen=True)
class Plan:
    """A fully resolved preprocessing plan (picklable; sent to worker processes).

    :func:`radiossl.data.preprocess.config.resolve_plan` makes it from a config; a view's sampler
    receives it.
    """

    view: str
    sampler: View
    """The view plugin that cuts the samples (with its options); pickled by reference to its class."""
    dataset: str
    channels: tuple[str, ...]
    modalities: dict[str, str]
    intensity: dict[str, IntensityConfig]
    spacing: tuple[float, float, float] | None
    zoom: tuple[float, float, float]
    pairs: int
    seed: int
    crop_size: Size3
    candidate_sizes: tuple[Size3, ...]
    iou_threshold: float
    border: Size3
    max_attempts: int
    rejection: RejectionConfig
    multichannel: bool
    min_size_fraction: float
    storage: str
    resize_mode: str
    check_labels: bool

    def groups(self, case_id: str) -> list[tuple[str, tuple[str, ...]]]:
        """``(group_id, channels)`` of the samples of a case: one per channel, or one for all."""
        if self.multichannel or len(self.channels) == 1:
            return [(case_id, self.channels)]
        return [(f"{case_id}_{channel}", (channel,)) for channel in self.channels]

    def describe(self) -> dict[str, Any]:
        """JSON-ready resolved values (for ``preprocess.json``)."""
        return {
            "view": self.view,
            "channels": list(self.channels),
            "modalities": self.modalities,
            "intensity": {k: v.model_dump(mode="json") for k, v in self.intensity.items()},
            "spacing": list(self.spacing) if self.spacing is not None else "native",
            "zoom": list(self.zoom),
            "pairs": self.pairs,
            "seed": self.seed,
            "crop_size": list(self.crop_size),
            "candidate_sizes": [list(s) for s in self.candidate_sizes],
            "iou_threshold": self.iou_threshold,
            "border": list(self.border),
            "max_attempts": self.max_attempts,
            "rejection": self.rejection.model_dump(mode="json"),
            "multichannel": self.multichannel,
            "storage": self.storage,
            "resize_mode": self.resize_mode,
            **self.sampler.describe(),
        }


def get_view(name: str) -> type[View]:
    """The view class registered as ``name`` (PluginError naming the available views otherwise)."""
    obj = registry.get(GROUP, name)
    if not (isinstance(obj, type) and issubclass(obj, View)):
        raise PluginError(f"views plugin {name!r} is {obj!r}, not a radiossl.views.base.View subclass")
    return obj


def view_names() -> list[str]:
    """Every registered view name, sorted."""
    return registry.names(GROUP)


def is_crop_pair_view(name: str) -> bool:
    """Whether the registered view ``name`` stores crop pairs (False for unknown or broken views)."""
    try:
        return get_view(name).crop_pairs
    except PluginError:
        return False
