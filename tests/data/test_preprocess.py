"""``preprocess``: folder format, views, determinism across workers and shards, resume, bad inputs."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.datasets import get_adapter
from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.data.processed import MANIFEST_COLUMNS
from radiossl.errors import ConfigError
from radiossl.io import read_image, write_image
from tests.older_records import rewrite

CANDIDATES = {(24, 24, 8), (32, 32, 8), (16, 16, 8)}


@pytest.fixture(scope="module")
def brats_run(
    small_config: Callable[..., PreprocessConfig],
    phantom_root: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The reference run: BraTS phantoms, cluster view, one process."""
    out = tmp_path_factory.mktemp("brats-run") / "proc"
    result = preprocess(small_config(phantom_root("brats"), out))
    assert (result.ok, result.failed, result.samples) == (3, 0, 36)
    return out


def _manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _same_output(a: Path, b: Path) -> None:
    assert (a / "manifest.csv").read_text() == (b / "manifest.csv").read_text()
    names = sorted(p.name for p in (a / "arrays").glob("*.npy"))
    assert names == sorted(p.name for p in (b / "arrays").glob("*.npy"))
    for name in names:
        assert (a / "arrays" / name).read_bytes() == (b / "arrays" / name).read_bytes(), name


def test_folder_format(brats_run: Path, phantom_root: Callable[[str], Path]) -> None:
    rows = _manifest(brats_run)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert len(rows) == 3 * 4 * 3  # cases x modalities (separate samples, thesis default) x pairs
    params = json.loads((brats_run / "preprocess.json").read_text())
    assert params["counts"] == {"cases": 3, "ok": 3, "failed": 0, "pending": 0, "samples": 36}
    assert params["resolved"]["intensity"]["t1"]["mode"] == "minmax"
    assert params["radiossl_version"] and params["settings"]["pairs"] == 3
    root = phantom_root("brats")
    adapter = get_adapter("brats18")
    expected_splits = adapter.default_splits(root, adapter.list_cases(root))
    assert json.loads((brats_run / "splits.json").read_text()) == expected_splits.as_dict()
    for case_id, entry in params["cases"].items():
        assert entry["status"] == "ok" and entry["error"] is None
        assert all(source["size"] > 0 for source in entry["sources"])
        assert entry["split"] == expected_splits.split_of(case_id)
    for row in rows:
        assert row["split"] == expected_splits.split_of(row["case_id"])
        assert row["group_id"].startswith(row["case_id"] + "_") and row["channels"] == "1"
        boxes = np.array([[int(row[f"{p}_{a}{e}"]) for a in "xyz" for e in "12"] for p in "ab"])
        shape = params["cases"][row["case_id"]]["processed_shape"]
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 1::2] <= shape).all()
        assert {tuple(s) for s in (boxes[:, 1::2] - boxes[:, 0::2]).tolist()} <= CANDIDATES
    array = np.load(brats_run / rows[0]["file"], mmap_mode="r")
    assert array.shape == (3, 2, 1, 16, 16, 8) and array.dtype == np.float16
    assert float(array.min()) >= 0.0 and float(array.max()) <= 1.0


