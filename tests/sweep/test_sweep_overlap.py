"""The sweep checks each checkpoint's pretraining data against its evaluation cases and reports it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.data.splits import Splits, save_splits
from radiossl.sweep.overlap import OVERLAP_JSON, check_sweep_overlap
from radiossl.sweep.plan import load_sweep_config, parse_methods

runner = CliRunner()


@pytest.fixture(scope="module")
def leaky_checkpoint(brats_root: Path, checkpoints: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretraining checkpoint whose recorded data folder holds every case of ``brats_root`` in its train split."""
    folder = tmp_path_factory.mktemp("leaky")
    ids = sorted(
        p.name for grade in ("HGG", "LGG") if (brats_root / grade).is_dir() for p in (brats_root / grade).iterdir()
    )
    save_splits(folder / "splits.json", Splits(train=ids, val=[], test=[], source="all train"))
    proc = folder / "proc"
    config = PreprocessConfig(
        dataset="brats18",
        data=brats_root,
        out=proc,
        crop_size=(16, 16, 8),
        candidate_sizes=[(16, 16, 8)],
        pairs=1,
        progress=False,
        workers=1,
        splits_file=folder / "splits.json",
    )
    assert preprocess(config).failed == 0
    payload = torch.load(checkpoints[0], weights_only=True)
    payload.update(name="leaky", config={"data": {"root": str(proc)}, "method": {"name": "leaky"}})
    path = folder / "run" / "checkpoint_final.pt"
    path.parent.mkdir()
    torch.save(payload, path)
    return path


def test_each_checkpoint_is_checked_or_skipped_with_why(
    brats_root: Path, checkpoints: list[Path], leaky_checkpoint: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    weights = [str(leaky_checkpoint), str(checkpoints[1]), f"foreign={foreign}", "scratch"]
    config = load_sweep_config("brats", flags={"data": {"root": str(brats_root)}, "sweep": {"weights": weights}})
    entries = check_sweep_overlap(config, parse_methods(config.sweep.weights), tmp_path)
    by_name = {entry["method"]: entry for entry in entries}
    assert by_name["leaky"]["status"] == "overlap"
    assert by_name["leaky"]["report"]["counts"]["by_both"] == by_name["leaky"]["report"]["counts"]["overlap"] > 0
    assert by_name["beta"] == {**by_name["beta"], "status": "skipped"}
    assert "records no pretraining data folder" in by_name["beta"]["reason"]
    assert "not a radiossl pretraining checkpoint" in by_name["foreign"]["reason"]
    assert by_name["scratch"]["reason"].startswith("scratch")
    assert json.loads((tmp_path / OVERLAP_JSON).read_text())["checkpoints"] == entries


def test_the_sweep_report_shows_the_overlap(brats_root: Path, leaky_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--task",
        "brats",
        "--data",
        str(brats_root),
        "--out",
        str(out),
        "--weights",
        str(leaky_checkpoint),
    ]
    args += ["--ratios", "1.0", "--seeds", "1", "--epochs", "1", "--width", "0.125", "--batch-size", "2"]
    args += [
        "--device",
        "cpu",
        "--workers",
        "0",
        "--set",
        "data.crop_size=[16,16,16]",
        "--set",
        "logging.progress=false",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "overlap check, leaky:" in result.output
    [entry] = json.loads((out / OVERLAP_JSON).read_text())["checkpoints"]
    assert entry["status"] == "overlap"
    table = (out / "table.md").read_text()
    assert "## Pretraining data vs evaluation cases" in table and "- leaky: **OVERLAP**:" in table
    assert entry["report"]["matches"][0]["case_id"] in table
