"""VoCo: defaults, the crops and their targets in the step, the loss terms, bad grids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from radiossl.engine.protocol import StepContext
from radiossl.errors import ConfigError
from radiossl.ops.crop_grid import grid_boxes, overlap_fractions
from radiossl.pretext.base import load_pretrain_config
from radiossl.pretext.voco import VoCo

CUBE = (32, 32, 16)


def _method(*overrides: str) -> VoCo:
    base = ["model.width=0.125", "data.crop_size=[32,32,16]", "method.hidden_dim=32", "method.out_dim=16"]
    return VoCo(load_pretrain_config("voco", overrides=[*base, *overrides]))


def _context(index: int = 0) -> StepContext:
    return StepContext(epoch=0, total_epochs=3, step=index, device=torch.device("cpu"), extra={"batch_index": index})


def test_defaults() -> None:
    cfg = load_pretrain_config("voco")
    m: Any = cfg.method
    o = cfg.optim
    assert (m.grid, m.crops, m.hidden_dim, m.out_dim, m.head_layers, m.pooled) == ((2, 2, 1), 4, 2048, 2048, 3, "all")
    assert (m.positive_weight, m.reg_weight, m.flip_prob) == ("overlap", 1.0, 0.2)
    assert (o.optimizer, o.lr, o.weight_decay, o.batch_size, o.warmup_epochs) == ("adamw", 1e-4, 0.01, 2, 5.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method.grid=[3, 2, 1]"], "not divisible by the grid"),
        (["data.crop_size=[48,32,16]", "method.grid=[4, 2, 1]"], "multiple of 8"),
        (["method.grid=[1, 1, 1]"], "at least 2 base crops"),
    ],
)
def test_bad_grids_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _method(*overrides)


def test_crops_are_cut_where_their_targets_say() -> None:
    method = _method("method.flip_prob=0", "method.crops=5")
    x, y, z = torch.meshgrid(*(torch.arange(s) for s in CUBE), indexing="ij")
    cube = (x * 10_000 + y * 100 + z).float().view(1, 1, *CUBE).repeat(2, 1, 1, 1, 1)  # voxel value = position
    bases, crops, overlaps = method.make_crops(cube, np.random.default_rng(0))
    assert bases.shape == (8, 1, 16, 16, 16) and crops.shape == (10, 1, 16, 16, 16) and overlaps.shape == (2, 5, 4)
    for row, crop in enumerate(crops):
        corner = int(crop[0, 0, 0, 0])
        start = (corner // 10_000, corner // 100 % 100, corner % 100)
        box = torch.tensor([[start[0], start[0] + 16, start[1], start[1] + 16, start[2], start[2] + 16]])
        assert torch.equal(crop[0], cube[0, 0, box[0, 0] : box[0, 1], box[0, 2] : box[0, 3], box[0, 4] : box[0, 5]])
        assert torch.allclose(overlaps[row // 5, row % 5], overlap_fractions(box, grid_boxes(CUBE, (2, 2, 1)))[0])
    assert not torch.equal(overlaps[0], overlaps[1])  # each cube gets its own crops


def test_step_is_finite_and_reaches_every_parameter() -> None:
    method = _method()
    model = method.build_model()
    out = method.training_step(model, torch.rand(2, 1, *CUBE), _context())
    assert torch.isfinite(out.loss)
    assert float(out.loss.detach()) == pytest.approx(
        out.metrics["prediction"] + out.metrics["regularisation"], rel=1e-5
    )
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
