"""The view plugin API: the contract a view implements and the base class of its training dataset.

The contract — :class:`View`, :class:`ViewDefaults`, :class:`ViewSamples`, :func:`get_view`,
:func:`view_names`, :func:`is_crop_pair_view` — is defined in :mod:`radiossl.data.view_contract`,
where the preprocessing stage finds it without importing this package (the data layer sits below the
views); it is described there and re-exported here, so a plugin imports everything from this module.
:class:`ViewDataset` is the shared machinery of the datasets that read a view's samples back.

Example:
    >>> from radiossl.data import view_contract
    >>> View is view_contract.View
    True
    >>> get_view("cluster").dataset_class.__name__
    'ClusterPairDataset'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from radiossl.data.processed import ProcessedDataset, SampleRecord
from radiossl.data.splits import ratio_subset
from radiossl.data.view_contract import (
    GROUP,
    View,
    ViewDefaults,
    ViewSamples,
    get_view,
    is_crop_pair_view,
    view_names,
)
from radiossl.errors import DataError
from radiossl.utils.seeding import rng_for

__all__ = [
    "GROUP",
    "View",
    "ViewDataset",
    "ViewDefaults",
    "ViewSamples",
    "box_tensor",
    "get_view",
    "is_crop_pair_view",
    "view_names",
]

S = TypeVar("S")


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
        return self.transform(sample, rng_for(self.seed, self.epoch, index))


def box_tensor(box: tuple[int, ...]) -> torch.Tensor:
    """A box ``(x1, x2, y1, y2, z1, z2)`` as an int64 tensor ``(6,)``."""
    return torch.tensor(box, dtype=torch.int64)
