"""A sweep's settings, methods, cells and labelled subsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiossl.errors import ConfigError
from radiossl.sweep.plan import (
    THESIS_RATIOS,
    Cell,
    identity,
    load_sweep_config,
    parse_methods,
    plan_cells,
    plan_subsets,
    ratio_label,
)


def _config(root: Path, weights: list[str], **sweep: object) -> object:
    flags = {"data": {"root": str(root)}, "sweep": {"weights": weights, **sweep}}
    return load_sweep_config("brats", flags=flags)


def test_defaults_are_the_thesis_grid_and_a_thesis_finetune_config_is_a_sweep_config() -> None:
    config = load_sweep_config(file="thesis/finetune/brats-r040", overrides=["sweep.seeds=2"])
    assert config.sweep.ratios == list(THESIS_RATIOS) and config.sweep.seeds == 2
    assert config.optim.epochs == 300 and config.model.norm == "group"
    with pytest.raises(ConfigError, match="ratios"):
        load_sweep_config("brats", overrides=["sweep.ratios=[0.0, 0.5]"])


def test_cells_are_named_readably_with_one_scratch_cell_per_ratio_and_seed(
    brats_root: Path, checkpoints: list[Path]
) -> None:
    config = _config(brats_root, [str(checkpoints[0]), "scratch"], ratios=[0.05, 1.0], train=["all", "decoder"])
    methods = parse_methods(config.sweep.weights)
    assert [m.name for m in methods] == ["alpha", "scratch"]  # the method name stored in the checkpoint
    cells = plan_cells(config, methods)
    assert [c.id for c in cells] == [
        "alpha-r005-s1-encoder-all",
        "alpha-r005-s1-encoder-decoder",
        "scratch-r005-s1",
        "alpha-r005-s2-encoder-all",
        "alpha-r005-s2-encoder-decoder",
        "scratch-r005-s2",
        "alpha-r005-s3-encoder-all",
        "alpha-r005-s3-encoder-decoder",
        "scratch-r005-s3",
        *[c.id for c in cells[9:]],
    ]
    assert len(cells) == 18 and cells[-1].id == "scratch-r100-s3"
    assert Cell.from_dict(cells[4].as_dict()) == cells[4]
    assert ratio_label(0.025) == "r2p5" and ratio_label(0.3) == "r030"


def test_methods_need_files_and_distinct_names(tmp_path: Path, checkpoints: list[Path]) -> None:
    with pytest.raises(ConfigError, match="nothing to compare"):
        parse_methods([])
    with pytest.raises(ConfigError, match=r"missing\.pt: no such checkpoint file"):
        parse_methods([str(tmp_path / "missing.pt")])
    with pytest.raises(ConfigError, match="name them: --weights NAME=PATH"):
        parse_methods([str(checkpoints[0]), str(checkpoints[0])])
    named = parse_methods([f"first={checkpoints[0]}", f"second={checkpoints[0]}", "scratch"])
    assert [m.name for m in named] == ["first", "second", "scratch"] and named[0].sha256 == named[1].sha256


def test_subsets_are_nested_per_seed_and_shared_by_every_method(brats_root: Path, checkpoints: list[Path]) -> None:
    config = _config(brats_root, [str(checkpoints[0]), "scratch"], ratios=[0.1, 0.5, 1.0], seeds=2)
    planned = plan_subsets(config)
    for seed in ("1", "2"):
        subsets = planned[seed]["subsets"]
        assert set(subsets["0.1"]) <= set(subsets["0.5"]) <= set(subsets["1"]) == set(planned[seed]["train"])
        assert len(subsets["0.1"]) == 1 and len(subsets["0.5"]) == len(subsets["1"]) // 2
        assert not set(planned[seed]["test"]) & set(planned[seed]["train"])
    assert planned["1"]["test"] == planned["2"]["test"]  # every seed is scored on the same cases
    # The cells of one ratio and seed train on the planned subset whichever method they start from.
    from radiossl.downstream.finetune import FinetuneTask
    from radiossl.sweep.plan import cell_config, sweep_config_class

    finetune_class = sweep_config_class("brats")[0].__base__
    methods = parse_methods(config.sweep.weights)
    for cell in plan_cells(config, methods):
        method = next(m for m in methods if m.name == cell.method)
        task = FinetuneTask(finetune_class.model_validate(cell_config(config, cell, method, Path("x"))))
        task.prepare_splits()
        assert task.train_ids == planned[str(cell.seed)]["subsets"][f"{cell.ratio:g}"]


def test_identity_leaves_out_what_differs_between_machines(brats_root: Path, checkpoints: list[Path]) -> None:
    here = _config(brats_root, [str(checkpoints[0]), "scratch"])
    there = load_sweep_config(
        "brats",
        flags={
            "data": {"root": "/elsewhere", "workers": 8},
            "runtime": {"device": "cuda", "workers": 8},
            "out": "/cluster/sweep",
            "sweep": {"weights": [str(checkpoints[0]), "scratch"]},
        },
    )
    methods = parse_methods(here.sweep.weights)
    cells = plan_cells(here, methods)
    assert identity(here, methods, cells) == identity(there, methods, plan_cells(there, methods))
    other = load_sweep_config("brats", flags={"data": {"root": str(brats_root)}, "optim": {"lr": 0.5}})
    assert identity(other, methods, cells) != identity(here, methods, cells)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ratios", "0.1,abc"], "--ratios '0.1,abc': 'abc' is not a number"),
        (["--ratios", "1.5"], "label ratios must be in (0, 1]"),
        (["--weights", "nowhere.pt"], "nowhere.pt: no such checkpoint file"),
        (["--shard", "3/2"], "--shard 3/2: there are only 2 shards"),
        (["--transfer", "decoder"], "sweep.transfer"),
    ],
)
def test_bad_sweep_options_are_one_line_usage_errors(
    brats_root: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from radiossl.cli import app

    base = ["sweep", "--task", "brats", "--data", str(brats_root), "--out", str(tmp_path / "s"), "--weights", "scratch"]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "s" / "cells").exists()
