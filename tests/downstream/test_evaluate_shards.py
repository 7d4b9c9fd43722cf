"""evaluate split across shards: shards (+ merge) = the unsharded run, resume, refusals, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.downstream.config import load_task_config
from radiossl.downstream.evaluate import EvaluateResult, evaluate
from radiossl.errors import ConfigError, DataError
from radiossl.models import UNet3D, model_spec
from radiossl.utils.sharding import Shard


def _weights(path: Path, seed: int) -> Path:
    """An untrained 4-in, 3-out BraTS network (its Dice values differ from case to case)."""
    torch.manual_seed(seed)
    net = UNet3D(in_channels=4, out_channels=3, width=0.125, norm="group")
    torch.save({"format_version": 1, "model": net.state_dict(), "model_spec": model_spec(net)}, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _weights(tmp_path_factory.mktemp("weights") / "net.pt", seed=0)


def _run(root: Path, weights: Path, out: Path, save_predictions: bool = False, **kwargs: Any) -> EvaluateResult:
    """Evaluate the first 4 cases of the split (one sliding window per case)."""
    flags = {
        "data": {"root": str(root), "crop_size": [32, 32, 24]},
        "weights": str(weights),
        "out": str(out),
        "split": "all",
        "max_cases": 4,
        "save_predictions": save_predictions,
        "runtime": {"device": "cpu"},
    }
    return evaluate(load_task_config("evaluate", "brats", flags=flags), **kwargs)


def _summary(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text())
    summary["config"].pop("out")
    return summary


def test_shards_then_the_last_writes_the_unsharded_metrics_and_summary(
    brats_root: Path, weights: Path, tmp_path: Path
) -> None:
    whole = _run(brats_root, weights, tmp_path / "whole", save_predictions=True)
    assert whole.complete and whole.evaluated == 4
    first = _run(brats_root, weights, tmp_path / "sharded", save_predictions=True, shard=Shard(1, 2))
    assert not first.complete and first.evaluated == 2 and first.summary == {}
    assert first.missing == ["Brats18_PHANTOM_001_1", "Brats18_PHANTOM_003_1"]
    assert not (tmp_path / "sharded" / "summary.json").exists()  # a shard alone claims no whole
    assert not (tmp_path / "sharded" / "metrics.csv").exists()
    last = _run(brats_root, weights, tmp_path / "sharded", save_predictions=True, shard=Shard(2, 2))
    assert last.complete and last.evaluated == 2
    assert (tmp_path / "sharded" / "metrics.csv").read_text() == (tmp_path / "whole" / "metrics.csv").read_text()
    assert _summary(tmp_path / "sharded") == _summary(tmp_path / "whole")
    assert len(whole.rows) == 4 * 3 and last.rows == whole.rows
    assert sorted(p.name for p in (tmp_path / "sharded" / "predictions").iterdir()) == sorted(
        p.name for p in (tmp_path / "whole" / "predictions").iterdir()
    )


def test_merge_only_needs_every_case_and_a_rerun_skips_evaluated_cases(
    brats_root: Path, weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    _run(brats_root, weights, out, shard=Shard(1, 3))
    with pytest.raises(DataError, match=r"2 of 4 cases not done yet \(Brats18_PHANTOM_001_1, .*--merge-only"):
        _run(brats_root, weights, out, merge_only=True)
    assert _run(brats_root, weights, out, shard=Shard(1, 3)).evaluated == 0
    _run(brats_root, weights, out, shard=Shard(2, 3))
    _run(brats_root, weights, out, shard=Shard(3, 3))
    metrics = (out / "metrics.csv").read_text()
    (out / "metrics.csv").unlink()
    (out / "summary.json").unlink()
    merged = _run(brats_root, weights, out, merge_only=True)
    assert merged.complete and merged.evaluated == 0 and (out / "metrics.csv").read_text() == metrics
    assert _run(brats_root, weights, out).evaluated == 0  # unsharded, same weights and settings: resumed


def test_shards_of_other_weights_are_refused_and_an_unsharded_run_replaces_them(
    brats_root: Path, weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    _run(brats_root, weights, out, shard=Shard(1, 2))
    other = _weights(tmp_path / "other.pt", seed=1)
    with pytest.raises(ConfigError, match=r"holds results of other settings \(weights_sha256: .*run without --shard"):
        _run(brats_root, other, out, shard=Shard(2, 2))
    replaced = _run(brats_root, other, out)
    assert replaced.complete and replaced.evaluated == 4  # the old fragments were not reused
    assert _summary(out)["weights"] == str(other)


def test_results_of_an_older_release_are_kept_while_the_new_settings_are_at_their_defaults(
    brats_root: Path, weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    assert _run(brats_root, weights, out, shard=Shard(1, 2)).evaluated == 2
    record = json.loads((out / "evaluate.json").read_text())
    assert record["config"]["sliding_window"].pop("overlap") == 0.5  # a setting added since, at its default
    (out / "evaluate.json").write_text(json.dumps(record))
    resumed = _run(brats_root, weights, out)  # unsharded: would replace results of other settings
    assert resumed.complete and resumed.evaluated == 2


def test_a_failed_case_is_listed_by_the_merge_and_tried_again_on_a_rerun(
    brats_root: Path, weights: Path, tmp_path: Path
) -> None:
    root = tmp_path / "brats"
    shutil.copytree(brats_root, root)
    image = next(root.glob("LGG/Brats18_PHANTOM_001_1/*_t1.nii.gz"))
    good = image.read_bytes()
    image.write_bytes(good[:100])  # truncated
    out = tmp_path / "eval"
    first = _run(root, weights, out, shard=Shard(2, 2))
    assert [f["case"] for f in first.failures] == ["Brats18_PHANTOM_001_1"]
    last = _run(root, weights, out, shard=Shard(1, 2))
    assert last.complete and [f["case"] for f in last.failures] == ["Brats18_PHANTOM_001_1"]
    assert [f["case"] for f in _summary(out)["failures"]] == ["Brats18_PHANTOM_001_1"]
    image.write_bytes(good)
    fixed = _run(root, weights, out)
    assert fixed.evaluated == 1 and not fixed.failures and _summary(out)["cases"] == 4


def test_cli_shards_exit_2_for_a_value_that_names_no_shard_and_report_a_part(
    brats_root: Path, weights: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    base = ["evaluate", "--task", "brats", "--data", str(brats_root), "--weights", str(weights), "--split", "all"]
    base += ["--out", str(tmp_path / "eval"), "--device", "cpu", "--set", "data.crop_size=[32,32,24]"]
    base += ["--set", "max_cases=4"]
    bad = runner.invoke(app, [*base, "--shard", "0/2"])
    assert bad.exit_code == 2 and "--shard 0/2: shards count from 1; use 1/2 or 2/2" in bad.output
    part = runner.invoke(app, [*base, "--shard", "2/2"])
    assert part.exit_code == 0, part.output
    assert "shard 2/2: 2 case(s) evaluated" in part.output and "--merge-only" in part.output
    assert not (tmp_path / "eval" / "summary.json").exists()
    merged = runner.invoke(app, [*base, "--merge-only"])
    assert merged.exit_code == 1 and "2 of 4 cases not done yet" in merged.output
