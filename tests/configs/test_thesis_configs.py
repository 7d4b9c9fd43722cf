"""The shipped `thesis` (exact) and `recommended` (fixed) families: complete, valid, and as docs/reproducing.md says.

The `thesis` family must set every legacy switch that the table in docs/reproducing.md promises; the
`recommended` family has the same hyper-parameters with none of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from radiossl.clustering.config import KMeansConfig, KMeansPredictConfig, load_kmeans_config
from radiossl.config import load_config_file_into, read_config_file
from radiossl.data.preprocess.config import PreprocessConfig
from radiossl.downstream.config import load_task_config
from radiossl.pretext.base import load_pretrain_config
from radiossl.shipped_configs import shipped_configs

FAMILIES = ("thesis", "recommended")
REPRODUCING = Path(__file__).parents[2] / "docs" / "reproducing.md"


def _names(family: str, kind: str) -> list[str]:
    return [name for name in shipped_configs() if name.startswith(f"{family}/{kind}/")]


def _stems(family: str, kind: str) -> set[str]:
    return {name.rsplit("/", 1)[-1] for name in _names(family, kind)}


@pytest.mark.parametrize("family", FAMILIES)
def test_there_is_a_config_for_every_thesis_row(family: str) -> None:
    names = _stems(family, "pretrain")
    for dataset in ("luna16", "brats18", "lits17"):
        assert f"patch-cluster-k50-{dataset}" in names
        assert f"pcrlv2-{dataset}" in names
    assert {"pixel-cluster-k10-brats18", "pixel-cluster-k10-lits17"} <= names
    ratios = _stems(family, "finetune")
    for task in ("brats", "lits"):
        for ratio in ("001", "005", "010", "020", "030", "040", "100"):
            assert f"{task}-r{ratio}" in ratios
    assert _stems(family, "kmeans") == {"fit-k10", "predict-k10"}


def test_both_families_hold_the_same_configs_in_the_same_stages() -> None:
    for family in FAMILIES:
        names = [name for name in shipped_configs() if name.startswith(f"{family}/")]
        kinds = ("pretrain", "finetune", "preprocess", "kmeans", "sweep")
        assert len(names) == 36
        assert sorted(name for kind in kinds for name in _names(family, kind)) == names
    thesis, recommended = ({n.split("/", 1)[1] for n in shipped_configs() if n.startswith(f"{f}/")} for f in FAMILIES)
    assert thesis == recommended


def _load(name: str) -> Any:
    kind = name.split("/")[1]
    if kind == "pretrain":
        return load_pretrain_config(file=name)
    if kind == "finetune":
        return load_task_config("finetune", file=name)
    if kind == "sweep":
        from radiossl.sweep.plan import load_sweep_config

        return load_sweep_config(file=name)
    if kind == "preprocess":
        return load_config_file_into(PreprocessConfig, name)
    return load_kmeans_config(KMeansConfig if name.endswith("fit-k10") else KMeansPredictConfig, name)


@pytest.mark.parametrize("name", [n for n in shipped_configs() if n.split("/")[0] in FAMILIES])
def test_every_config_validates(name: str) -> None:
    config = _load(name)
    kind = name.split("/")[1]
    if kind == "pretrain":
        assert config.model.width == 1.0 and config.optim.epochs == 240
    elif kind == "finetune":
        assert config.optim.epochs == 300 and config.transfer == "encoder"
    elif kind == "preprocess":
        assert config.dataset in {"brats18", "lits17", "luna16"}
    elif kind == "sweep":
        assert config.optim.epochs == 300 and config.sweep.transfer == ["encoder"]


@pytest.mark.parametrize("name", [n for n in shipped_configs() if n.startswith("recommended/")])
def test_recommended_has_the_thesis_hyper_parameters(name: str) -> None:
    thesis, recommended = _load("thesis/" + name.split("/", 1)[1]), _load(name)
    if hasattr(recommended, "optim"):
        assert thesis.optim == recommended.optim
        assert thesis.data.crop_size == recommended.data.crop_size and thesis.data.ratio == recommended.data.ratio
        assert thesis.model == recommended.model
    if hasattr(recommended, "kmeans"):
        assert thesis.kmeans.k == recommended.kmeans.k and thesis.features.extractor == recommended.features.extractor


# --------------------------------------------------------------------------------------- promised switches


def _set(getter: Callable[[Any], Any], value: Any) -> Callable[[Any], bool]:
    return lambda config: getter(config) == value


def _is_lits(name: str) -> bool:
    return "/lits-" in name


#: switch (as written in the docs table) -> (configs it applies to, check on the loaded thesis config)
PROMISES: dict[str, tuple[Callable[[str], bool], Callable[[Any], bool]]] = {
    "method.legacy: true": (
        lambda n: "/pretrain/" in n and "cluster" in n,
        _set(lambda c: c.method.legacy, True),
    ),
    "loss.legacy_double_sigmoid: true": (
        lambda n: "/finetune/" in n,
        _set(lambda c: c.loss.legacy_double_sigmoid, True),
    ),
    "adapt_in_channels: repeat": (lambda n: "/finetune/" in n, _set(lambda c: c.adapt_in_channels, "repeat")),
    "augment.enabled: false": (lambda n: "/finetune/" in n, _set(lambda c: c.augment.enabled, False)),
    "sampling.foreground_fraction: 0": (
        lambda n: "/finetune/" in n,
        _set(lambda c: c.sampling.foreground_fraction, 0.0),
    ),
    "validation.monitor: val_loss": (lambda n: "/finetune/" in n, _set(lambda c: c.validation.monitor, "val_loss")),
    "ratio_order: given": (lambda n: "/finetune/brats-" in n, _set(lambda c: c.ratio_order, "given")),
    "task.val_is_test: true": (lambda n: "/finetune/" in n and _is_lits(n), _set(lambda c: c.task.val_is_test, True)),
    "task.grid: thesis": (lambda n: "/finetune/" in n and _is_lits(n), _set(lambda c: c.task.grid, "thesis")),
    "kmeans.legacy: true": (lambda n: n.endswith("/kmeans/fit-k10"), _set(lambda c: c.kmeans.legacy, True)),
    "legacy: true": (lambda n: n.endswith("/kmeans/predict-k10"), _set(lambda c: c.legacy, True)),
    "rejection.rule: thesis": (
        lambda n: "/preprocess/" in n and "-cluster-" in n,
        lambda c: c.rejection is not None and c.rejection.rule == "thesis" and c.rejection.threshold == 0.425,
    ),
    "intensity.mode: ct-window": (
        lambda n: n.endswith("/preprocess/brats18-pcrlv2"),
        _set(lambda c: getattr(c.intensity, "mode", None), "ct-window"),
    ),
    "method.targets: thesis-k10": (
        lambda n: "/pretrain/pixel-cluster" in n,
        _set(lambda c: c.method.targets, "thesis-k10"),
    ),
}


def _docs_switches() -> set[str]:
    """The switches the table in docs/reproducing.md says the thesis family sets."""
    text = REPRODUCING.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("|") and "| thesis" in line]
    found = set()
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        found.update(re.findall(r"`([^`]+)`", cells[1]))
    return found


def test_the_docs_table_and_this_test_promise_the_same_switches() -> None:
    assert _docs_switches() == set(PROMISES)


@pytest.mark.parametrize("switch", sorted(PROMISES))
def test_the_thesis_family_sets_every_promised_switch(switch: str) -> None:
    applies, check = PROMISES[switch]
    names = [n for n in shipped_configs() if n.startswith("thesis/") and applies(n)]
    assert names, f"no thesis config for {switch}"
    for name in names:
        assert check(_load(name)), f"{name} does not set {switch}"
        fixed = "recommended/" + name.split("/", 1)[1]
        assert not check(_load(fixed)), f"{fixed} sets the legacy {switch}"


def test_recommended_configs_say_which_thesis_config_they_fix() -> None:
    for name, entry in shipped_configs().items():
        if name.startswith("recommended/"):
            assert f"thesis/{name.split('/', 1)[1]}" in entry.read_text(encoding="utf-8")
            assert "legacy" not in str(read_config_file(name))


@pytest.mark.parametrize("name", [name for family in FAMILIES for name in _names(family, "sweep")])
def test_sweep_configs_are_the_finetune_recipe_over_the_thesis_grid(name: str) -> None:
    from radiossl.sweep.plan import THESIS_RATIOS, load_sweep_config

    config = load_sweep_config(file=name)
    recipe = load_task_config("finetune", file=f"{name.split('/')[0]}/finetune/{config.task.name}-r040")
    assert config.sweep.ratios == list(THESIS_RATIOS) and config.sweep.seeds == 3
    assert (config.optim, config.model, config.data.crop_size) == (recipe.optim, recipe.model, recipe.data.crop_size)
    assert (config.loss, config.adapt_in_channels, config.validation) == (
        recipe.loss,
        recipe.adapt_in_channels,
        recipe.validation,
    )
    assert config.sweep.protocol == ("thesis-crops" if name.startswith("thesis/") else "full")
