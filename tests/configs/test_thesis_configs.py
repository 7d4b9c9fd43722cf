"""Every ready-made config in configs/ validates against the current schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiossl.config import load_config_file_into
from radiossl.data.preprocess.config import PreprocessConfig
from radiossl.downstream.config import load_task_config
from radiossl.pretext.base import load_pretrain_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _files(kind: str) -> list[Path]:
    return sorted((CONFIGS / "thesis" / kind).glob("*.yaml"))


def test_there_is_a_config_for_every_thesis_row() -> None:
    names = {p.stem for p in _files("pretrain")}
    for dataset in ("luna16", "brats18", "lits17"):
        assert f"patch-cluster-k50-{dataset}" in names
        assert f"pcrlv2-{dataset}" in names
    assert {"pixel-cluster-k10-brats18", "pixel-cluster-k10-lits17"} <= names
    ratios = {p.stem for p in _files("finetune")}
    for task in ("brats", "lits"):
        for ratio in ("001", "005", "010", "020", "030", "040", "100"):
            assert f"{task}-r{ratio}" in ratios


@pytest.mark.parametrize("path", _files("pretrain"), ids=lambda p: p.stem)
def test_pretrain_configs_validate(path: Path) -> None:
    config = load_pretrain_config(file=path)
    assert config.model.width == 1.0 and config.optim.epochs == 240


@pytest.mark.parametrize("path", _files("finetune"), ids=lambda p: p.stem)
def test_finetune_configs_validate(path: Path) -> None:
    config = load_task_config("finetune", file=path)
    assert config.optim.epochs == 300 and config.transfer == "encoder"


@pytest.mark.parametrize("path", _files("preprocess"), ids=lambda p: p.stem)
def test_preprocess_configs_validate(path: Path) -> None:
    config = load_config_file_into(PreprocessConfig, path)
    assert config.dataset in {"brats18", "lits17", "luna16"}
