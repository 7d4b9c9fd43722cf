"""``ProcessedDataset`` and the torch view datasets over preprocessed phantom folders."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.data.processed import ProcessedDataset, read_preprocess_record
from radiossl.errors import DataError
from radiossl.views.cluster import ClusterPairDataset, PairSample
from radiossl.views.genesis import GenesisCubeDataset
from radiossl.views.pcrlv2 import PCRLv2Sample, PCRLv2ViewDataset


@pytest.fixture(scope="module")
def folders(
    small_config: Callable[..., PreprocessConfig],
    phantom_root: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """One preprocessed folder per view: cluster (BraTS), pcrlv2 (LiTS), genesis (LUNA)."""
    base = tmp_path_factory.mktemp("views")
    runs = {
        "cluster": small_config(phantom_root("brats"), base / "cluster"),
        "pcrlv2": small_config(phantom_root("lits"), base / "pcrlv2", dataset="lits17", view="pcrlv2"),
        "genesis": small_config(
            phantom_root("luna"),
            base / "genesis",
            dataset="luna16",
            view="genesis",
            rejection={"max_background": None, "max_foreground": 0.6},
        ),
    }
    for config in runs.values():
        assert preprocess(config).failed == 0
    return {view: config.out for view, config in runs.items() if config.out is not None}


def test_open_and_records(folders: dict[str, Path], tmp_path: Path) -> None:
    data = ProcessedDataset.open(folders["cluster"])
    assert data.view == "cluster" and data.params["dataset"] == "brats18"
    everything = data.records(split=None)
    assert len(everything) == 36
    assert {r.split for r in everything} == {"train", "val", "test"}
    train = data.records("train", view="cluster")
    assert train and all(r.split == "train" for r in train)
    assert data.records("train", view="genesis") == []
    record = train[0]
    pair = data.load_pair(record)
    assert pair.shape == (2, 1, 16, 16, 8) and pair.dtype == np.float32
    with pytest.raises(DataError, match="use load_pair"):
        data.load_cube(record)
    with pytest.raises(DataError, match="no local crops"):
        data.load_locals(record)
    with pytest.raises(DataError, match="not a preprocessed folder"):
        ProcessedDataset.open(tmp_path)


def test_missing_manifest_and_missing_arrays(folders: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(folders["cluster"], copy)
    data = ProcessedDataset.open(copy)
    record = data.records(split=None)[0]
    (copy / record.file).unlink()
    with pytest.raises(DataError, match="is missing"):
        data.load_pair(record)
    (copy / "manifest.csv").unlink()
    with pytest.raises(DataError, match="--merge-only"):
        ProcessedDataset.open(copy)


def test_cluster_pair_dataset_items_and_batches(folders: dict[str, Path]) -> None:
    dataset = ClusterPairDataset(folders["cluster"], split="train")
    sample = dataset[0]
    assert isinstance(sample, PairSample)
    assert sample.view1.shape == (1, 16, 16, 8) and sample.view1.dtype == torch.float32
    assert sample.box1.shape == (6,) and sample.box1.dtype == torch.int64
    assert sample.target1.shape == (0,) and sample.index.item() == 0
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert isinstance(batch, PairSample)
    assert batch.view2.shape == (4, 1, 16, 16, 8) and batch.box2.shape == (4, 6)


def test_targets_registration_and_loading(
    small_config: Callable[..., PreprocessConfig], folders: dict[str, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "proc"
    shutil.copytree(folders["cluster"], copy)
    data = ProcessedDataset.open(copy)
    files = {}
    for file in sorted({r.file for r in data.records(split="train")}):
        n = np.load(copy / file, mmap_mode="r").shape[0]
        target = file.replace(".npy", ".targets-k3.npy")
        np.save(copy / target, np.full((n, 2, 16, 16, 8), 2, np.uint8))
        files[file] = target
    data.register_targets("k3", files, {"k": 3, "extractor": "test"})
    assert data.target_tags() == ["k3"]
    reopened = ProcessedDataset.open(copy)
    record = reopened.records("train")[0]
    targets = reopened.load_targets(record, "k3")
    assert targets.shape == (2, 16, 16, 8) and targets.dtype == np.int64 and (targets == 2).all()
    item = ClusterPairDataset(copy, targets="k3")[1]
    assert item.target1.shape == (16, 16, 8) and item.target2.dtype == torch.int64
    with pytest.raises(DataError, match="have no targets 'k3'"):
        ClusterPairDataset(copy, split="val", targets="k3")
    # a later re-merge of the folder (e.g. resumed preprocessing) keeps the target column
    config = small_config(Path(reopened.params["raw_root"]), copy)
    preprocess(config, merge_only=True)
    assert ProcessedDataset.open(copy).records("train")[0].targets == {"k3": files[record.file]}


def test_registrations_through_two_open_datasets_both_survive(folders: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "proc"
    shutil.copytree(folders["cluster"], copy)
    first, second = ProcessedDataset.open(copy), ProcessedDataset.open(copy)  # e.g. two kmeans predict runs
    files = sorted({r.file for r in first.records(split=None)})
    first.register_targets("k3", {f: f.replace(".npy", ".targets-k3.npy") for f in files}, {"k": 3})
    second.register_targets("k5", {f: f.replace(".npy", ".targets-k5.npy") for f in files}, {"k": 5})
    reopened = ProcessedDataset.open(copy)
    assert reopened.target_tags() == ["k3", "k5"] == second.target_tags()
    record = reopened.records(split=None)[0]
    assert record.targets == {"k3": record.file.replace(".npy", ".targets-k3.npy"), "k5": record.targets["k5"]}
    assert not list(copy.glob(".tmp-*"))


def test_the_record_has_typed_accessors(folders: dict[str, Path]) -> None:
    record = read_preprocess_record(folders["cluster"])
    assert (record.dataset, record.view, record.crop_size) == ("brats18", "cluster", (16, 16, 8))
    assert record.spacing == (1.0, 1.0, 1.0)
    assert record.channels == ("t1", "t2", "flair", "t1ce") and record.modality == "mri"
    assert record.split_counts == {"train": 1, "val": 1, "test": 1} and record.splits_file.is_file()
    assert read_preprocess_record(folders["genesis"]).spacing is None  # native spacing


def test_every_reader_of_preprocess_json_has_one_error_policy(folders: dict[str, Path], tmp_path: Path) -> None:
    """Missing, unreadable and foreign records each give one line naming the file."""
    with pytest.raises(DataError, match=r"not a preprocessed folder \(no preprocess\.json\)"):
        read_preprocess_record(tmp_path)
    (tmp_path / "preprocess.json").write_text("{not json")
    with pytest.raises(DataError, match=r"preprocess\.json: cannot read") as err:
        ProcessedDataset.open(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "preprocess.json").write_text('{"view": "cluster"}')  # hand-made, no format
    with pytest.raises(DataError, match=r"preprocess\.json: not a radiossl preprocessing record"):
        read_preprocess_record(tmp_path)


def test_transform_hook_is_seeded_by_epoch_and_index(folders: dict[str, Path]) -> None:
    def jitter(sample: PairSample, rng: np.random.Generator) -> PairSample:
        return sample._replace(view1=sample.view1 + float(rng.random()))

    dataset = ClusterPairDataset(folders["cluster"], transform=jitter, seed=3)
    plain = ClusterPairDataset(folders["cluster"])
    first = dataset[2].view1 - plain[2].view1
    assert torch.equal(dataset[2].view1 - plain[2].view1, first)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[2].view1 - plain[2].view1, first)


def test_ratio_keeps_whole_cases(folders: dict[str, Path]) -> None:
    full = ClusterPairDataset(folders["cluster"], split=None)
    half = ClusterPairDataset(folders["cluster"], split=None, ratio=0.5)
    kept = {r.case_id for r in half.records}
    assert len(kept) == 1
    assert len(half) == sum(1 for r in full.records if r.case_id in kept)


def test_pcrlv2_dataset(folders: dict[str, Path]) -> None:
    dataset = PCRLv2ViewDataset(folders["pcrlv2"], split="train")
    sample = dataset[0]
    assert isinstance(sample, PCRLv2Sample)
    assert sample.global1.shape == (1, 16, 16, 8) and sample.locals.shape == (6, 1, 16, 16, 16)
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch.locals.shape == (2, 6, 1, 16, 16, 16)
    pairs = ClusterPairDataset(folders["pcrlv2"], split="train")  # PCRLv2 globals are pairs too
    assert torch.equal(pairs[0].view1, sample.global1)


def test_genesis_dataset_and_wrong_views(folders: dict[str, Path]) -> None:
    cubes = GenesisCubeDataset(folders["genesis"], split="train")
    assert cubes[0].shape == (1, 16, 16, 8) and cubes[0].dtype == torch.float32
    assert next(iter(DataLoader(cubes, batch_size=3))).shape == (3, 1, 16, 16, 8)
    with pytest.raises(DataError, match="holds the 'genesis' view"):
        ClusterPairDataset(folders["genesis"])
    with pytest.raises(DataError, match="no pcrlv2 samples"):
        PCRLv2ViewDataset(folders["cluster"])


def _legacy_targets(copy: Path, tag: str, k: int) -> dict[str, str]:
    """Targets in the layout of releases before target sets had their own folder (see radiossl.data.targets)."""
    import csv
    import json

    files = {}
    for file in sorted({r.file for r in ProcessedDataset.open(copy).records(split=None)}):
        n = np.load(copy / file, mmap_mode="r").shape[0]
        files[file] = file.replace(".npy", f".targets-{tag}.npy")
        np.save(copy / files[file], np.full((n, 2, 16, 16, 8), k - 1, np.uint8))
    (copy / "targets").mkdir()
    (copy / "targets" / f"{tag}.json").write_text(json.dumps({"format": "radiossl-targets", "k": k, "files": files}))
    with open(copy / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(copy / "manifest.csv", "w", newline="") as handle:  # the old release's extra column
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], f"target_{tag}"], lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, f"target_{tag}": files[row["file"]]} for row in rows)
    return files


def test_folders_with_targets_of_the_old_layout_still_open(
    small_config: Callable[..., PreprocessConfig], folders: dict[str, Path], tmp_path: Path
) -> None:
    from radiossl.pretext.pixel_cluster import resolve_target_tag

    copy = tmp_path / "proc"
    shutil.copytree(folders["cluster"], copy)
    files = _legacy_targets(copy, "k3", 3)
    data = ProcessedDataset.open(copy)
    assert data.target_tags() == ["k3"] and data.target_set("k3").legacy and data.target_set("k3").k == 3
    record = data.records("train")[0]
    assert record.targets == {"k3": files[record.file]}
    assert (data.load_targets(record, "k3") == 2).all()
    assert ClusterPairDataset(copy, targets="k3")[0].target1.shape == (16, 16, 8)
    assert resolve_target_tag(copy, None, 3) == "k3"
    # a re-merge by this release drops the manifest column; the old description still joins the targets
    preprocess(small_config(Path(data.params["raw_root"]), copy), merge_only=True)
    assert "target_k3" not in (copy / "manifest.csv").read_text().splitlines()[0]
    assert ProcessedDataset.open(copy).records("train")[0].targets == {"k3": files[record.file]}
