"""Resampling (torch, separable) and intensity normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from radiossl.data.normalise import (
    IntensityConfig,
    default_intensity,
    default_threshold,
    fit_intensity,
    normalise,
)
from radiossl.data.resample import output_shape, resample_array, resample_volume
from radiossl.io import Volume


def test_output_shape_follows_the_original_rounding_rule() -> None:
    assert output_shape((512, 512, 100), (0.7, 0.7, 2.5), (1.0, 1.0, 1.0)) == (358, 358, 250)
    assert output_shape((3, 3, 3), (1.0, 1.0, 1.0), (100.0, 100.0, 100.0)) == (1, 1, 1)


def test_same_spacing_is_a_no_op() -> None:
    array = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    assert resample_array(array, (1, 1, 2), (1, 1, 2)) is array
    labels = array.astype(np.int16)
    assert resample_array(labels, (1, 1, 1), (1, 1, 1), "nearest") is labels


@settings(max_examples=25, deadline=None)
@given(
    a=st.floats(-3, 3),
    b=st.floats(-3, 3),
    c=st.floats(-3, 3),
    spacing=st.tuples(*(st.sampled_from([0.5, 0.8, 1.0, 2.5]) for _ in range(3))),
    target=st.tuples(*(st.sampled_from([0.7, 1.0, 1.5]) for _ in range(3))),
)
def test_linear_resampling_is_exact_on_linear_ramps(
    a: float, b: float, c: float, spacing: tuple, target: tuple
) -> None:
    shape = (6, 5, 7)
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    world = a * i * spacing[0] + b * j * spacing[1] + c * k * spacing[2]
    out = resample_array(world.astype(np.float32), spacing, target)
    oi, oj, ok = np.meshgrid(*(np.arange(n) for n in out.shape), indexing="ij")
    pos = [oi * target[0], oj * target[1], ok * target[2]]
    # inside the input's extent the output is the ramp at the output voxel's world position
    inside = (pos[0] <= (shape[0] - 1) * spacing[0]) & (pos[1] <= (shape[1] - 1) * spacing[1])
    inside &= pos[2] <= (shape[2] - 1) * spacing[2]
    expected = a * pos[0] + b * pos[1] + c * pos[2]
    assert out.dtype == np.float32
    assert np.allclose(out[inside], expected[inside], atol=1e-4)


def test_nearest_keeps_label_values_and_dtype() -> None:
    labels = np.random.default_rng(0).choice(np.array([0, 1, 2, 4], dtype=np.int16), size=(9, 8, 5))
    out = resample_array(labels, (1.0, 1.0, 2.0), (0.6, 1.3, 1.0), "nearest")
    assert out.dtype == np.int16
    assert set(np.unique(out)) <= {0, 1, 2, 4}
    assert out.shape == output_shape(labels.shape, (1.0, 1.0, 2.0), (0.6, 1.3, 1.0))


def test_channels_first_arrays_and_explicit_shape() -> None:
    array = np.random.default_rng(1).random((2, 8, 8, 4)).astype(np.float32)
    out = resample_array(array, (1, 1, 2), (2, 2, 2))
    assert out.shape == (2, 4, 4, 4)
    assert np.allclose(out[1], resample_array(array[1], (1, 1, 2), (2, 2, 2)))
    back = resample_array(out, (2, 2, 2), (1, 1, 2), shape=(8, 8, 4))
    assert back.shape == array.shape


def test_resample_volume_keeps_origin_and_direction() -> None:
    affine = np.array([[-0.8, 0, 0, 10.0], [0, -0.8, 0, 20.0], [0, 0, 2.5, -5.0], [0, 0, 0, 1]])
    volume = Volume(np.zeros((10, 10, 4), np.float32), affine)
    out = resample_volume(volume, (1.0, 1.0, 1.0))
    assert out.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert out.origin == pytest.approx(volume.origin)
    assert np.allclose(out.direction, volume.direction)
    assert out.shape == (8, 8, 10)


def test_ct_window() -> None:
    config = IntensityConfig(mode="ct-window", window=(-1000, 1000))
    out = normalise(np.array([-3000.0, -1000.0, -150.0, 0.0, 3000.0]), config)
    assert out.tolist() == pytest.approx([0.0, 0.0, 0.425, 0.5, 1.0])
    assert default_threshold("ct", fit_intensity(out, config), -1000, 1000) == pytest.approx(0.425)


def test_minmax_and_constant_volumes() -> None:
    out = normalise(np.array([2.0, 4.0, 6.0]), IntensityConfig(mode="minmax"))
    assert out.tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert normalise(np.full(5, 7.0), IntensityConfig(mode="minmax")).tolist() == [0.0] * 5


def test_percentile_modes() -> None:
    values = np.concatenate([np.zeros(1000), np.linspace(0, 100, 1001), [1e6]]).astype(np.float32)
    clipped = normalise(values, IntensityConfig(mode="percentile", percentiles=(1, 99), nonzero=True))
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    z = normalise(values, IntensityConfig(mode="percentile-zscore", percentiles=(1, 99), nonzero=True))
    assert abs(float(z[values != 0].mean())) < 0.05
    plain = normalise(values, IntensityConfig(mode="zscore"))
    assert float(plain.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(plain.std()) == pytest.approx(1.0, abs=1e-3)


def test_mri_threshold_is_two_percent_of_the_raw_range() -> None:
    raw = np.array([0.0, 50.0, 1000.0])
    fitted = fit_intensity(raw, IntensityConfig(mode="minmax"))
    assert default_threshold("mri", fitted, 0.0, 1000.0) == pytest.approx(0.02)
    assert default_threshold("mri", fitted, 5.0, 5.0) == float("inf")  # constant volume: no foreground


def test_defaults_and_validation() -> None:
    assert default_intensity("ct").mode == "ct-window"
    assert default_intensity("mri").mode == "minmax"
    assert not IntensityConfig(mode="zscore").bounded
    with pytest.raises(ValidationError):
        IntensityConfig(mode="ct-window", window=(100, -100))
    with pytest.raises(ValidationError):
        IntensityConfig(mode="percentile", percentiles=(99, 1))
    with pytest.raises(ValidationError):
        IntensityConfig(mode="log")  # type: ignore[arg-type]
