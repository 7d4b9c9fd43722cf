"""Finetuning options of the thesis family: LiTS splits and grid, the BraTS ratio order, selection by val_loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radiossl.data.splits import Splits, training_subset
from radiossl.downstream.config import load_task_config
from radiossl.downstream.finetune import finetune
from radiossl.downstream.tasks.lits import LiTSConfig, LiTSTask, per_crop_minmax, to_thesis_grid


def test_val_is_test_validates_on_the_test_cases_without_a_carve_out(lits_root: Path) -> None:
    fixed = LiTSTask(LiTSConfig(), lits_root)
    thesis = LiTSTask(LiTSConfig(val_is_test=True), lits_root)
    cases = fixed.list_cases()
    carved, kept = fixed.splits(cases, seed=0), thesis.splits(cases, seed=0)
    assert kept.test == carved.test and kept.val == []
    assert sorted(kept.train) == sorted(carved.train + carved.val) and carved.val  # the carve-out is back


def test_ratio_order_given_takes_the_first_cases_in_list_order() -> None:
    splits = Splits(train=[f"p{i}" for i in (5, 3, 9, 1, 7)], val=[], test=[])
    assert training_subset(splits, 0.4, seed=0, order="given") == ["p3", "p5"]  # p5, p3 come first
    seeded = [training_subset(splits, 0.4, seed=s) for s in range(6)]
    assert all(len(subset) == 2 for subset in seeded) and len({tuple(s) for s in seeded}) > 1


def test_the_thesis_grid_subsamples_swaps_and_min_maxes() -> None:
    image = np.arange(5 * 4 * 2, dtype=np.float32).reshape(1, 5, 4, 2)
    grid = to_thesis_grid(image)
    assert grid.shape == (1, 2, 2, 2)  # (Y/2, X/2, Z): floor(4/2) x floor(5/2)
    assert grid[0, 1, 0, 1] == image[0, 0, 2, 1]  # (y=1, x=0) <- input (x=0, y=2)
    crop = per_crop_minmax(grid)
    assert crop.min() == 0.0 and crop.max() == 1.0
    assert per_crop_minmax(np.full((1, 2, 2, 2), 3.0, np.float32)).max() == 0.0


def test_the_thesis_grid_needs_the_native_spacing() -> None:
    with pytest.raises(ValueError, match="spacing and zoom to null"):
        LiTSConfig(grid="thesis")


def test_lits_thesis_finetune_selects_the_checkpoint_by_the_lowest_val_loss(lits_root: Path, tmp_path: Path) -> None:
    flags = {
        "task": {"name": "lits", "grid": "thesis", "spacing": None, "zoom": None, "val_is_test": True},
        "data": {"root": str(lits_root), "crop_size": [16, 16, 8], "ratio": 1.0},
        "model": {"width": 0.125},
        "optim": {"epochs": 2, "batch_size": 2},
        "runtime": {"device": "cpu", "workers": 1},
        "logging": {"progress": False},
        "validation": {"monitor": "val_loss"},
        "loss": {"legacy_double_sigmoid": True},
        "augment": {"enabled": False},
        "sampling": {"foreground_fraction": 0.0},
        "out": str(tmp_path),
    }
    result = finetune(load_task_config("finetune", "lits", flags=flags))
    epochs = [
        json.loads(line)
        for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line).get("type") == "epoch"
    ]
    losses = [record["val_loss"] for record in epochs]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert result.best_metric == pytest.approx(min(losses))
    splits = json.loads((result.run_dir / "splits.json").read_text())
    assert splits["val"] == [] and splits["test"] and len(splits["train_subset"]) == len(splits["train"])
