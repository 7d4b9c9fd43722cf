"""Masked image modelling: nnssl's defaults, masking in the step, the SparK variant, checkpoints as UNet3D."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from radiossl.engine.protocol import StepContext
from radiossl.errors import ConfigError
from radiossl.models import UNet3D
from radiossl.ops.block_mask import random_block_mask, visible_at, zero_masked
from radiossl.pretext.base import load_pretrain_config
from radiossl.pretext.mae import MAE, encode

CUBE = (32, 32, 16)


def _method(*overrides: str) -> MAE:
    return MAE(load_pretrain_config("mae", overrides=["model.width=0.125", "data.crop_size=[32,32,16]", *overrides]))


def _context(index: int = 0) -> StepContext:
    return StepContext(epoch=0, total_epochs=3, step=index, device=torch.device("cpu"), extra={"batch_index": index})


def test_defaults_are_nnssls_base_mae_trainer() -> None:
    cfg = load_pretrain_config("mae")
    m: Any = cfg.method
    o = cfg.optim
    assert (m.mask_ratio, m.block_size, m.loss, m.sparse) == (0.75, 16, "l2", False)
    assert (o.optimizer, o.lr, o.momentum, o.weight_decay, o.grad_clip) == ("sgd", 1e-2, 0.99, 3e-5, 12.0)
    assert (cfg.model.skip_connections, cfg.model.norm) == (True, "instance")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method.block_size=12"], "multiple of the block size 12"),
        (["method.sparse=true", "method.block_size=4"], "multiple of the encoder stride 8"),
        (["method.mask_ratio=1.0"], "mask_ratio"),
    ],
)
def test_bad_settings_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _method(*overrides)


@pytest.mark.parametrize("sparse", [False, True])
def test_step_hides_three_quarters_and_reaches_every_parameter(sparse: bool) -> None:
    method = _method("method.block_size=8", f"method.sparse={sparse}")
    model = method.build_model()
    out = method.training_step(model, torch.rand(2, 1, *CUBE), _context())
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    assert out.metrics["hidden_fraction"] == pytest.approx(0.75)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_masks_are_fixed_by_the_batch_index() -> None:
    method = _method()
    cubes = torch.rand(2, 1, *CUBE)
    first = method.mask_batch(cubes, method._rng(_context(3), "step"))[1]
    assert torch.equal(first, method.mask_batch(cubes, method._rng(_context(3), "step"))[1])
    assert not torch.equal(first, method.mask_batch(cubes, method._rng(_context(4), "step"))[1])


SPARK_CASES = {
    # backbone: (cube, block size = the backbone's total stride, mask grid, encoder stages)
    "unet3d": ((32, 32, 16), 8, (4, 4, 2), 4),
    "resenc-l": ((64, 64, 64), 32, (2, 2, 2), 6),
}


@pytest.mark.parametrize("backbone", sorted(SPARK_CASES))
def test_sparse_encoder_output_at_masked_positions_ignores_the_masked_input(backbone: str) -> None:
    if backbone != "unet3d":
        pytest.importorskip("dynamic_network_architectures")
    cube, block, grid, stages = SPARK_CASES[backbone]
    torch.manual_seed(0)
    method = MAE(
        load_pretrain_config(
            "mae",
            overrides=[
                f"model.name={backbone}",
                "model.width=0.125",
                f"data.crop_size={list(cube)}",
                "method.sparse=true",
                f"method.block_size={block}",
            ],
        )
    )
    net: Any = method.build_model().eval()
    rng = np.random.default_rng(0)
    mask = random_block_mask(2, grid, 0.5, rng)
    x = torch.rand(2, 1, *cube)
    hidden = visible_at(mask, cube) == 0
    other = torch.where(hidden, torch.rand_like(x) * 5, x)  # the input is not even zeroed here
    with torch.no_grad():
        sparse = [encode(net, x, mask), encode(net, other, mask)]
        dense = [encode(net, x), encode(net, other)]
    assert len(sparse[0]) == stages  # the backbone asked for, re-masked after each of its stages
    for stage_a, stage_b in zip(*sparse, strict=True):
        hidden_here = (visible_at(mask, stage_a.shape[2:]) == 0).expand_as(stage_a)
        assert torch.equal(stage_a[hidden_here], stage_b[hidden_here])
        assert float(stage_a[hidden_here].abs().max()) == 0.0
    bottleneck_hidden = (visible_at(mask, dense[0][-1].shape[2:]) == 0).expand_as(dense[0][-1])
    assert not torch.allclose(dense[0][-1][bottleneck_hidden], dense[1][-1][bottleneck_hidden])
    # with the masked input zeroed too, the whole sparse encoder ignores the masked voxels
    with torch.no_grad():
        assert torch.equal(encode(net, zero_masked(x, mask), mask)[-1], encode(net, zero_masked(other, mask), mask)[-1])


def test_sparse_block_size_follows_the_backbones_total_stride() -> None:
    pytest.importorskip("dynamic_network_architectures")
    overrides = ["model.name=resenc-l", "data.crop_size=[64,64,64]", "method.sparse=true", "method.block_size=16"]
    with pytest.raises(ConfigError, match="multiple of the encoder stride 32 of the resenc-l backbone, got 16"):
        _method(*overrides)
    with pytest.raises(ConfigError, match=r"data.crop_size: .* resenc-l backbone's total stride \[32, 32, 32\]"):
        _method("model.name=resenc-l", "data.crop_size=[64,64,16]")


def test_checkpoints_describe_a_plain_unet3d() -> None:
    method = _method()
    model = method.build_model()
    spec = method.model_spec(model)
    assert spec["class"] == "UNet3D" and spec["kwargs"]["skip_connections"] is True
    UNet3D(**spec["kwargs"]).load_state_dict(model.state_dict())


def test_visualise_returns_an_rgb_panel() -> None:
    method = _method()
    images = method.visualise(method.build_model().eval(), torch.rand(2, 1, *CUBE), _context())
    (image,) = images.values()
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
