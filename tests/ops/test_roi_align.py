"""ROI-align of two views' maps onto their physical overlap, against brute-force references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.ops.roi_align import overlap_of_boxes, roi_align_overlap

WORLD = (40, 36, 24)


def world_ids() -> np.ndarray:
    """A volume whose every voxel holds a unique id (its flat index)."""
    return np.arange(math.prod(WORLD), dtype=np.int64).reshape(WORLD)


def decode(ids: np.ndarray) -> np.ndarray:
    """Voxel coordinates ``[..., 3]`` of world ids."""
    return np.stack(np.unravel_index(ids, WORLD), axis=-1)


def crop_and_resize(world: np.ndarray, box: tuple[int, ...], size: tuple[int, int, int]) -> np.ndarray:
    """The view of ``box`` resized to ``size`` with nearest sampling: cell i takes the voxel at its centre."""
    axes = []
    for axis, n in enumerate(size):
        s, e = box[2 * axis], box[2 * axis + 1]
        axes.append([(2 * s * n + (2 * i + 1) * (e - s)) // (2 * n) for i in range(n)])
    return world[np.ix_(*axes)]


def reference_align(
    view: np.ndarray, box: tuple[int, ...], other: tuple[int, ...], out: tuple[int, int, int]
) -> np.ndarray:
    """Brute force, cell by cell with exact fractions: the value of ``view`` at each output cell's centre."""
    result = np.zeros(out, dtype=view.dtype)
    index = []
    for axis in range(3):
        s, e = box[2 * axis], box[2 * axis + 1]
        o1 = max(s, other[2 * axis])
        o2 = min(e, other[2 * axis + 1])
        n = view.shape[axis]
        per_axis = []
        for i in range(out[axis]):
            centre = o1 + (Fraction(2 * i + 1, 2 * out[axis])) * (o2 - o1)
            per_axis.append(min(math.floor((centre - s) / (e - s) * n), n - 1))
        index.append(per_axis)
    for i, a in enumerate(index[0]):
        for j, b in enumerate(index[1]):
            for k, c in enumerate(index[2]):
                result[i, j, k] = view[a, b, c]
    return result


@st.composite
def overlapping_boxes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    box1: list[int] = []
    box2: list[int] = []
    for size in WORLD:
        s1 = draw(st.integers(0, size - 2))
        e1 = draw(st.integers(s1 + 1, size))
        s2 = draw(st.integers(0, e1 - 1))  # starts before box 1 ends ...
        e2 = draw(st.integers(max(s2, s1) + 1, size))  # ... and ends after box 1 starts: overlap >= 1
        box1 += [s1, e1]
        box2 += [s2, e2]
    return tuple(box1), tuple(box2)


sizes = st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 5))


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(overlapping_boxes(), min_size=1, max_size=3), map1=sizes, map2=sizes, out=sizes)
def test_nearest_matches_brute_force(
    pairs: list[tuple[tuple[int, ...], tuple[int, ...]]],
    map1: tuple[int, int, int],
    map2: tuple[int, int, int],
    out: tuple[int, int, int],
) -> None:
    world = world_ids()
    views1 = np.stack([crop_and_resize(world, b1, map1) for b1, _ in pairs])[:, None]
    views2 = np.stack([crop_and_resize(world, b2, map2) for _, b2 in pairs])[:, None]
    boxes1 = torch.tensor([b1 for b1, _ in pairs])
    boxes2 = torch.tensor([b2 for _, b2 in pairs])
    aligned = roi_align_overlap(torch.from_numpy(views1), torch.from_numpy(views2), boxes1, boxes2, output_size=out)
    assert aligned.valid.all()
    for b, (b1, b2) in enumerate(pairs):
        ids1 = aligned.view1[b, 0].numpy()
        ids2 = aligned.view2[b, 0].numpy()
        np.testing.assert_array_equal(ids1, reference_align(views1[b, 0], b1, b2, out))
        np.testing.assert_array_equal(ids2, reference_align(views2[b, 0], b2, b1, out))
        # both views sample the same physical point, up to half a map cell of each view (+1: voxel grid)
        extent1 = np.array([b1[1] - b1[0], b1[3] - b1[2], b1[5] - b1[4]])
        extent2 = np.array([b2[1] - b2[0], b2[3] - b2[2], b2[5] - b2[4]])
        tolerance = extent1 / (2 * np.array(map1)) + extent2 / (2 * np.array(map2)) + 1
        gap = np.abs(decode(ids1) - decode(ids2))
        assert (gap <= tolerance).all()


