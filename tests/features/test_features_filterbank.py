"""filterbank: output layout and what each response measures."""

from __future__ import annotations

import pytest
import torch

from radiossl.errors import ConfigError
from radiossl.features.extractors.filterbank import FilterBankExtractor, symmetric_eigvals3


def _grid(shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    axes = [torch.arange(s, dtype=torch.float32) - (s - 1) / 2 for s in shape]
    return torch.meshgrid(*axes, indexing="ij")


def _channel(fb: FilterBankExtractor, features: torch.Tensor, name: str) -> torch.Tensor:
    return features[:, fb.channel_names(1).index(name)]


def test_layout_and_channel_names() -> None:
    fb = FilterBankExtractor({"sigmas": [1.0, 2.0], "features": ["intensity", "gradient", "hessian"]})
    assert fb.feature_dim(1) == 1 + 2 * 4 and fb.feature_dim(2) == 18
    out = fb.extract(torch.rand(3, 2, 12, 10, 8))
    assert out.shape == (3, 18, 12, 10, 8)
    assert len(fb.channel_names(2)) == 18 and fb.channel_names(2)[9] == "c1:intensity"
    assert FilterBankExtractor().feature_dim(1) == 19
    with pytest.raises(ConfigError, match="sigmas"):
        FilterBankExtractor({"sigmas": [0.0]})
    with pytest.raises(ConfigError, match="unknown field"):
        FilterBankExtractor({"sigma": 1.0})


def test_constant_volume_has_no_structure() -> None:
    fb = FilterBankExtractor()
    out = fb.extract(torch.full((1, 1, 16, 16, 8), 0.4))
    names = fb.channel_names(1)
    for i, name in enumerate(names):
        expected = 0.4 if ("intensity" in name or "smoothed" in name) else 0.0
        assert torch.allclose(out[0, i], torch.full_like(out[0, i], expected), atol=1e-5), name


def test_gradient_of_a_ramp_and_blob_shape() -> None:
    fb = FilterBankExtractor({"sigmas": [1.0, 2.0]})
    x, y, z = _grid((24, 24, 24))
    ramp = (0.5 + 0.01 * x).view(1, 1, 24, 24, 24)
    grad = _channel(fb, fb.extract(ramp), "c0:gradient@2")[0]
    assert torch.allclose(grad[8:16, 8:16, 8:16], torch.full((8, 8, 8), 2.0 * 0.01), atol=1e-5)
    blob = torch.exp(-(x**2 + y**2 + z**2) / (2 * 2.0**2)).view(1, 1, 24, 24, 24)
    out = fb.extract(blob)
    eig = torch.stack([_channel(fb, out, f"c0:hessian{i}@2")[0, 11, 11, 11] for i in (1, 2, 3)])
    assert (eig < 0).all()  # a bright blob: curvature negative along every axis
    assert _channel(fb, out, "c0:log@2")[0, 11, 11, 11] < 0
    tube = torch.exp(-(x**2 + y**2) / (2 * 1.5**2)).view(1, 1, 24, 24, 24)
    out = fb.extract(tube)
    eig = [float(_channel(fb, out, f"c0:hessian{i}@2")[0, 11, 11, 11]) for i in (1, 2, 3)]
    assert eig[0] < -0.05 and eig[1] < -0.05 and abs(eig[2]) < 1e-3  # a bright tube along z


def test_closed_form_eigenvalues_match_torch() -> None:
    torch.manual_seed(0)
    a = torch.randn(500, 3, 3, dtype=torch.float64)
    a = a + a.transpose(1, 2)
    a[:5] = torch.diag_embed(
        torch.tensor(
            [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [2.0, 2.0, -1.0], [3.0, -3.0, 0.0], [1e-4, 0.0, 0.0]],
            dtype=torch.float64,
        )
    )
    got = torch.stack(symmetric_eigvals3(a[:, 0, 0], a[:, 1, 1], a[:, 2, 2], a[:, 0, 1], a[:, 0, 2], a[:, 1, 2]), 1)
    assert torch.allclose(got, torch.linalg.eigvalsh(a), atol=1e-9)


def test_channel_weights_favour_intensities_and_fine_scales() -> None:
    fb = FilterBankExtractor({"sigmas": [1.0, 2.0]})
    weights = dict(zip(fb.channel_names(1), fb.channel_weights(1), strict=True))
    assert weights["c0:intensity"] == 1.0 and weights["c0:smoothed@2"] == 0.5
    assert weights["c0:gradient@1"] == pytest.approx(0.3) and weights["c0:hessian3@2"] == pytest.approx(0.15)
    flat = FilterBankExtractor({"kind_weights": {"gradient": 1.0, "log": 1.0, "hessian": 1.0}, "scale_power": 0})
    assert set(flat.channel_weights(2)) == {1.0} and len(flat.channel_weights(2)) == flat.feature_dim(2)
