"""Run-folder names and the --resume rule."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest

from radiossl.config import ExampleRunConfig, build_config
from radiossl.engine.run_dir import (
    JOB_FILE,
    dataset_name,
    job_run_dir,
    matching_run_dirs,
    new_run_dir,
    resolve_run_dir,
    run_prefix,
)
from radiossl.errors import CheckpointError, ConfigError


def _touch(path: Path, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_readable_name_uses_the_dataset_name_it_is_given(tmp_path: Path) -> None:
    proc = tmp_path / "proc_v2"  # pretrain gives the dataset its preprocess.json records
    cfg = build_config(
        ExampleRunConfig,
        [
            {
                "data": {"root": str(proc)},
                "model": {"width": 1.0},
                "optim": {"batch_size": 16, "epochs": 240, "lr": 0.002},
            }
        ],
    )
    prefix = run_prefix("pretrain", "patch-cluster", cfg, ["k50"], dataset="brats18")
    assert prefix == "pretrain-patch-cluster-brats18-k50-w1.0-b16-e240-lr0.002"
    assert run_prefix("pretrain", "patch-cluster", cfg, ["k50"]).startswith("pretrain-patch-cluster-proc_v2-k50-")
    folder = new_run_dir(tmp_path, prefix, datetime.datetime(2026, 11, 25, 20, 15, 0))
    assert folder.name == prefix + "-20261125-201500"


def test_dataset_name_falls_back_to_a_safe_folder_name(tmp_path: Path) -> None:
    assert dataset_name(tmp_path / "my data") == "my_data"
    assert dataset_name(None) == "data"


def test_new_run_dir_never_reuses_a_folder(tmp_path: Path) -> None:
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    first = new_run_dir(tmp_path, "p", now)
    first.mkdir()
    assert new_run_dir(tmp_path, "p", now).name == "p-20260102-030405-2"


def test_matching_run_dirs_needs_the_exact_prefix_and_a_timestamp(tmp_path: Path) -> None:
    for name in ("p-e3-20260101-000000", "p-e3-20260101-000000-2", "p-e30-20260101-000000", "p-e3-notes"):
        (tmp_path / name).mkdir()
    assert [p.name for p in matching_run_dirs(tmp_path, "p-e3")] == [
        "p-e3-20260101-000000",
        "p-e3-20260101-000000-2",
    ]


def test_resume_auto_picks_the_most_recent_latest_checkpoint(tmp_path: Path) -> None:
    old = _touch(tmp_path / "p-20260101-000000" / "checkpoint_latest.pt", 1_000)
    new = _touch(tmp_path / "p-20250101-000000" / "checkpoint_latest.pt", 2_000)  # older name, newer file
    _touch(tmp_path / "q-20270101-000000" / "checkpoint_latest.pt", 3_000)  # other prefix
    run_dir, checkpoint, created = resolve_run_dir("p", tmp_path, resume="auto")
    assert (run_dir, checkpoint, created) == (new.parent, new, False)
    assert old.exists()


def test_resume_auto_without_a_checkpoint_starts_a_new_run(tmp_path: Path) -> None:
    run_dir, checkpoint, created = resolve_run_dir("p", tmp_path, resume="auto")
    assert checkpoint is None and created and run_dir.parent == tmp_path


def test_resume_auto_accepts_a_run_folder_as_out(tmp_path: Path) -> None:
    latest = _touch(tmp_path / "anything" / "checkpoint_latest.pt")
    assert resolve_run_dir("p", latest.parent, resume="auto")[:2] == (latest.parent, latest)


def test_resume_path_file_or_folder(tmp_path: Path) -> None:
    best = _touch(tmp_path / "run" / "checkpoint_best.pt")
    assert resolve_run_dir("p", tmp_path, resume=str(best))[:2] == (best.parent, best)
    with pytest.raises(CheckpointError, match=r"no checkpoint_latest\.pt"):
        resolve_run_dir("p", tmp_path, resume=str(best.parent))
    latest = _touch(tmp_path / "run" / "checkpoint_latest.pt")
    assert resolve_run_dir("p", tmp_path, resume=str(best.parent))[1] == latest


def test_explicit_run_dir_with_checkpoints_needs_resume(tmp_path: Path) -> None:
    _touch(tmp_path / "run" / "checkpoint_final.pt")
    with pytest.raises(ConfigError, match="--resume auto"):
        resolve_run_dir("p", tmp_path, run_dir=tmp_path / "run")


def test_restarted_torchrun_workers_find_the_unfinished_folder_of_their_job(tmp_path: Path) -> None:
    prefix = "pretrain-tiny-data-w1.0-b4-e3-lr0.05"
    folders = {}
    for stamp, job in [("20261201-100000", "job-a"), ("20261202-100000", "job-b"), ("20261203-100000", "job-a")]:
        folder = tmp_path / f"{prefix}-{stamp}"
        folder.mkdir()
        (folder / JOB_FILE).write_text(json.dumps({"run_id": job}))
        folders[stamp] = folder
    assert job_run_dir(tmp_path, prefix, "job-a") == folders["20261203-100000"]  # the newest of its job
    assert job_run_dir(tmp_path, prefix, "job-b") == folders["20261202-100000"]
    assert job_run_dir(tmp_path, prefix, "job-c") is None
    assert job_run_dir(tmp_path, "pretrain-other", "job-a") is None
    (folders["20261203-100000"] / "checkpoint_final.pt").write_bytes(b"")  # finished: an earlier job's id reused
    assert job_run_dir(tmp_path, prefix, "job-a") == folders["20261201-100000"]
