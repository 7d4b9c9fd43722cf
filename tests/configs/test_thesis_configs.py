"""Every thesis config shipped in radiossl/configs/thesis validates against the current schemas, by name."""

from __future__ import annotations

import pytest

from radiossl.config import load_config_file_into
from radiossl.data.preprocess.config import PreprocessConfig
from radiossl.downstream.config import load_task_config
from radiossl.pretext.base import load_pretrain_config
from radiossl.shipped_configs import shipped_configs


def _names(kind: str) -> list[str]:
    return [name for name in shipped_configs() if name.startswith(f"thesis/{kind}/")]


def test_there_is_a_config_for_every_thesis_row() -> None:
    names = {name.rsplit("/", 1)[-1] for name in _names("pretrain")}
    for dataset in ("luna16", "brats18", "lits17"):
        assert f"patch-cluster-k50-{dataset}" in names
        assert f"pcrlv2-{dataset}" in names
    assert {"pixel-cluster-k10-brats18", "pixel-cluster-k10-lits17"} <= names
    ratios = {name.rsplit("/", 1)[-1] for name in _names("finetune")}
    for task in ("brats", "lits"):
        for ratio in ("001", "005", "010", "020", "030", "040", "100"):
            assert f"{task}-r{ratio}" in ratios


def test_every_thesis_config_is_in_one_of_the_four_stages() -> None:
    thesis = [name for name in shipped_configs() if name.startswith("thesis/")]
    assert len(thesis) == 34
    assert sorted(_names("pretrain") + _names("finetune") + _names("preprocess") + _names("sweep")) == thesis


@pytest.mark.parametrize("name", _names("pretrain"))
def test_pretrain_configs_validate(name: str) -> None:
    config = load_pretrain_config(file=name)
    assert config.model.width == 1.0 and config.optim.epochs == 240


@pytest.mark.parametrize("name", _names("finetune"))
def test_finetune_configs_validate(name: str) -> None:
    config = load_task_config("finetune", file=name)
    assert config.optim.epochs == 300 and config.transfer == "encoder"


@pytest.mark.parametrize("name", _names("sweep"))
def test_sweep_configs_are_the_finetune_recipe_over_the_thesis_grid(name: str) -> None:
    from radiossl.sweep.plan import THESIS_RATIOS, load_sweep_config

    config = load_sweep_config(file=name)
    recipe = load_task_config("finetune", file=f"thesis/finetune/{config.task.name}-r040")
    assert config.sweep.ratios == list(THESIS_RATIOS) and config.sweep.seeds == 3
    assert (config.optim, config.model, config.data.crop_size) == (recipe.optim, recipe.model, recipe.data.crop_size)


@pytest.mark.parametrize("name", _names("preprocess"))
def test_preprocess_configs_validate(name: str) -> None:
    config = load_config_file_into(PreprocessConfig, name)
    assert config.dataset in {"brats18", "lits17", "luna16"}