@settings(max_examples=40, deadline=None)
@given(pair=overlapping_boxes())
def test_same_physical_voxel_at_voxel_resolution(pair: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    """Maps at their boxes' own resolution, output at the overlap's resolution: identical voxel ids."""
    b1, b2 = pair
    world = world_ids()
    crop1 = world[b1[0] : b1[1], b1[2] : b1[3], b1[4] : b1[5]]
    crop2 = world[b2[0] : b2[1], b2[2] : b2[3], b2[4] : b2[5]]
    start, end, valid = overlap_of_boxes(torch.tensor([b1]), torch.tensor([b2]))
    out = tuple((end - start)[0].tolist())
    # the two maps have different sizes; pad them into one batch is not needed: align sample by sample
    aligned = roi_align_overlap(
        torch.from_numpy(np.ascontiguousarray(crop1))[None, None],
        torch.from_numpy(np.ascontiguousarray(crop2))[None, None],
        torch.tensor([b1]),
        torch.tensor([b2]),
        output_size=out,
    )
    expected = world[start[0, 0] : end[0, 0], start[0, 1] : end[0, 1], start[0, 2] : end[0, 2]]
    assert valid.all()
    np.testing.assert_array_equal(aligned.view1[0, 0].numpy(), expected)
    np.testing.assert_array_equal(aligned.view2[0, 0].numpy(), expected)


def centre_coordinates(box: tuple[int, ...], size: tuple[int, int, int]) -> torch.Tensor:
    """``[3, *size]`` float64 map of the physical coordinates of each cell centre."""
    axes = [
        box[2 * a] + (torch.arange(size[a], dtype=torch.float64) + 0.5) * (box[2 * a + 1] - box[2 * a]) / size[a]
        for a in range(3)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


@settings(max_examples=40, deadline=None)
@given(pair=overlapping_boxes(), map1=sizes, map2=sizes, out=sizes)
def test_trilinear_reproduces_linear_fields(
    pair: tuple[tuple[int, ...], tuple[int, ...]],
    map1: tuple[int, int, int],
    map2: tuple[int, int, int],
    out: tuple[int, int, int],
) -> None:
    """A map of physical coordinates is resampled to the output cell centres exactly (away from edges)."""
    b1, b2 = pair
    aligned = roi_align_overlap(
        centre_coordinates(b1, map1)[None],
        centre_coordinates(b2, map2)[None],
        torch.tensor([b1]),
        torch.tensor([b2]),
        output_size=out,
        mode="trilinear",
    )
    start, end, _ = overlap_of_boxes(torch.tensor([b1]), torch.tensor([b2]))
    for axis in range(3):
        o1, o2 = float(start[0, axis]), float(end[0, axis])
        centres = o1 + (torch.arange(out[axis], dtype=torch.float64) + 0.5) * (o2 - o1) / out[axis]
        inside = torch.ones(out[axis], dtype=torch.bool)
        for box, size in ((b1, map1), (b2, map2)):
            s, e = box[2 * axis], box[2 * axis + 1]
            half = (e - s) / (2 * size[axis])
            inside &= (centres >= s + half - 1e-9) & (centres <= e - half + 1e-9)
        shape = [1, 1, 1]
        shape[axis] = out[axis]
        expected = centres.view(shape).expand(out)
        keep = inside.view(shape).expand(out)
        for view in (aligned.view1, aligned.view2):
            torch.testing.assert_close(view[0, axis][keep], expected[keep])


def test_empty_and_degenerate_overlaps_are_masked() -> None:
    maps = torch.rand(4, 3, 4, 4, 2, requires_grad=True)
    box1 = torch.tensor([[0, 8, 0, 8, 0, 4]] * 4)
    box2 = torch.tensor(
        [
            [4, 12, 4, 12, 2, 6],  # overlaps
            [8, 16, 0, 8, 0, 4],  # touches along x only: empty
            [20, 28, 20, 28, 0, 4],  # disjoint
            [2, 2, 0, 8, 0, 4],  # degenerate (zero extent)
        ]
    )
    for mode in ("nearest", "trilinear"):
        aligned = roi_align_overlap(maps, maps, box1, box2, mode=mode)  # type: ignore[arg-type]
        assert aligned.valid.tolist() == [True, False, False, False]
        assert torch.isfinite(aligned.view1).all() and torch.isfinite(aligned.view2).all()
        assert (aligned.view1[1:] == 0).all() and (aligned.view2[1:] == 0).all()
        (aligned.view1.sum() + aligned.view2.sum()).backward()
        assert maps.grad is not None and torch.isfinite(maps.grad).all() and maps.grad[0].abs().sum() > 0
        maps.grad = None


def test_integer_labels_and_gradients() -> None:
    labels = torch.randint(0, 5, (2, 1, 8, 8, 4))
    boxes = torch.tensor([[0, 16, 0, 16, 0, 8], [3, 19, 2, 18, 1, 9]])
    aligned = roi_align_overlap(labels, labels, boxes, boxes.flip(0))
    assert aligned.view1.dtype == torch.int64
    assert set(aligned.view1.unique().tolist()) <= set(labels.unique().tolist())
    # identical boxes and identical maps: alignment is the identity
    same = roi_align_overlap(labels, labels, boxes, boxes)
    assert torch.equal(same.view1, labels) and torch.equal(same.view2, labels)
    with pytest.raises(ValueError, match="floating"):
        roi_align_overlap(labels, labels, boxes, boxes, mode="trilinear")


def test_bad_shapes_are_errors() -> None:
    maps = torch.zeros(2, 3, 4, 4, 4)
    boxes = torch.zeros(2, 6, dtype=torch.int64)
    with pytest.raises(ValueError, match="B, C, h, w, d"):
        roi_align_overlap(maps[0], maps[0], boxes, boxes)
    with pytest.raises(ValueError, match="boxes must be"):
        roi_align_overlap(maps, maps, boxes[:1], boxes)
    with pytest.raises(ValueError, match="output_size"):
        roi_align_overlap(maps, maps, boxes, boxes, output_size=(4, 4))
    with pytest.raises(ValueError, match="nearest-only"):
        roi_align_overlap(maps, maps, boxes, boxes, mode="trilinear", legacy=True)


def test_legacy_truncation_hand_computed() -> None:
    """Thesis: overlap as truncated fractions of each box, slice, nearest resize; offsets differ."""
    maps = torch.arange(4.0).reshape(1, 1, 4, 1, 1)  # 4 cells covering [0, 10) (view 1) or [3, 13) (view 2)
    box1 = torch.tensor([[0, 10, 0, 1, 0, 1]])
    box2 = torch.tensor([[3, 13, 0, 1, 0, 1]])
    legacy = roi_align_overlap(maps, maps, box1, box2, legacy=True)
    # view 1: int(3/10·4)=1 .. int(10/10·4)=4 -> cells [1, 2, 3] stretched to 4: [1, 1, 2, 3]
    # view 2: int(0)=0 .. int(7/10·4)=2 -> cells [0, 1] stretched to 4: [0, 0, 1, 1]
    assert legacy.view1.flatten().tolist() == [1.0, 1.0, 2.0, 3.0]
    assert legacy.view2.flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    exact = roi_align_overlap(maps, maps, box1, box2)
    # output centres 3.875, 5.625, 7.375, 9.125 -> view 1 cells [1, 2, 2, 3], view 2 cells [0, 1, 1, 2]
    assert exact.view1.flatten().tolist() == [1.0, 2.0, 2.0, 3.0]
    assert exact.view2.flatten().tolist() == [0.0, 1.0, 1.0, 2.0]


def test_legacy_zero_extent_is_masked_not_a_crash() -> None:
    """On a coarse patch grid a thin overlap truncates to an empty slice (the thesis crashed)."""
    maps = torch.rand(1, 2, 2, 2, 2)
    box1 = torch.tensor([[0, 16, 0, 16, 0, 16]])
    box2 = torch.tensor([[15, 31, 0, 16, 0, 16]])
    legacy = roi_align_overlap(maps, maps, box1, box2, legacy=True)
    assert legacy.valid.tolist() == [False] and (legacy.view1 == 0).all()
    assert roi_align_overlap(maps, maps, box1, box2).valid.tolist() == [True]


def test_legacy_equals_exact_when_boxes_coincide() -> None:
    maps1 = torch.rand(2, 3, 4, 4, 2)
    maps2 = torch.rand(2, 3, 4, 4, 2)
    boxes = torch.tensor([[0, 32, 0, 32, 0, 16], [8, 40, 4, 36, 2, 18]])
    legacy = roi_align_overlap(maps1, maps2, boxes, boxes, legacy=True)
    exact = roi_align_overlap(maps1, maps2, boxes, boxes)
    assert torch.equal(legacy.view1, exact.view1) and torch.equal(legacy.view2, exact.view2)
    assert torch.equal(legacy.view1, maps1)
