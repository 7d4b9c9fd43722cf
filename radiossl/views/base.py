"""The view plugin contract: how one kind of training sample is cut, described and read back.

A view is a :class:`View` subclass registered under the ``radiossl.views`` entry-point group
(``radiossl preprocess --views NAME`` accepts any registered name). It brings

* ``name`` and ``summary`` — what users type and what ``radiossl plugins list`` shows;
* ``options_class`` (optional) — a :class:`radiossl.config.Section` with the view's own settings,
  validated as the top-level preprocess config key of the same name (``pcrlv2: {local_count: 6}``);
* ``defaults`` — the :class:`ViewDefaults` that fill preprocess fields left unset (candidate box
  sizes, border, spacing, samples per volume), plus the hooks :meth:`View.candidate_sizes`,
  :meth:`View.inplane_zoom` and :meth:`View.rejection` for defaults that depend on more than the view;
* :meth:`View.sample` — its sampler: one padded, normalised volume in, the arrays and boxes of its
  samples out (:class:`ViewSamples`); the preprocessing runner writes them and the manifest rows;
* ``dataset_class`` — the torch dataset that reads the samples back (a :class:`ViewDataset`);
* ``crop_pairs`` — whether each sample is two same-sized crops stored as ``(N, 2, C, ...)``, which
  k-means clustering and pair datasets can read whatever the view is called.

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
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from radiossl.config import Section
from radiossl.errors import DataError, PluginError

if TYPE_CHECKING:
    from radiossl.data.preprocess.config import Plan, RejectionConfig
    from radiossl.data.processed import ProcessedDataset, SampleRecord

GROUP = "radiossl.views"
Size3 = tuple[int, int, int]
S = TypeVar("S")


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
    dataset_class: ClassVar[type[ViewDataset[Any]]]

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
        from radiossl.data.preprocess.config import RejectionConfig

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
    def dataset(cls, root: str | Path, split: str | None = "train", **kwargs: Any) -> ViewDataset[Any]:
        """The training dataset of this view over the preprocessed folder ``root``."""
        return cls.dataset_class(root, split, **kwargs)


def get_view(name: str) -> type[View]:
    """The view class registered as ``name`` (PluginError naming the available views otherwise)."""
    from radiossl import registry

    obj = registry.get(GROUP, name)
    if not (isinstance(obj, type) and issubclass(obj, View)):
        raise PluginError(f"views plugin {name!r} is {obj!r}, not a radiossl.views.base.View subclass")
    return obj


def view_names() -> list[str]:
    """Every registered view name, sorted."""
    from radiossl import registry

    return registry.names(GROUP)


def is_crop_pair_view(name: str) -> bool:
    """Whether the registered view ``name`` stores crop pairs (False for unknown or broken views)."""
    try:
        return get_view(name).crop_pairs
    except PluginError:
        return False


class ViewDataset(Dataset[S], Generic[S]):
    """Shared machinery of view datasets: record selection, ratio subsets, epochs and a transform hook.

    Arrays are memory-mapped (nothing is loaded up front). A ``transform(sample, rng)`` receives a
    NumPy generator drawn from ``rng_for(seed, epoch, index)``: augmentations are reproducible and
    differ between epochs (call :meth:`set_epoch`) but not between worker layouts. A subclass reads
    the records whose view it :meth:`accepts` (by default those of ``views``) and implements
    ``__getitem__``.
    """

    views: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        transform: Callable[[S, np.random.Generator], S] | None = None,
        seed: int = 0,
        ratio: float = 1.0,
    ) -> None:
        from radiossl.data.processed import ProcessedDataset
        from radiossl.data.splits import ratio_subset

        self.data: ProcessedDataset = ProcessedDataset.open(root)
        records = [r for r in self.data.records(split) if self.accepts(r.view)]
        if not records:
            raise DataError(
                f"{root}: no {self.described()} samples in split {split!r} "
                f"(this folder holds the {self.data.view!r} view)"
            )
        if ratio < 1.0:
            keep = set(ratio_subset(sorted({r.case_id for r in records}), ratio, seed))
            records = [r for r in records if r.case_id in keep]
        self.records: list[SampleRecord] = records
        self.split = split
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    @classmethod
    def accepts(cls, view: str) -> bool:
        """Whether samples of the view ``view`` are items of this dataset."""
        return view in cls.views

    @classmethod
    def described(cls) -> str:
        """What the dataset reads, for messages."""
        return "/".join(cls.views)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random stream the transform draws from."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def case_id(self, index: int) -> str:
        """The case that item ``index`` was cut from (the ``index`` field of a batch holds these)."""
        return self.records[index].case_id

    def _finish(self, sample: S, index: int) -> S:
        if self.transform is None:
            return sample
        from radiossl.utils.seeding import rng_for

        return self.transform(sample, rng_for(self.seed, self.epoch, index))


def box_tensor(box: tuple[int, ...]) -> torch.Tensor:
    """A box ``(x1, x2, y1, y2, z1, z2)`` as an int64 tensor ``(6,)``."""
    return torch.tensor(box, dtype=torch.int64)
