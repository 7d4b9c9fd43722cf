"""In- and out-painting: published box ranges, numbers of boxes, noise values and painted fractions."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
import torch

import radiossl.transforms  # noqa: F401
from radiossl.transforms import InPaint, OneOf, OutPaint, inpaint, outpaint
from radiossl.transforms.inpaint import inpaint_boxes, inpaint_size_range
from radiossl.transforms.outpaint import outpaint_size_range, outpaint_windows

CUBE = (64, 64, 32)


def test_published_size_ranges() -> None:
    assert [inpaint_size_range(s) for s in CUBE] == [(10, 21), (10, 21), (5, 10)]
    assert [outpaint_size_range(s) for s in CUBE] == [(28, 37), (28, 37), (14, 19)]


def test_inpaint_boxes_follow_the_published_ranges(gen: Callable[[int], torch.Generator]) -> None:
    boxes = torch.tensor(inpaint_boxes(4000, CUBE, gen(0), torch.device("cpu")))
    sizes, corners = boxes[:, 4:], boxes[:, 1:4]
    low = torch.tensor([10, 10, 5])
    high = torch.tensor([21, 21, 10])
    assert bool(((sizes >= low) & (sizes <= high)).all())
    assert bool(((corners >= 3) & (corners + sizes <= torch.tensor(CUBE) - 3)).all())
    assert set(sizes[:, 2].tolist()) == set(range(5, 11))
    per_sample = torch.bincount(boxes[:, 0], minlength=4000)
    # Boxes drawn while U < 0.95, at most 5: P(0) = 0.05, mean = sum of 0.95^k for k = 1..5.
    assert abs(float((per_sample == 0).double().mean()) - 0.05) < 0.015
    assert abs(float(per_sample.double().mean()) - sum(0.95**k for k in range(1, 6))) < 0.05


def test_outpaint_windows_follow_the_published_ranges(gen: Callable[[int], torch.Generator]) -> None:
    windows = torch.tensor(outpaint_windows(4000, CUBE, gen(1), torch.device("cpu")))
    sizes, corners = windows[:, 4:], windows[:, 1:4]
    assert bool(((sizes >= torch.tensor([28, 28, 14])) & (sizes <= torch.tensor([37, 37, 19]))).all())
    assert bool(((corners >= 3) & (corners + sizes <= torch.tensor(CUBE) - 3)).all())
    per_sample = torch.bincount(windows[:, 0], minlength=4000)
    assert int(per_sample.min()) == 1 and int(per_sample.max()) == 5
    assert abs(float(per_sample.double().mean()) - (1 + sum(0.95**k for k in range(1, 5)))) < 0.05


def test_painted_voxels_are_uniform_noise_inside_the_drawn_boxes(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.full((6, 2, *CUBE), 5.0)
    y = inpaint(x, gen(2))
    boxes = inpaint_boxes(6, CUBE, gen(2), torch.device("cpu"))  # same seed: the same boxes come first
    mask = torch.zeros(6, *CUBE, dtype=torch.bool)
    for b, cx, cy, cz, sx, sy, sz in boxes:
        mask[b, cx : cx + sx, cy : cy + sy, cz : cz + sz] = True
    painted = y != 5.0
    assert torch.equal(painted[:, 0], mask) and torch.equal(painted[:, 1], mask)
    noise = y[painted]
    assert float(noise.min()) >= 0.0 and float(noise.max()) < 1.0
    assert abs(float(noise.mean()) - 0.5) < 0.02
    assert torch.equal(x, torch.full_like(x, 5.0))


def test_outpaint_keeps_exactly_the_windows(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.full((6, 1, *CUBE), 5.0)
    y = outpaint(x, gen(3))
    windows = outpaint_windows(6, CUBE, gen(3), torch.device("cpu"))
    kept = torch.zeros(6, *CUBE, dtype=torch.bool)
    for b, cx, cy, cz, sx, sy, sz in windows:
        kept[b, cx : cx + sx, cy : cy + sy, cz : cz + sz] = True
    assert torch.equal(y[:, 0] == 5.0, kept)
    outside = y[:, 0][~kept]
    assert float(outside.min()) >= 0.0 and float(outside.max()) < 1.0


def test_painted_fractions_match_the_reference_loops(
    gen: Callable[[int], torch.Generator], reference_loops: ModuleType
) -> None:
    x = torch.full((300, 1, *CUBE), 5.0)
    random.seed(0)
    np.random.seed(0)
    reference = np.full((1, *CUBE), 5.0)
    for ours_fn, loop_fn in ((inpaint, reference_loops.loop_inpaint), (outpaint, reference_loops.loop_outpaint)):
        ours = (ours_fn(x, gen(4)) != 5.0).flatten(1).double().mean(1).numpy()
        theirs = np.array([(loop_fn(reference) != 5.0).mean() for _ in range(300)])
        assert abs(ours.mean() - theirs.mean()) < 0.25 * theirs.std() + 0.005, (ours.mean(), theirs.mean())
        assert abs(ours.std() - theirs.std()) < 0.3 * theirs.std()


def test_painting_step_shares_and_rates(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.full((2000, 1, 16, 16, 16), 5.0)
    y = OneOf([InPaint(), OutPaint()], weights=[0.2, 0.8], p=0.9)(x, gen(5))
    painted = (y != 5.0).flatten(1).double().mean(1)
    untouched = painted == 0
    outpainted = painted > 0.5  # out-painting replaces most of a 16^3 cube
    # P(untouched) = 0.1 + 0.9 * 0.2 * 0.05 (in-painting that draws no box).
    assert abs(float(untouched.double().mean()) - (0.1 + 0.9 * 0.2 * 0.05)) < 0.02
    assert abs(float(outpainted.double().mean()) - 0.72) < 0.03


def test_too_small_cubes_are_rejected(gen: Callable[[int], torch.Generator]) -> None:
    with pytest.raises(ValueError, match="out-painting needs every spatial size >= 14"):
        outpaint(torch.zeros(1, 1, 32, 32, 8), gen(6))
    with pytest.raises(ValueError, match="in-painting needs every spatial size >= 9"):
        inpaint(torch.zeros(1, 1, 32, 32, 8), gen(6))


def test_seeded_noise_fills_any_view_and_refuses_other_dtypes() -> None:
    from radiossl.transforms._random import fill_uniform_seeded

    base = torch.zeros(4, 6, 5)
    view = base[:, 1:5, ::2]  # not contiguous
    fill_uniform_seeded(view, 7)
    again = torch.zeros(4, 4, 3)
    assert torch.equal(fill_uniform_seeded(again, 7), view)
    assert bool((view > 0).all()) and float(base[:, 0].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="float32/float64"):
        fill_uniform_seeded(torch.zeros(3, dtype=torch.bfloat16), 7)
