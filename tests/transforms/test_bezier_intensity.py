"""Bézier intensity map: [0, 1] -> [0, 1], monotone, half inverted, equal to the original's np.interp."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from radiossl.transforms import BezierIntensity, bezier_remap
from radiossl.transforms.bezier_intensity import apply_tables


def _original_map(controls: np.ndarray, inverted: bool, values: np.ndarray) -> np.ndarray:
    """The original: 100,000 samples with weights C(3,i) t^(3-i) (1-t)^i, sorted as published, np.interp."""
    t = np.linspace(0.0, 1.0, 100_000)
    px = [0.0, controls[0], controls[2], 1.0]
    py = [0.0, controls[1], controls[3], 1.0]
    weights = [t**3, 3 * t**2 * (1 - t), 3 * t * (1 - t) ** 2, (1 - t) ** 3]
    xs = sum(w * p for w, p in zip(weights, px, strict=True))
    ys = sum(w * p for w, p in zip(weights, py, strict=True))
    if inverted:
        xs = np.sort(xs)
    else:
        xs, ys = np.sort(xs), np.sort(ys)
    return np.interp(values, xs, ys)


def test_matches_the_original_interpolation(gen: Callable[[int], torch.Generator]) -> None:
    g = gen(0)
    values = np.concatenate([np.random.default_rng(0).random(5000), [0.0, 1.0, -0.5, 1.5]])
    x = torch.from_numpy(values).float().view(1, 1, -1, 1, 1)
    errors = []
    for _ in range(60):
        controls = torch.rand(1, 4, generator=g, dtype=torch.float64)
        inverted = torch.rand(1, generator=g) < 0.5
        ours = bezier_remap(x, controls, inverted).flatten().double().numpy()
        reference = _original_map(controls[0].numpy(), bool(inverted), values)
        errors.append(np.abs(ours - reference).max())
    assert max(errors) < 5e-3
    assert float(np.median(errors)) < 1e-5


def test_maps_unit_interval_monotonically_with_half_inverted(gen: Callable[[int], torch.Generator]) -> None:
    ramp = torch.linspace(0, 1, 257).view(1, 1, 257, 1, 1).repeat(300, 1, 1, 1, 1)
    out = BezierIntensity(p=1.0)(ramp, gen(1)).reshape(300, 257)
    assert bool(((out >= 0) & (out <= 1)).all())
    diffs = out.diff(dim=1)
    increasing = (diffs >= -1e-6).all(1)
    decreasing = (diffs <= 1e-6).all(1)
    assert bool((increasing | decreasing).all())
    assert torch.allclose(out[increasing, 0], torch.zeros(1), atol=1e-6)
    assert torch.allclose(out[increasing, -1], torch.ones(1), atol=1e-6)
    assert torch.allclose(out[decreasing, 0], torch.ones(1), atol=1e-6)
    assert torch.allclose(out[decreasing, -1], torch.zeros(1), atol=1e-6)
    assert 0.4 < float(decreasing.double().mean()) < 0.6


def test_probability_channels_and_determinism(gen: Callable[[int], torch.Generator]) -> None:
    coarse = {"n_points": 1025, "table_size": 1025}  # the gate does not depend on the resolution
    x = torch.rand(1000, 2, 4, 4, 2)
    y = BezierIntensity(p=0.9, **coarse)(x, gen(2))
    applied = (y != x).flatten(1).any(1).double().mean()
    assert 0.87 < float(applied) < 0.93
    # Both channels of a sample go through the same map: equal inputs give equal outputs.
    same = x.clone()
    same[:, 1] = same[:, 0]
    z = BezierIntensity(p=1.0, **coarse)(same[:50], gen(3))
    assert torch.equal(z[:, 0], z[:, 1])
    assert torch.equal(y, BezierIntensity(p=0.9, **coarse)(x, gen(2)))


def test_cpu_tables_match_the_batched_torch_tables(gen: Callable[[int], torch.Generator]) -> None:
    from radiossl.transforms.bezier_intensity import _tables, bezier_tables

    controls = torch.rand(20, 4, generator=gen(4), dtype=torch.float64)
    inverted = torch.rand(20, generator=gen(5)) < 0.5
    cpu = bezier_tables(controls, inverted, n_points=2049, table_size=1025)
    assert torch.allclose(cpu, _tables(controls, inverted, 2049, 1025), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_tables_writes_into_out(dtype: torch.dtype) -> None:
    x = torch.rand(2, 1, 6, 5, 4).to(dtype)
    tables = torch.linspace(0, 1, 33).repeat(2, 1) ** 2
    expected = apply_tables(x, tables)
    out = torch.empty(2, 1, 6, 5, 4, dtype=dtype)
    assert apply_tables(x, tables, out=out) is out and torch.equal(out, expected)
    strided = torch.empty(2, 1, 4, 5, 6, dtype=dtype).transpose(2, 4)
    assert torch.equal(apply_tables(x, tables, out=strided), expected)
    in_place = x.clone()
    assert apply_tables(in_place, tables, out=in_place) is in_place and torch.equal(in_place, expected)
    with pytest.raises(ValueError, match="out has shape"):
        apply_tables(x, tables, out=torch.empty(1, 1, 6, 5, 4, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_and_numpy_maps_give_the_same_values(dtype: torch.dtype, route: Callable[[str], None]) -> None:
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(3, 2, 20, 20, 10, generator=g, dtype=dtype) * 1.4 - 0.2).contiguous()
    x.view(-1)[:4] = torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=dtype)  # both ends and beyond
    controls = torch.rand(3, 4, generator=g)
    inverted = torch.tensor([False, True, False])
    route("compiled")
    compiled = bezier_remap(x, controls, inverted)
    route("numpy")
    plain = bezier_remap(x, controls, inverted)
    assert compiled.dtype == dtype and torch.equal(compiled, plain)
    nan = x.clone()
    nan.view(-1)[7] = float("nan")
    route("compiled")
    assert bool(bezier_remap(nan, controls, inverted).isnan().view(-1)[7])
