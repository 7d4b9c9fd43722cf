"""PyTorch datasets over a preprocessed folder, one per view type.

* :class:`ClusterPairDataset` — two overlapping crops, their boxes, and (optionally) cluster-id
  targets from ``kmeans predict``; used by the patch- and pixel-level clustering methods.
* :class:`PCRLv2ViewDataset` — PCRLv2 global pair plus local crops.
* :class:`GenesisCubeDataset` — ModelsGenesis cubes.

Arrays are memory-mapped (nothing is loaded up front) and every item is a NamedTuple of tensors, so
the default collate function batches them. A ``transform(sample, rng)`` hook receives a NumPy
generator drawn from ``rng_for(seed, epoch, index)``: augmentations are reproducible and differ
between epochs (call :meth:`set_epoch`) but not between worker layouts.

Example::

    from torch.utils.data import DataLoader
    data = ClusterPairDataset("proc", split="train", targets="k10_bilinear")
    batch = next(iter(DataLoader(data, batch_size=4)))
    batch.view1.shape   # (4, C, H, W, D)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from radiossl.data.processed import ProcessedDataset, SampleRecord
from radiossl.data.splits import ratio_subset
from radiossl.errors import DataError
from radiossl.utils.seeding import rng_for

S = TypeVar("S")
_NO_TARGET = torch.zeros(0, dtype=torch.int64)


class PairSample(NamedTuple):
    """Two crops ``(C, H, W, D)``, their boxes ``(6,)``, cluster-id targets ``(H, W, D)`` or ``(0,)``."""

    view1: Tensor
    view2: Tensor
    box1: Tensor
    box2: Tensor
    target1: Tensor
    target2: Tensor
    index: Tensor  # type: ignore[assignment]  # the contract's field name shadows tuple.index


class PCRLv2Sample(NamedTuple):
    """Global crops ``(C, 64, 64, 32)``, local crops ``(L, C, 16, 16, 16)``, boxes ``(6,)``."""

    global1: Tensor
    global2: Tensor
    locals: Tensor
    box1: Tensor
    box2: Tensor
    index: Tensor  # type: ignore[assignment]  # the contract's field name shadows tuple.index


class _ViewDataset(Dataset[S], Generic[S]):
    """Shared machinery: record selection, ratio subsets, epochs and the transform hook."""

    views: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        transform: Callable[[S, np.random.Generator], S] | None = None,
        seed: int = 0,
        ratio: float = 1.0,
    ) -> None:
        self.data = ProcessedDataset.open(root)
        records = [r for r in self.data.records(split) if r.view in self.views]
        if not records:
            raise DataError(
                f"{root}: no {'/'.join(self.views)} samples in split {split!r} "
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


def _box(box: tuple[int, ...]) -> Tensor:
    return torch.tensor(box, dtype=torch.int64)


class ClusterPairDataset(_ViewDataset[PairSample]):
    """Crop pairs of the cluster view (also reads the global pairs of a PCRLv2 folder).

    ``targets`` names the cluster-id targets (a tag registered by ``kmeans predict``); every sample
    must have them. ``ratio`` keeps a seeded, nested subset of the cases.
    """

    views = ("cluster", "pcrlv2")

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        targets: str | None = None,
        transform: Callable[[PairSample, np.random.Generator], PairSample] | None = None,
        seed: int = 0,
        ratio: float = 1.0,
    ) -> None:
        super().__init__(root, split, transform, seed, ratio)
        if targets is not None:
            missing = [r.sample_id for r in self.records if targets not in r.targets]
            if missing:
                available = ", ".join(self.data.target_tags()) or "none"
                raise DataError(
                    f"{root}: {len(missing)} samples (e.g. {missing[0]}) have no targets {targets!r}; "
                    f"available: {available} (run `radiossl kmeans predict`)"
                )
        self.targets = targets

    def __getitem__(self, index: int) -> PairSample:
        record = self.records[index]
        pair = torch.from_numpy(self.data.load_pair(record))
        if self.targets is not None:
            target = torch.from_numpy(self.data.load_targets(record, self.targets))
            target1, target2 = target[0], target[1]
        else:
            target1 = target2 = _NO_TARGET
        sample = PairSample(
            pair[0],
            pair[1],
            _box(record.box1),
            _box(record.box2),
            target1,
            target2,
            torch.tensor(index, dtype=torch.int64),
        )
        return self._finish(sample, index)


class PCRLv2ViewDataset(_ViewDataset[PCRLv2Sample]):
    """Global pairs and local crops of the PCRLv2 view."""

    views = ("pcrlv2",)

    def __getitem__(self, index: int) -> PCRLv2Sample:
        record = self.records[index]
        pair = torch.from_numpy(self.data.load_pair(record))
        local = torch.from_numpy(self.data.load_locals(record))
        sample = PCRLv2Sample(
            pair[0],
            pair[1],
            local,
            _box(record.box1),
            _box(record.box2),
            torch.tensor(index, dtype=torch.int64),
        )
        return self._finish(sample, index)


class GenesisCubeDataset(_ViewDataset[Tensor]):
    """ModelsGenesis cubes: float32 ``(C, 64, 64, 32)`` tensors."""

    views = ("genesis",)

    def __getitem__(self, index: int) -> Tensor:
        cube = torch.from_numpy(self.data.load_cube(self.records[index]))
        return self._finish(cube, index)
