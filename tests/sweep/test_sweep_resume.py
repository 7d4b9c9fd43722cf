"""A sweep folder resumes when its ``sweep.json`` is of these settings, including one of an older release."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from radiossl.errors import ConfigError
from radiossl.sweep.plan import load_sweep_config, parse_methods, plan_cells
from radiossl.sweep.run import claim_sweep_folder
from tests.older_records import rewrite


def _claim(root: Path, out: Path, **optim: Any) -> None:
    flags = {"data": {"root": str(root)}, "out": str(out), "sweep": {"weights": ["scratch"], "ratios": [1.0]}}
    config = load_sweep_config("brats", flags={**flags, "optim": optim} if optim else flags)
    methods = parse_methods(config.sweep.weights)
    claim_sweep_folder(config, methods, plan_cells(config, methods))


def _edit(out: Path, drop: tuple[str, ...] = (), **add: Any) -> None:
    """Rewrite ``sweep.json`` as another release would have: without the finetune settings ``drop``
    (dotted), with the finetune settings ``add``."""
    rewrite(out / "sweep.json", "finetune", drop, **add)


def test_a_sweep_of_an_older_release_resumes_while_the_new_finetune_settings_are_at_their_defaults(
    brats_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    _claim(brats_root, out)
    # optim.patience and the whole sampling section came after this sweep; their defaults did what it did
    _edit(out, drop=("optim.patience", "sampling"))
    before = (out / "sweep.json").read_text()
    _claim(brats_root, out)
    assert (out / "sweep.json").read_text() == before  # accepted as it is


def test_a_sweep_of_an_older_release_is_refused_when_a_new_setting_is_not_at_its_default(
    brats_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    _claim(brats_root, out, patience=5)
    _edit(out, drop=("optim.patience",))
    with pytest.raises(ConfigError, match=r"other settings \(finetune\.optim\.patience: \(absent\) -> 5\)"):
        _claim(brats_root, out, patience=5)
    # the default is the field's (1e-4), not the brats task's (0.0) that this run has
    _edit(out, drop=("optim.weight_decay",))
    with pytest.raises(ConfigError, match=r"finetune\.optim\.weight_decay: \(absent\) -> 0\.0"):
        _claim(brats_root, out, patience=5)


def test_a_real_change_or_a_setting_this_release_lacks_is_refused_naming_the_folder(
    brats_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    _claim(brats_root, out)
    with pytest.raises(
        ConfigError, match=re.escape(f"{out} holds results of other settings (finetune.optim.lr: 0.001 -> 0.1)")
    ):
        _claim(brats_root, out, lr=0.1)
    _edit(out, retired=True)
    with pytest.raises(ConfigError, match=r"\(finetune\.retired: true -> \(absent\)\); use another --out"):
        _claim(brats_root, out)
