"""Finetune/evaluate configs: layering, task sections, errors, the `radiossl config` hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiossl.config import build_config
from radiossl.downstream.config import EvaluateConfig, FinetuneConfig, load_task_config, task_config_class
from radiossl.errors import ConfigError
from radiossl.run_configs import load_config


def test_finetune_defaults_are_the_thesis_recipe() -> None:
    cfg = load_task_config("finetune", "brats")
    assert isinstance(cfg, FinetuneConfig)
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.schedule, cfg.optim.step_size, cfg.optim.gamma) == (
        "adam",
        1e-3,
        "step",
        50,
        0.5,
    )
    assert (cfg.optim.batch_size, cfg.optim.epochs, cfg.data.ratio) == (4, 300, 0.4)
    assert (cfg.model.norm, cfg.model.skip_connections) == ("group", True)
    assert cfg.data.crop_size == (128, 128, 128) and cfg.task.et_label == 4
    assert load_task_config("finetune", "lits").data.crop_size == (128, 128, 64)
    assert (cfg.transfer, cfg.train, cfg.weights) == ("encoder", "all", None)


def test_layers_file_overrides_flags(tmp_path: Path) -> None:
    file = tmp_path / "ft.yaml"
    file.write_text("task:\n  name: brats\n  et_label: 3\noptim:\n  lr: 0.01\n  epochs: 5\n")
    cfg = load_task_config("finetune", None, file, ["optim.epochs=7"], {"optim": {"lr": 0.5}})
    assert (cfg.task.et_label, cfg.optim.epochs, cfg.optim.lr) == (3, 7, 0.5)
    with pytest.raises(ConfigError, match=r"task\.name is 'brats' but --task is 'lits'"):
        load_task_config("finetune", "lits", file)


def test_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"task\.et_lable"):
        load_task_config("finetune", "brats", overrides=["task.et_lable=3"])
    with pytest.raises(ConfigError, match="transfer"):
        load_task_config("finetune", "brats", overrides=["transfer=decoder"])
    with pytest.raises(ConfigError, match="no task"):
        load_task_config("finetune")


def test_evaluate_config() -> None:
    cfg = load_config("evaluate", "brats", overrides=["protocol=thesis-crops", "empty_policy.both_empty=nan"])
    assert isinstance(cfg, EvaluateConfig)
    assert (cfg.protocol, cfg.split, cfg.hd_percentile, cfg.empty_policy.both_empty) == (
        "thesis-crops",
        "test",
        95.0,
        "nan",
    )
    sw = cfg.sliding_window
    assert (sw.overlap, sw.mode, sw.sw_batch_size, sw.roi) == (0.5, "gaussian", 1, None)
    assert cfg.data.crop_size == (128, 128, 128)
    assert cfg.task.model_fields_set == {"name"}


def test_task_config_class_for_config_show() -> None:
    for stage in ("finetune", "evaluate"):
        config_class, defaults = task_config_class("nnunet", stage)  # type: ignore[arg-type]
        cfg = build_config(config_class, [defaults])
        assert cfg.task.name == "nnunet"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="stage"):
        task_config_class("brats", "pretrain")  # type: ignore[arg-type]
