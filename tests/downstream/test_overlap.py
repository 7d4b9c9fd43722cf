"""``radiossl check-overlap``: downstream validation/test cases found in the pretraining data by id and by content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.phantoms import synthesize
from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.data.splits import Splits, save_splits
from radiossl.data.voxel_hash import HashCache, voxel_hash
from radiossl.downstream.overlap import check_overlap, evaluation_cases
from radiossl.downstream.tasks.brats import BraTSConfig, BraTSTask
from radiossl.io import read_image, write_image

runner = CliRunner()


@pytest.fixture(scope="module")
def downstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six BraTS phantom cases (4 train, 1 validation, 1 test by the seeded rule)."""
    return synthesize("brats", tmp_path_factory.mktemp("down"), cases=6, shape=(24, 24, 16), seed=0).out


def _task(root: Path) -> BraTSTask:
    return BraTSTask(BraTSConfig(), root)


def _preprocess(raw: Path, out: Path, *, all_train: bool = False) -> Path:
    """Preprocess ``raw`` into ``out`` (tiny crops); ``all_train``: every case in the pretraining split."""
    splits_file = None
    if all_train:
        ids = sorted(p.name for grade in ("HGG", "LGG") if (raw / grade).is_dir() for p in (raw / grade).iterdir())
        splits_file = out.parent / f"{out.name}-splits.json"
        save_splits(splits_file, Splits(train=ids, val=[], test=[], source="all train"))
    config = PreprocessConfig(
        dataset="brats18",
        data=raw,
        out=out,
        crop_size=(16, 16, 8),
        candidate_sizes=[(16, 16, 8)],
        pairs=1,
        progress=False,
        workers=1,
        splits_file=splits_file,
    )
    result = preprocess(config)
    assert result.failed == 0, result.failures
    return out


def _case_folder(root: Path, case_id: str) -> Path:
    return next(p for grade in ("HGG", "LGG") if (p := root / grade / case_id).is_dir())


def test_the_content_hash_ignores_format_compression_dtype_and_header(tmp_path: Path) -> None:
    voxels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 60
    paths = [
        write_image(tmp_path / "a.nii", voxels, affine=np.eye(4)),
        write_image(tmp_path / "b.nii.gz", voxels.astype(np.float32), affine=np.diag([2.0, 2.0, 3.0, 1.0])),
        write_image(tmp_path / "c.mha", voxels, affine=np.eye(4)),
    ]
    cache = HashCache(None)
    assert {cache.file_hash(p) for p in paths} == {voxel_hash(voxels)}
    changed = voxels.copy()
    changed[0, 0, 0] += 1
    assert voxel_hash(changed) != voxel_hash(voxels)
    assert voxel_hash(voxels.reshape(5, 4, 6)) != voxel_hash(voxels)  # the shape is part of it
    assert voxel_hash(np.zeros((2, 2, 2))) == voxel_hash(-np.zeros((2, 2, 2)))


def test_evaluation_cases_are_the_split_finetuning_and_evaluation_use(downstream: Path) -> None:
    task = _task(downstream)
    splits = task.splits(task.list_cases(), 0)
    cases = {c.case_id: c.roles for c in evaluation_cases(task, (0,))}
    assert cases == {**{c: ("val",) for c in splits.val}, **{c: ("test",) for c in splits.test}}
    both = BraTSTask(BraTSConfig(val_is_test=True), downstream)
    assert {c.case_id: c.roles for c in evaluation_cases(both)} == {c: ("test", "val") for c in splits.test}


def test_lits_tests_on_its_val_folder_and_every_seed_carves_its_own_validation(lits_root: Path) -> None:
    from radiossl.downstream.tasks.lits import LiTSConfig, LiTSTask

    held_out = {p.name.removesuffix(".nii") for p in (lits_root / "val" / "ct").iterdir()}
    task = LiTSTask(LiTSConfig(), lits_root)
    cases = {c.case_id: c.roles for c in evaluation_cases(task, (0, 1))}
    assert {c for c, roles in cases.items() if "test" in roles} == held_out
    carved = {seed: set(task.splits(task.list_cases(), seed).val) for seed in (0, 1)}
    assert {c for c, roles in cases.items() if roles == ("val",)} == carved[0] | carved[1]
    thesis = LiTSTask(LiTSConfig(val_is_test=True), lits_root)
    assert {c.case_id: c.roles for c in evaluation_cases(thesis, (0, 1))} == dict.fromkeys(held_out, ("test", "val"))


