"""kmeans fit and predict split across shards: shards (+ merge) = the unsharded run, resume, refusals."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.clustering import KMeansConfig, KMeansPredictConfig, kmeans_fit, kmeans_predict
from radiossl.clustering.fit import sample_fragments
from radiossl.data.processed import ProcessedDataset
from radiossl.errors import ConfigError, DataError
from radiossl.utils.fragments import fingerprint
from radiossl.utils.sharding import Shard

TIMING = {"created", "total_seconds", "fit_seconds"}


def _fit_config(root: Path, out: Path, **sampling: Any) -> KMeansConfig:
    return KMeansConfig.model_validate(
        {
            "data": {"root": str(root)},
            "kmeans": {"k": 3, "niter": 10},
            "sampling": {"voxels_per_crop": 64, **sampling},
            "runtime": {"device": "cpu", "workers": 0, "seed": 7},
            "out": str(out),
            "montage": False,
            "progress": False,
        }
    )


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMING}
    return value


@pytest.fixture
def proc4(make_proc: Callable[..., Path]) -> Path:
    """5 groups x 3 pairs (4 train groups, 1 val)."""
    return make_proc("proc4", groups=5)


def test_fit_shards_then_the_last_shard_fits_the_unsharded_centroids(proc4: Path, tmp_path: Path) -> None:
    whole = kmeans_fit(_fit_config(proc4, tmp_path / "whole.npy"))
    sharded = _fit_config(proc4, tmp_path / "sharded.npy")
    first = kmeans_fit(sharded, shard=Shard(1, 2))
    assert not first.fitted and not first.centroids.exists()
    assert first.sampled_groups == 2 and first.missing_groups == ["case01_t1", "case03_t1"]
    last = kmeans_fit(sharded, shard=Shard(2, 2))
    assert last.fitted and last.sampled_groups == 2
    # same sample in the same order and the same faiss seed: bit-identical centroids
    assert np.array_equal(np.load(last.centroids), np.load(whole.centroids))
    assert last.inertia == whole.inertia and last.cluster_sizes == whole.cluster_sizes
    meta_whole, meta_sharded = (json.loads(r.metadata.read_text()) for r in (whole, last))
    for meta in (meta_whole, meta_sharded):
        meta.pop("centroids")
        meta["config"].pop("out")
    assert _untimed(meta_sharded) == _untimed(meta_whole)
    # the fragments hold exactly the sample (4 groups x 3 pairs x 2 crops x 64 voxels), nothing more
    fragments = sample_fragments(last.centroids)
    rows = sum(np.load(fragments.path(f"case{g:02d}_t1")).shape[0] for g in range(4))
    assert rows == last.n_points == 4 * 3 * 2 * 64


def test_fit_merge_only_needs_every_group_and_a_rerun_skips_done_groups(proc4: Path, tmp_path: Path) -> None:
    config = _fit_config(proc4, tmp_path / "c.npy")
    kmeans_fit(config, shard=Shard(1, 3))
    with pytest.raises(DataError, match=r"2 of 4 sample groups not done yet \(case01_t1, case02_t1\).*--merge-only"):
        kmeans_fit(config, merge_only=True)
    assert kmeans_fit(config, shard=Shard(1, 3)).sampled_groups == 0  # resumed: nothing to compute
    kmeans_fit(config, shard=Shard(3, 3))
    last = kmeans_fit(config, shard=Shard(2, 3))
    assert last.fitted
    centroids = np.load(last.centroids)
    again = kmeans_fit(config, merge_only=True)  # refits from the fragments alone
    assert again.fitted and again.sampled_groups == 0
    assert np.array_equal(np.load(again.centroids), centroids)


def test_a_shard_that_finds_the_fit_done_does_not_fit_again(proc4: Path, tmp_path: Path) -> None:
    config = _fit_config(proc4, tmp_path / "c.npy")
    kmeans_fit(config, shard=Shard(1, 2))
    done = kmeans_fit(config, shard=Shard(2, 2))
    stamp = done.centroids.stat().st_mtime_ns
    rerun = kmeans_fit(config, shard=Shard(2, 2))
    assert rerun.fitted and rerun.inertia == done.inertia and rerun.cluster_sizes == done.cluster_sizes
    assert done.centroids.stat().st_mtime_ns == stamp


def test_fit_shards_with_other_sampling_settings_are_refused(proc4: Path, tmp_path: Path) -> None:
    kmeans_fit(_fit_config(proc4, tmp_path / "c.npy"), shard=Shard(1, 2))
    with pytest.raises(ConfigError, match=r"other settings \(sampling\.voxels_per_crop: 64 -> 32.*delete"):
        kmeans_fit(_fit_config(proc4, tmp_path / "c.npy", voxels_per_crop=32), shard=Shard(2, 2))


def test_a_sample_folder_of_an_older_release_resumes_and_its_fit_is_not_redone(proc4: Path, tmp_path: Path) -> None:
    config = _fit_config(proc4, tmp_path / "c.npy")
    kmeans_fit(config, shard=Shard(1, 2))
    record_file = sample_fragments(tmp_path / "c.npy").record
    record = json.loads(record_file.read_text())
    del record["sampling"]["foreground_fraction"], record["features"]["upsampler_options"]  # added since
    record_file.write_text(json.dumps(record))
    done = kmeans_fit(config, shard=Shard(2, 2))
    assert done.fitted and json.loads(record_file.read_text()) == record  # accepted as it is
    # the fit of an older release: its fingerprint is of the recorded sample, its config lacks the new field
    meta = json.loads(done.metadata.read_text())
    meta["sample_fingerprint"] = fingerprint(record)
    del meta["config"]["sampling"]["foreground_fraction"]
    done.metadata.write_text(json.dumps(meta))
    stamp = done.centroids.stat().st_mtime_ns
    assert kmeans_fit(config, shard=Shard(2, 2)).fitted and done.centroids.stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"\(sampling\.foreground_fraction: \(absent\) -> 0\.5\)"):
        kmeans_fit(_fit_config(proc4, tmp_path / "c.npy", foreground_fraction=0.5), shard=Shard(2, 2))


def _predict_config(root: Path, centroids: Path, **top: Any) -> KMeansPredictConfig:
    return KMeansPredictConfig.model_validate(
        {
            "data": {"root": str(root)},
            "centroids": str(centroids),
            "runtime": {"device": "cpu", "workers": 0},
            "montage": False,
            "progress": False,
            **top,
        }
    )


def test_predict_shards_register_the_unsharded_targets(proc4: Path, tmp_path: Path) -> None:
    fitted = kmeans_fit(_fit_config(proc4, tmp_path / "c.npy"))
    copy = tmp_path / "copy"
    shutil.copytree(proc4, copy)
    manifest = (proc4 / "manifest.csv").read_bytes()
    whole = kmeans_predict(_predict_config(proc4, fitted.centroids))
    first = kmeans_predict(_predict_config(copy, fitted.centroids), shard=Shard(1, 2))
    assert not first.registered and len(first.written) == 3  # groups 1, 3, 5 of 5
    assert first.missing == ["arrays/case01_t1.npy", "arrays/case03_t1.npy"]
    assert not (copy / "targets" / whole.tag / "targets.json").exists()  # nothing registered yet
    assert whole.tag not in ProcessedDataset.open(copy).target_tags()
    last = kmeans_predict(_predict_config(copy, fitted.centroids), shard=Shard(2, 2))
    assert last.registered and last.written == ["arrays/case01_t1.npy", "arrays/case03_t1.npy"]
    # neither the sharded nor the whole run rewrote the preprocessing stage's manifest
    assert (copy / "manifest.csv").read_bytes() == manifest == (proc4 / "manifest.csv").read_bytes()
    assert whole.tag in ProcessedDataset.open(copy).target_tags()
    for g in range(5):
        name = f"targets/{whole.tag}/case{g:02d}_t1.npy"
        assert np.array_equal(np.load(copy / name), np.load(proc4 / name))
    meta_whole, meta_sharded = (
        json.loads((root / "targets" / whole.tag / "targets.json").read_text()) for root in (proc4, copy)
    )
    for meta in (meta_whole, meta_sharded):  # counts of what each process wrote itself
        meta.pop("created"), meta.pop("cluster_counts_written")
    assert meta_sharded == meta_whole


def test_predict_merge_only_registers_when_every_group_has_targets(proc4: Path, tmp_path: Path) -> None:
    fitted = kmeans_fit(_fit_config(proc4, tmp_path / "c.npy"))
    config = _predict_config(proc4, fitted.centroids)
    kmeans_predict(config, shard=Shard(2, 2))
    with pytest.raises(DataError, match=r"3 of 5 groups not done yet \(arrays/case00_t1\.npy"):
        kmeans_predict(config, merge_only=True)
    kmeans_predict(config, shard=Shard(1, 2))
    (proc4 / "targets" / "k3-filterbank-bilinear" / "targets.json").unlink()  # as if the last merge was lost
    assert "k3-filterbank-bilinear" not in ProcessedDataset.open(proc4).target_tags()
    merged = kmeans_predict(config, merge_only=True)
    assert merged.registered and merged.written == [] and merged.skipped == []
    assert "k3-filterbank-bilinear" in ProcessedDataset.open(proc4).target_tags()


def test_cli_shard_values_that_name_no_shard_exit_2_with_the_valid_ones(proc: Path) -> None:
    runner = CliRunner()
    for command in (["kmeans", "fit"], ["kmeans", "predict", "--centroids", str(proc / "c.npy")]):
        result = runner.invoke(app, [*command, "--data", str(proc), "--shard", "3/2"])
        assert result.exit_code == 2, result.output
        assert "--shard 3/2: there are only 2 shards; use 1/2 or 2/2" in result.output


def test_cli_fit_shard_slurm_reads_the_array_task(proc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    args = ["kmeans", "fit", "--data", str(proc), "--k", "3", "--voxels-per-crop", "16", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--shard", "slurm", "--set", "montage=false"])
    assert result.exit_code == 0, result.output
    assert "1/2: sampled 1 of 2 groups" in result.output and "not yet" in result.output
    assert (proc / "kmeans" / "k3_filterbank_bilinear.sample" / "case00_t1.npy").is_file()
    assert not (proc / "kmeans" / "k3_filterbank_bilinear.npy").exists()
