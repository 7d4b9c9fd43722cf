"""SimCLR: defaults, augmentation per crop, the step, and a network finetuning can read."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from radiossl.engine.protocol import StepContext
from radiossl.errors import ConfigError
from radiossl.models import UNet3D, build_model
from radiossl.models.loading import load_pretrained
from radiossl.pretext.base import load_pretrain_config
from radiossl.pretext.simclr import SimCLR
from radiossl.views.cluster import PairSample

CROP = (16, 16, 16)


def _method(*overrides: str) -> SimCLR:
    base = ["model.width=0.125", "method.hidden_dim=32", "method.out_dim=16"]
    return SimCLR(load_pretrain_config("simclr", overrides=[*base, *overrides]))


def _batch(size: int = 4) -> PairSample:
    zeros = torch.zeros(size, 6, dtype=torch.int64)
    empty = torch.zeros(size, 0, dtype=torch.int64)
    return PairSample(
        torch.rand(size, 1, *CROP), torch.rand(size, 1, *CROP), zeros, zeros, empty, empty, torch.arange(size)
    )


def _context(index: int = 0) -> StepContext:
    return StepContext(epoch=0, total_epochs=3, step=index, device=torch.device("cpu"), extra={"batch_index": index})


def test_defaults() -> None:
    cfg = load_pretrain_config("simclr")
    m: Any = cfg.method
    o = cfg.optim
    assert (m.temperature, m.hidden_dim, m.out_dim, m.head_layers, m.pooled) == (0.5, 2048, 128, 2, "bottleneck")
    assert m.noise_std[1] == pytest.approx(math.sqrt(0.1)) and m.log_gamma[0] == pytest.approx(math.log(0.7))
    assert (o.optimizer, o.lr, o.momentum, o.weight_decay, o.grad_clip, o.batch_size) == (
        "sgd",
        1e-2,
        0.99,
        3e-5,
        0.1,
        32,
    )


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        load_pretrain_config("simclr", overrides=["method.temperature=0"])
    with pytest.raises(ConfigError, match="low <= high"):
        load_pretrain_config("simclr", overrides=["method.blur_std=[2, 1]"])


def test_the_two_crops_are_augmented_independently_and_reproducibly() -> None:
    method = _method("method.flip_prob=1", "method.blur_prob=0", "method.noise_prob=0", "method.gamma_prob=0")
    batch = _batch()
    a1, a2 = method.augment_pair(batch, np.random.default_rng(0))
    assert torch.equal(a1, batch.view1.flip(2, 3, 4)) and torch.equal(a2, batch.view2.flip(2, 3, 4))
    noisy = _method("method.noise_prob=1")
    first, second = (
        noisy.augment_pair(batch, np.random.default_rng(1)),
        noisy.augment_pair(batch, np.random.default_rng(1)),
    )
    assert torch.equal(first[0], second[0]) and not torch.equal(first[0], batch.view1)


def test_step_is_finite_and_reaches_every_parameter() -> None:
    method = _method()
    model = method.build_model()
    out = method.training_step(model, _batch(), _context())
    assert torch.isfinite(out.loss) and -1.0 <= out.metrics["positive_cosine"] <= 1.0
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_the_checkpointed_network_rebuilds_and_its_encoder_finetunes() -> None:
    method = _method("method.pooled=all")
    model = method.build_model()
    spec = method.model_spec(model)
    assert spec["class"] == "ContrastiveEncoder" and spec["kwargs"]["pooled"] == "all"
    build_model(spec).load_state_dict(model.state_dict())
    report = load_pretrained(UNet3D(width=0.125, norm="instance"), {"model": model.state_dict()}, transfer="encoder")
    assert report.loaded == len([k for k in model.state_dict() if k.startswith("down_tr")]) > 0


def test_a_checkpoint_spec_rebuilds_in_a_process_that_never_imported_the_method() -> None:
    import json
    import subprocess
    import sys

    spec = _method().model_spec(_method().build_model())
    script = (
        "import json, sys\n"
        "from radiossl.models.factory import build_model\n"
        "assert 'radiossl.pretext.projection' not in sys.modules\n"
        f"net = build_model(json.loads({json.dumps(json.dumps(spec))}))\n"
        "print(type(net).__name__, type(net).__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ContrastiveEncoder", "radiossl.pretext.projection"]