def test_no_overlap_when_pretraining_used_the_training_split_only(downstream: Path, tmp_path: Path) -> None:
    proc = _preprocess(downstream, tmp_path / "proc")  # the same split: val/test cases are not trained on
    out = tmp_path / "report" / "overlap.json"
    args = ["check-overlap", "--pretrain", str(proc), "--task", "brats", "--data", str(downstream), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "none of the 2 validation/test case(s)" in result.output
    report = json.loads(out.read_text())
    assert report["overlap"] is False and report["counts"]["pretrain_cases"] == 4 and report["matches"] == []
    assert (tmp_path / "report" / "overlap.hashes.json").is_file()


def test_a_test_case_copied_under_another_id_and_format_is_found_by_content(downstream: Path, tmp_path: Path) -> None:
    task = _task(downstream)
    test_id = task.splits(task.list_cases(), 0).test[0]
    raw = tmp_path / "pretrain-raw"
    synthesize("brats", raw, cases=2, shape=(24, 24, 16), seed=7)  # other voxels; ids 000 and 001
    shutil.rmtree(_case_folder(raw, "Brats18_PHANTOM_000_1"))
    copy_id = "Brats18_COPY_900_1"
    (raw / "HGG" / copy_id).mkdir(parents=True)
    for source in _case_folder(downstream, test_id).iterdir():  # .nii.gz -> .nii under the new id
        volume = read_image(source)
        suffix = source.name[len(test_id) :].replace(".nii.gz", ".nii")
        write_image(raw / "HGG" / copy_id / f"{copy_id}{suffix}", volume)
    proc = _preprocess(raw, tmp_path / "proc", all_train=True)
    result = check_overlap(proc, task, cache=tmp_path / "hashes.json")
    assert [(m.case_id, m.matched_by, m.pretrain_cases, m.roles) for m in result.matches] == [
        (test_id, "hash", (copy_id,), ("test",))
    ]
    assert len(result.matches[0].files) == 4 and result.images_read > 0  # the four channels
    again = check_overlap(proc, task, cache=tmp_path / "hashes.json")
    assert again.images_read == 0 and again.matches == result.matches  # the rerun reads no image
    out = tmp_path / "overlap.json"
    args = ["check-overlap", "--pretrain", str(proc), "--task", "brats", "--data", str(downstream), "--out", str(out)]
    cli = runner.invoke(app, args)
    assert cli.exit_code == 1, cli.output
    assert test_id in cli.output and "by content only 1" in cli.output
    report = json.loads(out.read_text())
    assert report["counts"]["by_hash"] == 1 and report["matches"][0]["pretrain_cases"] == [copy_id]


def test_same_ids_are_found_by_id_and_content_tells_whether_the_scans_are_the_same(
    downstream: Path, tmp_path: Path
) -> None:
    task = _task(downstream)
    evaluated = sorted(c.case_id for c in evaluation_cases(task))
    # Pretraining on the whole downstream dataset: its validation/test cases are the same scans.
    whole = _preprocess(downstream, tmp_path / "whole", all_train=True)
    found = check_overlap(whole, task)
    assert [(m.case_id, m.matched_by, m.content) for m in found.matches] == [(c, "both", "same") for c in evaluated]
    # Other scans that happen to carry the same ids: found by id, content different.
    other = synthesize("brats", tmp_path / "other", cases=6, shape=(24, 24, 16), seed=3).out
    named = check_overlap(_preprocess(other, tmp_path / "other-proc", all_train=True), task)
    assert [(m.case_id, m.matched_by, m.content) for m in named.matches] == [(c, "id", "different") for c in evaluated]


def test_moved_source_files_are_compared_by_id_only_and_said_so(downstream: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(downstream, raw)
    proc = _preprocess(raw, tmp_path / "proc", all_train=True)
    raw.rename(tmp_path / "raw-moved")
    task = _task(downstream)
    result = check_overlap(proc, task)
    assert len(result.id_only) == 6
    assert {(m.matched_by, m.content) for m in result.matches} == {("id", "unknown")}
    assert len(result.matches) == 2
    [note] = result.notes()
    assert note.startswith("6 pretraining case(s) compared by case id only") and "not found" in note
    cli = runner.invoke(app, ["check-overlap", "--pretrain", str(proc), "--task", "brats", "--data", str(downstream)])
    assert cli.exit_code == 1 and "compared by case id only" in cli.output


def test_usage_errors_exit_2(downstream: Path, tmp_path: Path) -> None:
    base = ["check-overlap", "--task", "brats", "--data", str(downstream)]
    missing = runner.invoke(app, base)
    assert missing.exit_code == 2 and "--pretrain" in missing.output
    not_proc = runner.invoke(app, [*base, "--pretrain", str(tmp_path)])
    assert not_proc.exit_code == 2 and "not a preprocessed folder" in not_proc.output
    folder_out = runner.invoke(app, [*base, "--pretrain", str(tmp_path), "--out", str(tmp_path)])
    assert folder_out.exit_code == 2 and "is a folder" in folder_out.output
