"""Compose / OneOf / apply_per_sample: per-sample gates, in-place reuse of pipeline copies, determinism."""

from __future__ import annotations

from collections.abc import Callable

import torch

from radiossl.transforms import BezierIntensity, Compose, InPaint, OneOf, OutPaint, apply_per_sample, random_apply


def _plus(value: float, p: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    return lambda x, g: random_apply(x, p, g, lambda sub: sub + value)


def test_apply_per_sample_keeps_unselected_and_input() -> None:
    x = torch.arange(4.0).view(4, 1, 1, 1, 1).expand(4, 1, 2, 2, 2).contiguous()
    before = x.clone()
    out = apply_per_sample(x, torch.tensor([True, False, True, False]), lambda sub: sub * 10)
    assert torch.equal(x, before)
    assert out[:, 0, 0, 0, 0].tolist() == [0.0, 1.0, 20.0, 3.0]
    assert apply_per_sample(x, torch.zeros(4, dtype=torch.bool), lambda sub: sub * 10) is x


def test_pipeline_equals_step_by_step_and_leaves_input(gen: Callable[[int], torch.Generator]) -> None:
    steps = [
        _plus(1.0, 0.5),
        BezierIntensity(p=0.7, n_points=1025, table_size=1025),
        _plus(2.0, 0.5),
        OneOf([InPaint(), OutPaint()], weights=[0.3, 0.7], p=0.8),
    ]
    x = torch.rand(12, 1, 16, 16, 14)
    before = x.clone()
    composed = Compose(steps)(x, gen(5))
    stepwise, g = x, gen(5)
    for step in steps:  # outside a pipeline: every partial step copies (no in-place reuse)
        stepwise = step(stepwise, g)
    assert torch.equal(composed, stepwise)
    assert torch.equal(x, before)
    assert torch.equal(composed, Compose(steps)(x, gen(5)))


def test_result_of_a_pipeline_is_not_reused_later(gen: Callable[[int], torch.Generator]) -> None:
    pipeline = Compose([_plus(1.0, 0.5)])
    first = pipeline(torch.zeros(16, 1, 2, 2, 2), gen(0))
    kept = first.clone()
    pipeline(first, gen(1))  # a later call must treat ``first`` as an input, not as its own copy
    assert torch.equal(first, kept)
    assert 0 < int((first[:, 0, 0, 0, 0] == 1).sum()) < 16


def test_nested_pipelines_and_gradients(gen: Callable[[int], torch.Generator]) -> None:
    inner = Compose([_plus(1.0, 0.5), _plus(2.0, 0.5)])
    outer = Compose([_plus(4.0, 0.5), inner, OneOf([_plus(8.0, 1.0)], p=0.5)])
    out = outer(torch.zeros(512, 1, 1, 1, 1), gen(3)).flatten()
    # Each sample's value is the sum of the increments applied to it: every subset occurs.
    assert set(out.long().tolist()) == set(range(16))
    x = torch.rand(6, 1, 2, 2, 2, requires_grad=True)
    y = Compose([_plus(1.0, 0.5), _plus(1.0, 0.5)])(x, gen(4))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
