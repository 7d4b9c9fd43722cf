"""Optimisers over trainable parameters and per-step learning-rate schedules."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch import nn

from radiossl.config import OptimConfig
from radiossl.engine.optim import batch_scale, build_optimizer, build_scheduler, current_lr, lr_factor, scaled_optim
from radiossl.errors import ConfigError, TrainingError


def _optim(**settings: object) -> OptimConfig:
    return OptimConfig.model_validate(settings)


def test_optimizers_cover_only_trainable_parameters() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    model[0].requires_grad_(False)
    for name, cls in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        opt = build_optimizer(model, _optim(optimizer=name, lr=0.1))
        assert isinstance(opt, cls)
        assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in model[1].parameters()}
    assert build_optimizer(model, _optim(optimizer="sgd", momentum=0.8)).param_groups[0]["momentum"] == 0.8


def test_a_fully_frozen_model_is_an_error() -> None:
    model = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(TrainingError, match="requires_grad"):
        build_optimizer(model, _optim())


def test_cosine_decays_per_step_and_the_last_epoch_keeps_a_positive_lr() -> None:
    cfg = _optim(lr=0.1, epochs=3, schedule="cosine")
    factors = [lr_factor(cfg, s, 5) for s in range(15)]
    assert factors[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(factors))
    assert factors[-1] > 0.0  # the original set lr 0 for the whole last epoch
    assert factors[10] < factors[9]  # decays inside an epoch, not once per epoch
    with_floor = _optim(lr=0.1, epochs=3, schedule="cosine", min_lr=0.01)
    assert min(lr_factor(with_floor, s, 5) for s in range(15)) > 0.1


def test_warmup_is_linear_then_cosine_starts_at_the_base_lr() -> None:
    cfg = _optim(lr=1.0, epochs=4, schedule="cosine", warmup_epochs=1.0)
    assert [lr_factor(cfg, s, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(cfg, 4, 4) == 1.0
    assert math.isclose(lr_factor(cfg, 10, 4), 0.5 * (1 + math.cos(math.pi * 6 / 12)))


def test_step_and_constant_schedules() -> None:
    step = _optim(lr=1.0, epochs=200, schedule="step", step_size=50, gamma=0.5)
    assert [lr_factor(step, e * 10, 10) for e in (0, 49, 50, 99, 100, 150)] == [1, 1, 0.5, 0.5, 0.25, 0.125]
    constant = _optim(lr=1.0, epochs=2, schedule="constant")
    assert {lr_factor(constant, s, 3) for s in range(6)} == {1.0}


def test_scheduler_sets_the_optimizer_lr_and_its_state_is_plain() -> None:
    cfg = _optim(lr=0.2, epochs=2, schedule="cosine")
    model = torch.nn.Linear(2, 1)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=2)
    seen = []
    for _ in range(4):
        seen.append(current_lr(opt))
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.2 * lr_factor(cfg, s, 2) for s in range(4)])
    restored = build_scheduler(build_optimizer(model, cfg), cfg, steps_per_epoch=2)
    restored.load_state_dict(sched.state_dict())
    assert restored.last_epoch == 4
    assert all(lam is None for lam in sched.state_dict()["lr_lambdas"])


@pytest.mark.parametrize(
    ("rule", "reference", "expected"),
    [("none", None, 0.1), ("linear", None, 0.1 * 8), ("sqrt", None, 0.1 * math.sqrt(8)), ("linear", 64, 0.05)],
)
def test_lr_scaling_follows_the_effective_batch_size(rule: str, reference: int | None, expected: float) -> None:
    # 4 per process x 4 processes x 2 accumulation steps = 32, against the default reference of 4 (one process)
    optim = OptimConfig.model_validate(
        {"lr": 0.1, "batch_size": 4, "accumulate": 2, "lr_scaling": rule, "reference_batch_size": reference}
    )
    scale = batch_scale(optim, world_size=4, nodes=2)
    assert scale.effective_batch_size == 32 and scale.reference_batch_size == (reference or 4)
    assert scale.lr == pytest.approx(expected) and scale.base_lr == 0.1
    scaled = scaled_optim(optim, scale)
    assert scaled.lr == pytest.approx(expected) and scaled.min_lr == optim.min_lr  # the floor stays absolute
    assert scale.describe().startswith("effective batch 32 = 4 per process x 4 processes on 2 nodes x 2 accumulation")
    assert f"(lr_scaling {rule})" in scale.describe()


def test_the_default_is_no_scaling_so_published_settings_stay_as_written() -> None:
    optim = OptimConfig()
    assert optim.lr_scaling == "none" and optim.reference_batch_size is None
    scale = batch_scale(optim, world_size=16)
    assert scale.lr == optim.lr and scaled_optim(optim, scale) is optim
    assert scale.effective_batch_size == 16 * optim.batch_size


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_the_fused_kernel_updates_like_the_for_loop(name: str) -> None:
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Conv3d(2, 4, 3), nn.BatchNorm3d(4), nn.Conv3d(4, 1, 1))
    fused_model = copy.deepcopy(reference)
    loop = build_optimizer(reference, OptimConfig(optimizer=name, implementation="for-loop", lr=0.01))
    fused = build_optimizer(fused_model, OptimConfig(optimizer=name, implementation="fused", lr=0.01))
    assert fused.defaults["fused"] is True and not loop.defaults.get("fused")
    for step in range(3):
        x = torch.randn(2, 2, 5, 5, 5, generator=torch.Generator().manual_seed(step))
        for model, opt in ((reference, loop), (fused_model, fused)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    # Adam divides by sqrt(v) + eps: where a gradient is near 0 (a norm's bias), rounding moves that
    # quotient by up to ~1 %, i.e. 1e-4 of the lr-0.01 steps here; SGD agrees to float rounding
    atol = 1e-6 if name == "sgd" else 1e-4
    for a, b in zip(reference.parameters(), fused_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=atol)


def test_a_run_saved_under_one_implementation_resumes_under_another() -> None:
    model = nn.Linear(4, 2)
    loop = build_optimizer(model, OptimConfig(optimizer="adamw", implementation="for-loop"))
    model(torch.ones(1, 4)).sum().backward()
    loop.step()
    fused = build_optimizer(model, OptimConfig(optimizer="adamw", implementation="fused"))
    fused.load_state_dict(loop.state_dict())
    assert fused.state_dict()["state"][0]["exp_avg"].equal(loop.state_dict()["state"][0]["exp_avg"])
    assert fused.defaults["fused"] is True  # loading the state keeps this run's implementation


def test_an_unavailable_fused_kernel_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_adam = torch.optim.Adam

    def no_fused(params: object, **kwargs: object) -> torch.optim.Optimizer:
        if kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real_adam(params, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    assert not build_optimizer(nn.Linear(2, 1), OptimConfig(optimizer="adam")).defaults.get("fused")
    with pytest.raises(ConfigError, match=r"optim\.implementation fused: `fused=True` requires"):
        build_optimizer(nn.Linear(2, 1), OptimConfig(optimizer="adam", implementation="fused"))


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_a_parameter_whose_first_gradient_comes_late_steps_like_the_for_loop(name: str) -> None:
    """patch-cluster's prototypes have no gradient while frozen; torch's own fused SGD fails on that."""
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    loop, fused = (
        build_optimizer(m, OptimConfig(optimizer=name, implementation=impl, lr=0.05, weight_decay=0.01))
        for m, impl in zip(models, ("for-loop", "fused"), strict=True)
    )
    assert fused.defaults["fused"] is True
    for step in range(4):
        x = torch.randn(5, 4, generator=torch.Generator().manual_seed(step))
        for model, opt in ((models[0], loop), (models[1], fused)):
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            if step < 2:
                model[1].weight.grad = None  # no gradient yet, as a frozen layer
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4 if name == "adamw" else 1e-6)


def test_auto_keeps_the_cpu_on_torchs_default_and_fused_can_be_asked_for() -> None:
    """On the CPU the fused step was no faster within a training step (slower with channels-last weights)."""
    from radiossl.runtime.device import apply_memory_format

    model = apply_memory_format(nn.Sequential(nn.Conv3d(2, 4, 3), nn.Conv3d(4, 1, 1)), torch.channels_last_3d)
    assert not build_optimizer(model, OptimConfig()).defaults.get("fused")
    assert not build_optimizer(nn.Linear(2, 1), OptimConfig(optimizer="adamw")).defaults.get("fused")
    assert build_optimizer(model, OptimConfig(implementation="fused")).defaults["fused"] is True
