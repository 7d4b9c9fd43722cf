"""The nnssl adapter (``pretrain_data.json``), ``synth nnssl``, and preprocessing a collection as a stream."""

from __future__ import annotations

import json
import shutil
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from radiossl import registry
from radiossl.cli import app
from radiossl.data.datasets import get_adapter
from radiossl.data.datasets.base import Case
from radiossl.data.datasets.nnssl import MAX_ID_LENGTH, NnSSL, case_id_of
from radiossl.data.phantoms import synthesize
from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.errors import ConfigError, DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def write_collection(folder: Path, datasets: Any, **top: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pretrain_data.json").write_text(json.dumps({**top, "datasets": datasets}), encoding="utf-8")
    return folder


def one_image(image: dict[str, Any], dataset: str = "ds1", subject: str = "sub-01", session: str = "ses-1") -> Any:
    return {dataset: {"subjects": {subject: {"sessions": {session: {"images": [image]}}}}}}


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only ``synth nnssl`` collection of 6 images (small volumes)."""
    return synthesize("nnssl", tmp_path_factory.mktemp("nnssl") / "raw", cases=6, shape=(40, 40, 32), seed=0).out


def test_pyproject_declares_the_nnssl_adapter() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["radiossl.datasets"]
    assert declared["nnssl"] == "radiossl.data.datasets.nnssl:NnSSL"


def test_only_the_structure_is_required(tmp_path: Path) -> None:
    """No indices, names, infos, masks or modality: the image path is all an entry needs."""
    root = write_collection(tmp_path / "c", one_image({"image_path": "a/sub-01_ses-1_FLAIR.nii.gz"}))
    adapter = NnSSL()
    (case,) = adapter.list_cases(root)
    assert case == Case(
        "ds1__sub-01__ses-1__sub-01_ses-1_FLAIR",
        {"image": root / "a" / "sub-01_ses-1_FLAIR.nii.gz"},
        None,
        json.dumps(["ds1", "sub-01"]),
    )
    assert adapter.channel_modalities(root) == {"image": "mri"}
    assert adapter.case_problems(case) == [
        f"case {case.case_id}: missing image (expected {root / 'a' / 'sub-01_ses-1_FLAIR.nii.gz'})"
    ]


def test_image_paths_env_absolute_relative_and_image_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [
        {"name": "x.nii.gz", "image_path": "$nnssl_raw/D/x.nii.gz"},
        {"name": "y.nii.gz", "image_path": str(tmp_path / "abs" / "y.nii.gz")},
        {"name": "z.nii.gz", "image_path": "rel/z.nii.gz"},
        {"name": "w.nii.gz", "image_path": "$unset_var_radiossl/w.nii.gz"},
    ]
    root = write_collection(tmp_path / "c", {"d": {"subjects": {"s": {"sessions": {"t": {"images": images}}}}}})
    monkeypatch.setenv("nnssl_raw", str(tmp_path / "raw"))
    monkeypatch.delenv("unset_var_radiossl", raising=False)
    cases = NnSSL().list_cases(root)
    assert [c.images["image"] for c in cases[:3]] == [
        tmp_path / "raw" / "D" / "x.nii.gz",
        tmp_path / "abs" / "y.nii.gz",
        root / "rel" / "z.nii.gz",
    ]
    assert [c.problems for c in cases[:3]] == [(), (), ()]
    assert cases[3].problems == (
        "case d__s__t__w: image path $unset_var_radiossl/w.nii.gz: environment variable unset_var_radiossl "
        "is not set (datasets.d.subjects.s.sessions.t.images[3])",
    )
    moved = NnSSL(image_root=tmp_path / "elsewhere").list_cases(root)
    assert moved[2].images["image"] == tmp_path / "elsewhere" / "rel" / "z.nii.gz"
    assert moved[1].images["image"] == tmp_path / "abs" / "y.nii.gz"  # absolute paths stay as given


def test_modality_from_the_entry_its_info_or_the_file_name(tmp_path: Path) -> None:
    images = [
        {"image_path": "a_T1w.nii.gz", "modality": "CT"},
        {"image_path": "b_T1w.nii.gz", "image_info": {"Modality": "ct"}},
        {"image_path": "sub-1_ct.nii.gz"},
    ]
    root = write_collection(tmp_path / "ct", {"d": {"subjects": {"s": {"sessions": {"t": {"images": images}}}}}})
    adapter = NnSSL()
    assert adapter.channel_modalities(root) == {"image": "ct"}
    assert all(not c.problems for c in adapter.list_cases(root))
    images.append({"image_path": "c_T2w.nii.gz"})
    mixed = write_collection(tmp_path / "mix", {"d": {"subjects": {"s": {"sessions": {"t": {"images": images}}}}}})
    cases = NnSSL().list_cases(mixed)
    assert NnSSL().channel_modalities(mixed) == {"image": "mri"}
    assert [bool(c.problems) for c in cases] == [True, True, True, False]
    assert "--set dataset_options.modality=ct" in cases[0].problems[0]
    assert [bool(c.problems) for c in NnSSL(modality="ct").list_cases(mixed)] == [False, False, False, True]


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        (None, "datasets is missing"),
        ({"d": []}, "datasets.d is a list, not an object"),
        ({"d": {"name": "no subjects"}}, "datasets.d.subjects is missing"),
        ({"d": {"subjects": {"s": {"sessions": []}}}}, "datasets.d.subjects.s.sessions is a list, not an object"),
        ({"d": {"subjects": {"s": {"sessions": {"t": {"images": {}}}}}}}, "sessions.t.images is a dict, not a list"),
        (one_image({"name": "no path"}), "datasets.ds1.subjects.sub-01.sessions.ses-1.images[0].image_path is missing"),
    ],
)
def test_structural_errors_name_the_file_and_the_key(tmp_path: Path, datasets: Any, message: str) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    data = {"collection_name": "x"} if datasets is None else {"datasets": datasets}
    (folder / "pretrain_data.json").write_text(json.dumps(data))
    with pytest.raises(DataError) as error:
        NnSSL().list_cases(folder)
    text = str(error.value)
    assert text.startswith(f"{(folder / 'pretrain_data.json').resolve()}: ") and message in text
    assert "\n" not in text


def test_missing_or_unreadable_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pretrain_data.json: not found \(an nnssl collection needs"):
        NnSSL().list_cases(tmp_path)
    (tmp_path / "pretrain_data.json").write_text("{not json")
    with pytest.raises(DataError, match=r"pretrain_data\.json: cannot read"):
        NnSSL().list_cases(tmp_path)


def test_case_ids_are_safe_unique_and_repeats_are_reported(tmp_path: Path) -> None:
    assert case_id_of("ds 1", "sub__01", "../ses", "a b.nii.gz") == "ds-1__sub_01__ses__a-b"
    long_id = case_id_of("d" * 80, "s" * 80, "t", "x.nii")
    assert len(long_id) <= MAX_ID_LENGTH and long_id != case_id_of("d" * 80, "s" * 80, "t", "y.nii")
    images = [{"name": "a b.nii.gz", "image_path": "1.nii.gz"}, {"name": "a?b.nii.gz", "image_path": "2.nii.gz"}]
    root = write_collection(tmp_path / "c", {"d": {"subjects": {"s": {"sessions": {"t": {"images": images}}}}}})
    first, second = NnSSL().list_cases(root)
    assert first.case_id == second.case_id == "d__s__t__a-b"
    assert "several images of pretrain_data.json give this case id" in first.problems[0]
    assert "images[1] is one" in second.problems[0]


def test_unknown_dataset_option_is_a_config_error() -> None:
    assert isinstance(get_adapter("nnssl", {"image_root": "/data"}), NnSSL)
    with pytest.raises(ConfigError, match=r"unknown dataset_options colour \(it takes image_root, modality\)"):
        get_adapter("nnssl", {"colour": "red"})
    with pytest.raises(ConfigError, match="'brats18': unknown dataset_options image_root"):
        get_adapter("brats18", {"image_root": "/data"})


def big_collection(folder: Path, images: int) -> Path:
    """``images`` entries (none of the files exists), 50 subjects per dataset, 10 images per session."""
    datasets: dict[str, Any] = {}
    for i in range(images):
        d, s, t = f"ds{i // 5000}", f"sub-{i // 100:05d}", f"ses-{i // 10 % 10}"
        session = datasets.setdefault(d, {"subjects": {}})["subjects"].setdefault(s, {"sessions": {}})
        entry = {"name": f"img{i}_T1w.nii.gz", "image_path": f"$nnssl_raw/{d}/{s}/{i}.nii.gz", "modality": "T1w"}
        session["sessions"].setdefault(t, {"images": []})["images"].append(entry)
    return write_collection(folder, datasets, collection_index=1, collection_name="big")


def test_listing_a_50k_collection_streams_cases_without_touching_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = big_collection(tmp_path / "big", 50_000)
    monkeypatch.setenv("nnssl_raw", str(tmp_path / "absent"))
    adapter = NnSSL()
    adapter.index(root)  # the parsed file: held once, whatever is iterated
    stream = adapter.iter_cases(root)
    assert next(stream).case_id == "ds0__sub-00000__ses-0__img0_T1w"
    tracemalloc.start()
    try:
        ids = [case.case_id for case in adapter.iter_cases(root)]
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ids) == 50_000 and ids[-1] == "ds9__sub-00499__ses-9__img49999_T1w"
    # Beyond the ids it keeps, the walk holds one case at a time (a list of 50k cases is ~30 MB).
    assert peak - kept < 1_000_000


class StreamOnly(NnSSL):
    """The nnssl adapter with the list API switched off: preprocessing must work from the stream alone."""

    def list_cases(self, root: Path) -> list[Case]:
        raise AssertionError("preprocess listed every case at once")


def test_shards_preprocess_from_the_stream_and_the_merge_lists_every_failure(collection: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(collection, raw)
    cases = NnSSL().list_cases(raw)
    # Position 0 goes to shard 1/2 and position 3 to shard 2/2; position 5's file is gone.
    cases[0].images["image"].write_bytes(b"not a nifti file")
    cases[3].images["image"].write_bytes(b"\x1f\x8b garbage")
    cases[5].images["image"].unlink()
    registry.register("radiossl.datasets", "nnssl-stream-only", StreamOnly)
    try:
        settings = {"dataset": "nnssl-stream-only", "data": raw, "out": tmp_path / "proc", "pairs": 2}
        lines: list[str] = []
        first = preprocess(PreprocessConfig(**settings, shard="1/2"), progress=lambda c, ok: lines.append(c))
        second = preprocess(PreprocessConfig(**settings, shard="2/2", workers=1))
        merged = preprocess(PreprocessConfig(**settings), merge_only=True)
    finally:
        registry.unregister("radiossl.datasets", "nnssl-stream-only")
    assert (first.total_cases, first.ok, first.failed) == (3, 2, 1)
    assert lines == [cases[i].case_id for i in (0, 2, 4)]
    assert (second.total_cases, second.ok, second.failed) == (3, 1, 2)
    assert merged.merged is not None and merged.merged.counts["failed"] == 3
    failures = {f.case_id: f for f in merged.merged.failures}
    assert sorted(failures) == sorted(cases[i].case_id for i in (0, 3, 5))
    assert failures[cases[0].case_id].shard == "1/2" and failures[cases[3].case_id].shard == "2/2"
    assert "missing image" in failures[cases[5].case_id].reason
    summary = json.loads((tmp_path / "proc" / "preprocess.json").read_text())
    assert [f["case_id"] for f in summary["failures"]] == sorted(failures)
    assert all(f["reason"] for f in summary["failures"])
    assert summary["counts"] == {"cases": 6, "ok": 3, "failed": 3, "pending": 0, "samples": 6}


def test_cli_synth_nnssl_then_preprocess_and_merge_only_summary(tmp_path: Path) -> None:
    runner = CliRunner()
    raw = tmp_path / "raw"
    made = runner.invoke(app, ["synth", "nnssl", "--out", str(raw), "--cases", "3", "--shape", "40", "40", "32"])
    assert made.exit_code == 0, made.output
    assert (raw / "pretrain_data.json").is_file() and "cases" in made.output
    broken = NnSSL().list_cases(raw)[1]
    broken.images["image"].write_bytes(b"broken")
    out = tmp_path / "proc"
    args = ["preprocess", "--dataset", "nnssl", "--data", str(raw), "--out", str(out), "--pairs", "2"]
    for shard in ("1/2", "2/2"):
        ran = runner.invoke(app, [*args, "--shard", shard])
        assert ran.exit_code == (1 if shard == "2/2" else 0), ran.output
        assert f"preprocess nnssl/cluster shard {shard}: done" in ran.output
    summary = runner.invoke(app, [*args, "--merge-only"], terminal_width=200)
    assert summary.exit_code == 1, summary.output
    assert "failed cases (all shards)" in summary.output
    assert broken.case_id in summary.output and "2/2" in summary.output
