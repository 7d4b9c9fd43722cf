"""PCRLv2: loss terms, β schedule, stop-gradient, batch of one, augmentation, and an end-to-end run."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from radiossl.engine.protocol import StepContext
from radiossl.errors import ConfigError
from radiossl.models import UNet3D, build_model
from radiossl.pretext.base import load_pretrain_config
from radiossl.pretext.pcrlv2 import PCRLv2, PCRLv2Net, deep_supervision_weight, symmetric_cosine
from radiossl.utils.figures import MIN_PANEL
from radiossl.views.pcrlv2 import PCRLv2Sample

GLOBAL = (32, 32, 16)


def _method(*overrides: str) -> PCRLv2:
    return PCRLv2(load_pretrain_config("pcrlv2", overrides=["model.width=0.125", *overrides]))


def _batch(size: int, seed: int = 0) -> PCRLv2Sample:
    g = torch.Generator().manual_seed(seed)
    return PCRLv2Sample(
        torch.rand(size, 1, *GLOBAL, generator=g),
        torch.rand(size, 1, *GLOBAL, generator=g),
        torch.rand(size, 6, 1, 16, 16, 16, generator=g),
        torch.zeros(size, 6, dtype=torch.int64),
        torch.zeros(size, 6, dtype=torch.int64),
        torch.arange(size),
    )


def _context(epoch: int = 0, total: int = 10, index: int = 0) -> StepContext:
    return StepContext(
        epoch=epoch, total_epochs=total, step=index, device=torch.device("cpu"), extra={"batch_index": index}
    )


def test_defaults_follow_the_thesis_settings() -> None:
    cfg = load_pretrain_config("pcrlv2")
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", 2e-3, 0.9, 1e-4)
    assert (cfg.optim.batch_size, cfg.optim.epochs, cfg.optim.schedule) == (16, 240, "cosine")
    assert (cfg.model.skip_connections, cfg.model.norm, cfg.data.crop_size) == (False, "batch", (64, 64, 32))
    assert cfg.method.swap_patch == (8, 4, 4) and cfg.method.swap_iterations == 100


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.scales=[1.2, 0.9]", "low <= high"),
        ("method.flip_axes=[3]", "0, 1, 2"),
        ("method.blur_std=[-1, 2]", ">= 0"),
        ("method.swap_patch=[8, 0, 4]", ">= 1"),
    ],
)
def test_bad_settings_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pretrain_config("pcrlv2", overrides=[override])


def test_beta_follows_the_configured_epochs() -> None:
    for total in (240, 100, 7):
        assert deep_supervision_weight(0, total) == 1.0
        assert deep_supervision_weight(total, total) == pytest.approx(0.0, abs=1e-12)
        values = [deep_supervision_weight(e, total) for e in range(total + 1)]
        assert all(a >= b for a, b in itertools.pairwise(values))
    assert deep_supervision_weight(50, 100) == pytest.approx(0.5)
    method = _method()
    out_late = method.training_step(method.build_model(), _batch(2), _context(epoch=9, total=10))
    assert out_late.metrics["beta"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))


def test_symmetric_cosine_is_symmetric_and_stops_gradients() -> None:
    pro_a, pre_a, pro_b, pre_b = (torch.randn(4, 8, requires_grad=True) for _ in range(4))
    ab = symmetric_cosine([(pro_a, pre_a)], [(pro_b, pre_b)], 0)
    ba = symmetric_cosine([(pro_b, pre_b)], [(pro_a, pre_a)], 0)
    assert torch.allclose(ab, ba)
    ab.backward()
    assert pro_a.grad is None and pro_b.grad is None
    assert pre_a.grad is not None and pre_b.grad is not None
    same = symmetric_cosine([(pro_a, pro_a)], [(pro_a, pro_a)], 0)
    assert float(same.detach()) == pytest.approx(-1.0)


@pytest.mark.parametrize("size", [1, 2])
def test_step_is_finite_and_reaches_every_parameter(size: int) -> None:
    method = _method()
    model = method.build_model()
    model.train()
    out = method.training_step(model, _batch(size), _context())
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    assert set(out.metrics) == {"restoration", "global", "deep_supervision", "local", "beta"}
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # One deep-supervision level (drawn per step) is trained; every other parameter gets a gradient.
    missing = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is None}
    assert all(".deep_supervision_head." in n for n, p in model.named_parameters() if p.grad is None)
    assert len(missing) == 2


def test_step_is_deterministic_per_batch_index() -> None:
    method = _method()
    model = method.build_model()
    batch = _batch(2)
    first = method.training_step(model, batch, _context(index=3)).loss
    again = method.training_step(model, batch, _context(index=3)).loss
    assert torch.equal(first, again)
    draws = [method._rng(_context(index=i), "step").integers(1 << 30) for i in (3, 3, 4)]
    assert draws[0] == draws[1] != draws[2]


def test_augmentation_targets_and_inputs() -> None:
    method = _method()
    batch = _batch(3)
    generator = torch.Generator().manual_seed(0)
    input1, input2, local_in, target1 = method.augment(batch, generator)
    assert input1.shape == target1.shape == (3, 1, *GLOBAL) and local_in.shape == (18, 1, 16, 16, 16)
    assert float(target1.min()) >= 0.0 and float(target1.max()) <= 1.0  # spatial only: still in [0, 1]
    for views in (input1, input2, local_in):
        assert torch.allclose(views.flatten(1).mean(1), torch.zeros(views.shape[0]), atol=1e-4)
        assert torch.allclose(views.flatten(1).std(1), torch.ones(views.shape[0]), atol=1e-3)


def test_options_and_checkpoint_spec() -> None:
    method = _method("method.deep_supervision=false", "method.local_weight=0")
    model = method.build_model()
    assert isinstance(model, PCRLv2Net)
    out = method.training_step(model, _batch(2), _context())
    assert "deep_supervision" not in out.metrics and "local" not in out.metrics
    spec = method.model_spec(model)
    assert spec["class"] == "UNet3D" and spec["kwargs"]["skip_connections"] is False
    rebuilt = build_model(spec)
    assert type(rebuilt) is UNet3D
    rebuilt.load_state_dict(model.state_dict())
    assert method.run_name_parts() == ["nods"]


def test_visualise_returns_an_rgb_panel() -> None:
    method = _method()
    model = method.build_model().eval()
    with torch.no_grad():
        images = method.visualise(model, _batch(2), _context())
    (image,) = images.values()
    assert image.dtype.name == "uint8" and image.shape[2] == 3
    # three titled panels, each enlarged to at least MIN_PANEL pixels, under a title band
    assert image.shape[0] > MIN_PANEL + 2 * 12 and image.shape[1] >= 3 * MIN_PANEL


def test_end_to_end_pretraining(tmp_path: Path) -> None:
    from radiossl.data.phantoms import synthesize
    from radiossl.data.preprocess import PreprocessConfig, preprocess
    from radiossl.pretext.pretrain import pretrain

    raw, proc = tmp_path / "raw", tmp_path / "proc"
    synthesize("lits", raw, cases=2, shape=(48, 48, 32), seed=0)
    prep = PreprocessConfig(
        dataset="lits17",
        data=raw,
        out=proc,
        view="pcrlv2",
        crop_size=GLOBAL,
        candidate_sizes=[(32, 32, 16), (40, 40, 16)],
        pairs=2,
        progress=False,
    )
    assert preprocess(prep).failed == 0
    cfg = load_pretrain_config(
        "pcrlv2",
        overrides=[
            f"data.root={proc}",
            f"out={tmp_path / 'runs'}",
            f"data.crop_size=[{GLOBAL[0]}, {GLOBAL[1]}, {GLOBAL[2]}]",
            "data.workers=0",
            "model.width=0.125",
            "optim.epochs=1",
            "optim.batch_size=2",
            "logging.progress=false",
        ],
    )
    result = pretrain(cfg)
    assert result.epochs_completed == 1 and math.isfinite(result.history[-1]["loss"])
    state = torch.load(result.final_checkpoint, weights_only=True)
    assert state["model_spec"]["class"] == "UNet3D"
    build_model(state["model_spec"]).load_state_dict(state["model"])
