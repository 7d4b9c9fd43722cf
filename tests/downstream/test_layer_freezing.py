"""Frozen parts really stay frozen: no weight change after an optimiser step, norm layers in eval mode."""

from __future__ import annotations

import pytest
import torch

from radiossl.config import OptimConfig
from radiossl.downstream.freezing import freeze, train_mode, trainable_prefixes
from radiossl.engine.optim import build_optimizer
from radiossl.models import UNet3D


def one_step(model: torch.nn.Module, report) -> None:  # type: ignore[no-untyped-def]
    optimizer = build_optimizer(model, OptimConfig(optimizer="adam", lr=0.1, weight_decay=0.01))
    train_mode(model, report)
    x = torch.randn(2, 2, 16, 16, 8)
    loss = model(x).pow(2).mean()
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("part", ["decoder", "last"])
def test_frozen_weights_and_statistics_unchanged(part: str) -> None:
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, out_channels=3, width=0.125, norm="batch")
    report = freeze(model, part)  # type: ignore[arg-type]
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    one_step(model, report)
    after = model.state_dict()
    trainable = trainable_prefixes(model, part)  # type: ignore[arg-type]
    assert trainable is not None
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        if key.startswith(trainable):
            if key.endswith(("weight", "bias")) and "bn" not in key:
                assert changed, f"{key} should have trained"
        else:
            assert not changed, f"{key} is frozen but changed"  # BN running stats included
    assert all(not model.get_submodule(name).training for name in report.frozen_norms)
    assert model.out_tr.training
    assert report.frozen and report.trainable and "frozen" in report.summary()


def test_train_all_updates_everything() -> None:
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, out_channels=1, width=0.125, norm="group")
    report = freeze(model, "all")
    assert not report.frozen and not report.frozen_norms
    before = model.down_tr64.ops[0].conv1.weight.detach().clone()
    one_step(model, report)
    assert not torch.equal(before, model.down_tr64.ops[0].conv1.weight)


def test_decoder_freezing_keeps_encoder_norms_in_eval_after_train_call() -> None:
    model = UNet3D(width=0.125, norm="batch")
    report = freeze(model, "decoder")
    model.eval()
    train_mode(model, report)
    assert not model.down_tr512.ops[1].bn1.training
    assert model.up_tr64.training
    assert all(name.startswith("down_tr") for name in report.frozen_norms)
