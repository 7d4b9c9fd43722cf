"""The baseline configs shipped in radiossl/configs/baselines validate and equal each method's defaults."""

from __future__ import annotations

import pytest

from radiossl.pretext.base import load_pretrain_config
from radiossl.shipped_configs import shipped_configs

NAMES = [name for name in shipped_configs() if name.startswith("baselines/pretrain/")]


def test_every_compared_method_has_a_config() -> None:
    assert {name.rsplit("/", 1)[-1] for name in NAMES} == {"mae-luna16", "simclr-luna16", "voco-luna16"}


@pytest.mark.parametrize("name", NAMES)
def test_a_baseline_config_is_its_methods_defaults_at_full_width(name: str) -> None:
    from_file = load_pretrain_config(file=name)
    defaults = load_pretrain_config(from_file.method.name)
    assert from_file.model.width == 1.0
    for section in ("method", "model", "optim", "data"):
        assert getattr(from_file, section) == getattr(defaults, section), section