def test_workers_do_not_change_the_result(
    small_config: Callable[..., PreprocessConfig], brats_run: Path, phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    result = preprocess(small_config(phantom_root("brats"), tmp_path / "proc", workers=2))
    assert (result.ok, result.failed) == (3, 0)
    _same_output(brats_run, tmp_path / "proc")


def test_union_of_shards_is_the_whole_run(
    small_config: Callable[..., PreprocessConfig], brats_run: Path, phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "proc"
    first = preprocess(small_config(phantom_root("brats"), out, shard="1/2"))  # shards count from 1
    assert (first.total_cases, first.ok) == (2, 2)
    assert json.loads((out / "preprocess.json").read_text())["counts"]["pending"] == 1
    done = {row["case_id"] for row in _manifest(out)}
    assert done == {"Brats18_PHANTOM_000_1", "Brats18_PHANTOM_002_1"}  # positions 0 and 2: index % 2 == 0
    second = preprocess(small_config(phantom_root("brats"), out, shard="2/2"))
    assert (second.total_cases, second.ok) == (1, 1)
    _same_output(brats_run, out)
    assert json.loads((out / "preprocess.json").read_text())["counts"]["ok"] == 3


def test_slurm_array_tasks_are_the_shards(
    small_config: Callable[..., PreprocessConfig],
    brats_run: Path,
    phantom_root: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "proc"
    for task in ("0", "1"):  # sbatch --array=0-1
        for name, value in (("ID", task), ("MIN", "0"), ("MAX", "1"), ("COUNT", "2"), ("STEP", "1")):
            monkeypatch.setenv(f"SLURM_ARRAY_TASK_{name}", value)
        result = preprocess(small_config(phantom_root("brats"), out, shard="slurm"))
        assert str(result.shard) == f"{int(task) + 1}/2"
    _same_output(brats_run, out)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0/2", "--shard 0/2: shards count from 1; use 1/2 or 2/2"),
        ("3/2", "--shard 3/2: there are only 2 shards; use 1/2 or 2/2"),
        ("2", "expected I/N"),
        ("slurm", "SLURM_ARRAY_TASK_ID"),
    ],
)
def test_cli_refuses_shards_that_do_not_exist(
    phantom_root: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    for name in ("ID", "MIN", "MAX", "COUNT", "STEP"):
        monkeypatch.delenv(f"SLURM_ARRAY_TASK_{name}", raising=False)
    args = ["preprocess", "--dataset", "brats18", "--data", str(phantom_root("brats")), "--out", str(tmp_path / "p")]
    result = CliRunner().invoke(app, [*args, "--shard", value])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "p" / "manifest.csv").exists()


def test_resume_redoes_only_the_interrupted_case(
    small_config: Callable[..., PreprocessConfig], brats_run: Path, phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "proc"
    shutil.copytree(brats_run, out)
    (out / "cases" / "Brats18_PHANTOM_001_1_flair.csv").unlink()  # killed before its marker was written
    (out / "arrays" / "Brats18_PHANTOM_001_1_flair.npy").write_bytes(b"half-written")
    (out / "arrays" / ".tmp-Brats18_PHANTOM_001_1_flair.npy.x1y2").write_bytes(b"stray")
    (out / "manifest.csv").unlink()
    result = preprocess(small_config(phantom_root("brats"), out))
    assert (result.ok, result.skipped, result.samples) == (1, 2, 3)  # one group of one case redone
    assert not list((out / "arrays").glob(".tmp-*"))
    _same_output(brats_run, out)
    again = preprocess(small_config(phantom_root("brats"), out))
    assert (again.ok, again.skipped) == (0, 3)


def test_other_settings_are_refused(
    small_config: Callable[..., PreprocessConfig], brats_run: Path, phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="pairs: 3 -> 4"):
        preprocess(small_config(phantom_root("brats"), brats_run, pairs=4))
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        preprocess(small_config(phantom_root("brats"), tmp_path))
    with pytest.raises(ValidationError, match="I/N"):
        small_config(phantom_root("brats"), tmp_path / "x", shard="2")
    with pytest.raises(ValidationError, match="shards count from 1"):
        small_config(phantom_root("brats"), tmp_path / "x", shard="0/3")


def test_a_folder_written_before_a_setting_existed_resumes_while_it_is_at_its_default(
    small_config: Callable[..., PreprocessConfig], phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    out, raw = tmp_path / "proc", phantom_root("brats")
    rejection = {"max_background": 0.9}
    assert preprocess(small_config(raw, out, rejection=rejection)).failed == 0
    stored = json.loads((out / "preprocess.json").read_text())["settings"]
    assert stored["rejection"]["thesis_bg_max"] == 0.85 and stored["resize_mode"] == "trilinear"
    # rejection.thesis_bg_max and resize_mode came after this folder: their defaults are what it did
    rewrite(out / "preprocess.json", "settings", ("rejection.thesis_bg_max", "resize_mode"))
    assert preprocess(small_config(raw, out, rejection=rejection)).skipped == 3
    rewrite(out / "preprocess.json", "settings", ("rejection.thesis_bg_max",))
    with pytest.raises(
        ConfigError,
        match=re.escape(f"{out} was preprocessed with other settings ")
        + r"\(rejection\.thesis_bg_max: \(absent\) -> 0\.5\)",
    ):
        preprocess(small_config(raw, out, rejection={**rejection, "thesis_bg_max": 0.5}))
    with pytest.raises(ConfigError, match=r"other settings \(rejection\.max_background: 0\.9 -> 0\.8\)"):
        preprocess(small_config(raw, out, rejection={"max_background": 0.8}))
    # a setting this release does not have (the refusals above changed nothing)
    rewrite(out / "preprocess.json", "settings", old_setting=1)
    with pytest.raises(ConfigError, match=r"other settings \(old_setting: 1 -> \(absent\)\)"):
        preprocess(small_config(raw, out, rejection=rejection))


def test_resume_from_other_raw_data_or_another_split_is_refused(
    small_config: Callable[..., PreprocessConfig],
    brats_run: Path,
    phantom_copy: Callable[[str], Path],
    phantom_root: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    out = tmp_path / "proc"
    shutil.copytree(brats_run, out)
    other_raw = phantom_copy("brats")  # same cases, but another raw folder
    with pytest.raises(ConfigError, match=r"preprocessed from raw data .*, not .*raw-brats; use another --out") as err:
        preprocess(small_config(other_raw, out))
    assert "\n" not in str(err.value)
    splits = json.loads((out / "splits.json").read_text())
    moved = splits["train"].pop()
    splits["test"].append(moved)
    (out / "splits.json").write_text(json.dumps(splits))  # the folder was made with another split
    with pytest.raises(ConfigError, match=rf"another split \(1 case\(s\) differ, e.g. {moved}: test -> train\)"):
        preprocess(small_config(phantom_root("brats"), out))


def test_merge_only_rebuilds_the_manifest(
    small_config: Callable[..., PreprocessConfig], brats_run: Path, phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "proc"
    shutil.copytree(brats_run, out)
    (out / "manifest.csv").unlink()
    result = preprocess(small_config(phantom_root("brats"), out), merge_only=True)
    assert (result.ok, result.manifest_rows) == (0, 36)
    _same_output(brats_run, out)


@pytest.mark.parametrize(
    ("kind", "dataset", "view", "shape", "extra"),
    [
        ("brats", "brats18", "cluster", (3, 2, 4, 16, 16, 8), {"multichannel": True}),
        ("lits", "lits17", "pcrlv2", (3, 2, 1, 16, 16, 8), {}),
        (
            "luna",
            "luna16",
            "genesis",
            (3, 1, 16, 16, 8),
            {"rejection": {"max_foreground": 0.6, "look_ahead": 2, "max_background": None}},
        ),
        ("nnunet", "nnunet", "cluster", (3, 2, 1, 16, 16, 8), {"storage": "uint8"}),
    ],
)
def test_views_and_datasets(
    small_config: Callable[..., PreprocessConfig],
    phantom_root: Callable[[str], Path],
    tmp_path: Path,
    kind: str,
    dataset: str,
    view: str,
    shape: tuple,
    extra: dict,
) -> None:
    config = small_config(phantom_root(kind), tmp_path / "proc", dataset=dataset, view=view, **extra)
    result = preprocess(config)
    assert result.failed == 0, result.failures
    rows = _manifest(tmp_path / "proc")
    arrays = {row["file"] for row in rows}
    first = np.load(tmp_path / "proc" / sorted(arrays)[0], mmap_mode="r")
    assert first.shape == shape
    assert first.dtype == (np.uint8 if extra.get("storage") == "uint8" else np.float16)
    if view == "pcrlv2":
        local = np.load(tmp_path / "proc" / sorted(arrays)[0].replace(".npy", ".local.npy"))
        assert local.shape == (3, 6, 1, 16, 16, 16)
    if view == "genesis":
        assert all(row[f"a_{k}"] == row[f"b_{k}"] for row in rows for k in ("x1", "x2", "y1", "y2", "z1", "z2"))


def test_include_splits_and_volume_too_small(
    small_config: Callable[..., PreprocessConfig], phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    result = preprocess(small_config(phantom_root("brats"), tmp_path / "a", include_splits=["train"]))
    assert {row["split"] for row in _manifest(tmp_path / "a")} == {"train"}
    assert result.total_cases == 1
    rest = preprocess(small_config(phantom_root("brats"), tmp_path / "a"))  # later: all splits, same folder
    assert (rest.skipped, rest.ok) == (1, 2)
    small = preprocess(small_config(phantom_root("lits"), tmp_path / "b", dataset="lits17", crop_size=(16, 16, 400)))
    assert small.failed == 3
    assert all("smaller than 0.5 x the crop size" in f.reason for f in small.failures)


def _corrupt(root: Path) -> dict[str, str]:
    """Break six of seven BraTS cases in six different ways; return case id -> expected reason."""
    cases = sorted(p for grade in ("HGG", "LGG") for p in (root / grade).iterdir())
    nan_case, truncated_case, missing_case, mismatch_case, empty_case, complex_case = cases[:6]
    flair = nan_case / f"{nan_case.name}_flair.nii.gz"
    volume = read_image(flair)
    data = volume.array.astype(np.float32)
    data[0, 0, 0] = np.nan  # radiossl refuses to write NaN, so write this file with nibabel
    nib.save(nib.Nifti1Image(data, volume.affine), str(flair))
    t1 = truncated_case / f"{truncated_case.name}_t1.nii.gz"
    t1.write_bytes(t1.read_bytes()[: t1.stat().st_size // 2])
    (missing_case / f"{missing_case.name}_t1ce.nii.gz").unlink()
    seg = mismatch_case / f"{mismatch_case.name}_seg.nii.gz"
    write_image(seg, np.zeros((10, 10, 10), np.int16), affine=np.eye(4))
    # an all-zero T2 is all background: its group cannot be sampled, so the whole case is dropped
    t2 = empty_case / f"{empty_case.name}_t2.nii.gz"
    t2_volume = read_image(t2)
    write_image(t2, np.zeros(t2_volume.shape, np.int16), like=t2_volume)
    # a complex-valued T1 (an MRI phase/magnitude export): refused, not cast with a ComplexWarning
    t1_complex = complex_case / f"{complex_case.name}_t1.nii.gz"
    t1_volume = read_image(t1_complex)
    nib.save(nib.Nifti1Image(t1_volume.array.astype(np.complex64) * (1 + 1j), t1_volume.affine), str(t1_complex))
    return {
        complex_case.name: f"{t1_complex}: complex-valued voxels (complex64)",
        empty_case.name: "no crop pair",
        nan_case.name: "NaN",
        truncated_case.name: t1.name,
        missing_case.name: "missing t1ce",
        mismatch_case.name: "label shape",
    }


@pytest.mark.filterwarnings("error::numpy.exceptions.ComplexWarning")
def test_bad_cases_are_reported_and_the_others_processed(tmp_path: Path) -> None:
    from radiossl.data.phantoms import synthesize

    raw = tmp_path / "raw"
    synthesize("brats", raw, cases=7, shape=(32, 32, 24), seed=3)
    expected = _corrupt(raw)
    out = tmp_path / "proc"
    result = CliRunner().invoke(
        app,
        [
            "preprocess",
            "--dataset",
            "brats18",
            "--data",
            str(raw),
            "--out",
            str(out),
            "--pairs",
            "2",
            "--set",
            "max_attempts=64",
            "--set",
            "crop_size=[16,16,8]",
            "--set",
            "candidate_sizes=[[16,16,8],[24,24,8]]",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "failed cases" in result.output
    cases = json.loads((out / "preprocess.json").read_text())["cases"]
    for case_id, reason in expected.items():
        assert cases[case_id]["status"] == "failed" and reason in cases[case_id]["error"], cases[case_id]
    good = set(cases) - set(expected)
    assert len(good) == 1 and cases[good.pop()]["status"] == "ok"
    assert {row["case_id"] for row in _manifest(out)} == set(cases) - set(expected)


def test_cli_usage_errors_exit_2(phantom_root: Callable[[str], Path], tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["preprocess", "--data", str(phantom_root("brats")), "--out", str(tmp_path / "p")]
    unknown = runner.invoke(app, [*base, "--dataset", "brats2031"])
    assert unknown.exit_code == 2 and "available" in unknown.output
    typo = runner.invoke(app, [*base, "--dataset", "brats18", "--set", "crop_sise=[8,8,8]"])
    assert typo.exit_code == 2 and "crop_sise" in typo.output
    missing = runner.invoke(
        app,
        [
            "preprocess",
            "--dataset",
            "brats18",
            "--data",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert missing.exit_code == 2 and "not found" in missing.output


def test_cli_success(phantom_root: Callable[[str], Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "preprocess",
            "--dataset",
            "lits17",
            "--data",
            str(phantom_root("lits")),
            "--out",
            str(tmp_path / "p"),
            "--views",
            "cluster",
            "--pairs",
            "2",
            "--seed",
            "5",
            "--set",
            "crop_size=[16,16,8]",
            "--set",
            "candidate_sizes=[[16,16,8],[20,20,8]]",
        ],
    )
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "p" / "preprocess.json").read_text())
    assert params["settings"]["seed"] == 5 and params["resolved"]["zoom"] == [0.75, 0.75, 1.0]
