"""The fused Models Genesis corruption: its decisions, its result under given decisions, its distribution."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import stats

from radiossl.transforms import (
    BezierIntensity,
    Compose,
    GenesisCorruption,
    InPaint,
    LocalShuffle,
    OneOf,
    OutPaint,
    apply_corruption,
    bezier_remap,
    local_shuffle,
    plan_corruption,
)
from radiossl.transforms.genesis_corruption import IN_PAINT, NO_PAINT, OUT_PAINT


def _box_mask(shape: tuple[int, ...], boxes: list[tuple[int, ...]]) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    for x, y, z, sx, sy, sz in boxes:
        mask[:, x : x + sx, y : y + sy, z : z + sz] = True
    return mask


def test_decisions_follow_the_published_rates(gen: Callable[[int], torch.Generator]) -> None:
    batch = 20_000
    plan = plan_corruption(batch, (64, 64, 32), gen(0), torch.device("cpu"))
    sigma = 4 * (0.25 / batch) ** 0.5
    assert float(plan.shuffle.float().mean()) == pytest.approx(0.5, abs=sigma)
    assert float(plan.bezier.float().mean()) == pytest.approx(0.9, abs=sigma)
    assert float(plan.inverted.float().mean()) == pytest.approx(0.5, abs=sigma)
    kinds = plan.paint
    assert float((kinds == NO_PAINT).float().mean()) == pytest.approx(0.1, abs=sigma)
    assert float((kinds == IN_PAINT).float().mean()) == pytest.approx(0.9 * 0.2, abs=sigma)
    assert float((kinds == OUT_PAINT).float().mean()) == pytest.approx(0.9 * 0.8, abs=sigma)
    counts = {kind: [len(plan.boxes[b]) for b in range(batch) if int(kinds[b]) == kind] for kind in range(3)}
    assert set(counts[NO_PAINT]) == {0}
    assert set(counts[IN_PAINT]) <= set(range(6)) and set(counts[OUT_PAINT]) <= set(range(1, 6))
    # "while U < 0.95, at most n": in-painting draws 0..5 boxes, out-painting 1 + (0..4) windows.
    expected_in = sum(0.95**k for k in range(1, 6))
    assert float(np.mean(counts[IN_PAINT])) == pytest.approx(expected_in, abs=0.05)
    assert float(np.mean(counts[OUT_PAINT])) == pytest.approx(1 + sum(0.95**k for k in range(1, 5)), abs=0.03)


def test_result_equals_the_separate_steps_under_the_same_decisions(
    gen: Callable[[int], torch.Generator], cpu_path: str
) -> None:
    x = torch.rand(24, 2, 32, 32, 16)
    g = gen(1)
    plan = plan_corruption(24, (32, 32, 16), g, torch.device("cpu"))
    state = g.get_state()
    y = apply_corruption(x, plan, g, n_blocks=800)
    assert y.shape == x.shape and not torch.equal(y, x)

    # The reference: the functions of the separate transforms, with the plan's decisions.
    g.set_state(state)
    rows = plan.shuffle.nonzero().squeeze(1)
    keep = [torch.tensor(plan.boxes[b]).view(-1, 6) if int(plan.paint[b]) == OUT_PAINT else None for b in rows]
    reference = x.clone()
    reference[rows] = local_shuffle(x[rows], g, n_blocks=800, keep=keep)
    mapped = plan.bezier.nonzero().squeeze(1)
    reference[mapped] = bezier_remap(reference[mapped], plan.controls[mapped], plan.inverted[mapped])

    for b in range(24):
        boxes = _box_mask(tuple(x.shape[1:]), plan.boxes[b])
        kind = int(plan.paint[b])
        if kind == NO_PAINT:
            assert torch.equal(y[b], reference[b])
        elif kind == IN_PAINT:
            assert torch.equal(y[b][~boxes], reference[b][~boxes])
            assert float((y[b][boxes] == reference[b][boxes]).float().mean()) < 0.01  # noise in the boxes
        else:
            assert boxes.any() and torch.equal(y[b][boxes], reference[b][boxes])
            noise = y[b][~boxes]
            assert float((noise == reference[b][~boxes]).float().mean()) < 0.01
            assert float(noise.min()) >= 0.0 and float(noise.max()) < 1.0
            assert float(noise.mean()) == pytest.approx(0.5, abs=0.02)


def test_distribution_matches_the_composed_pipeline(gen: Callable[[int], torch.Generator], cpu_path: str) -> None:
    """Per-cube statistics of the fused and the step-by-step pipeline: same distribution (KS tests)."""
    shape = (20, 20, 14)
    ramp = torch.linspace(0.05, 0.95, int(np.prod(shape))).reshape(1, 1, *shape)
    x = ramp.repeat(400, 1, 1, 1, 1)
    composed = Compose(
        [
            LocalShuffle(p=0.5, n_blocks=300),
            BezierIntensity(p=0.9),
            OneOf([InPaint(), OutPaint()], weights=[0.2, 0.8], p=0.9),
        ]
    )
    fused = GenesisCorruption(n_blocks=300)

    def statistics(y: torch.Tensor) -> dict[str, np.ndarray]:
        flat = y.flatten(1)
        return {
            "mean": flat.mean(1).numpy(),
            "std": flat.std(1).numpy(),
            "kept": (flat == x.flatten(1)).float().mean(1).numpy(),
            "neighbour_diff": (y[:, :, 1:] - y[:, :, :-1]).abs().flatten(1).mean(1).numpy(),
        }

    a = statistics(composed(x, gen(2)))
    b = statistics(fused(x, gen(3)))
    for name in a:
        # asymptotic p-values: SciPy falls back to them for these samples anyway, with a warning
        assert stats.ks_2samp(a[name], b[name], method="asymp").pvalue > 1e-3, name


def test_rates_are_checked_and_the_repr_names_them() -> None:
    with pytest.raises(ValueError, match="paint_rate"):
        GenesisCorruption(paint_rate=1.5)
    assert "local_rate=0.5" in repr(GenesisCorruption())


def test_no_decision_gives_a_copy(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.rand(3, 1, 16, 16, 16)
    y = GenesisCorruption(local_rate=0.0, nonlinear_rate=0.0, paint_rate=0.0)(x, gen(4))
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()


def test_other_dtypes_take_the_torch_paths(gen: Callable[[int], torch.Generator]) -> None:
    # bfloat16 has no NumPy twin: Bézier, noise and painting run as torch code, as on a GPU.
    x = torch.rand(6, 1, 32, 32, 16).to(torch.bfloat16)
    y = GenesisCorruption(n_blocks=500)(x, gen(5))
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    assert bool(torch.isfinite(y.float()).all()) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x)


def test_result_does_not_depend_on_the_thread_count(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.rand(12, 1, 32, 32, 16)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = GenesisCorruption(n_blocks=600)(x, gen(6))
        torch.set_num_threads(2)
        two = GenesisCorruption(n_blocks=600)(x, gen(6))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
