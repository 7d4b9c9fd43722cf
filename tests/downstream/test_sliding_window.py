"""Sliding-window inference: built-in vs MONAI, window placement, padding, test-time flips."""

from __future__ import annotations

import pytest
import torch

from radiossl.downstream.config import SlidingWindowConfig
from radiossl.downstream.inference import (
    InferenceSettings,
    flip_sets,
    importance_map,
    predict_probabilities,
    sliding_window,
    threshold,
    window_starts,
)
from radiossl.errors import ConfigError


def position_dependent(conv: torch.nn.Module):  # type: ignore[no-untyped-def]
    """A predictor whose output depends on the window it sees (so blending weights matter)."""

    def run(window: torch.Tensor) -> torch.Tensor:
        return conv(window) + window.mean(dim=(1, 2, 3, 4), keepdim=True)

    return run


def test_window_starts_cover_the_axis() -> None:
    assert window_starts(16, 16, 0.5) == [0]
    assert window_starts(40, 16, 0.5) == [0, 8, 16, 24]
    assert window_starts(37, 16, 0.25) == [0, 12, 21]
    with pytest.raises(ValueError):
        window_starts(8, 16, 0.5)


def test_importance_map_is_a_centred_gaussian() -> None:
    weight = importance_map((9, 9, 9), "gaussian", 0.125)
    assert weight.shape == (9, 9, 9)
    assert float(weight[4, 4, 4]) == pytest.approx(1.0)
    assert float(weight.min()) >= 1e-3
    assert torch.allclose(weight, weight.flip(0)) and torch.allclose(weight, weight.permute(1, 0, 2))
    assert torch.equal(importance_map((4, 4, 4), "constant"), torch.ones(4, 4, 4))


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize("sw_batch_size", [1, 4])
def test_builtin_agrees_with_monai(mode: str, sw_batch_size: int) -> None:
    pytest.importorskip("monai")
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 3, 3, padding=1)
    x = torch.rand(2, 2, 37, 29, 13)  # not a multiple of the window, z smaller than the window
    predictor = position_dependent(conv)
    with torch.no_grad():
        ours = sliding_window(x, predictor, (16, 16, 16), 0.5, mode, 0.125, sw_batch_size, backend="builtin")
        theirs = sliding_window(x, predictor, (16, 16, 16), 0.5, mode, 0.125, sw_batch_size, backend="monai")
    assert ours.shape == theirs.shape == (2, 3, 37, 29, 13)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_equivariant_predictor_is_reproduced_exactly() -> None:
    x = torch.rand(1, 1, 20, 24, 9)
    out = sliding_window(x, lambda w: torch.cat([w, -w], dim=1), (8, 16, 8), 0.5, backend="builtin")
    assert torch.allclose(out, torch.cat([x, -x], dim=1), atol=1e-6)


def test_bad_settings() -> None:
    x = torch.zeros(1, 1, 8, 8, 8)
    with pytest.raises(ConfigError, match="overlap"):
        sliding_window(x, lambda w: w, (8, 8, 8), overlap=1.0)
    with pytest.raises(ConfigError, match="backend"):
        sliding_window(x, lambda w: w, (8, 8, 8), backend="other")  # type: ignore[arg-type]


def test_predict_probabilities_with_flips() -> None:
    flips = flip_sets(3, True)
    assert len(flips) == 8 and () in flips and (2, 3, 4) in flips
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3, padding=1))
    model.train()
    image = torch.rand(2, 12, 10, 8)
    plain = predict_probabilities(model, image, InferenceSettings((8, 8, 8), backend="builtin"))
    assert plain.shape == (3, 12, 10, 8) and plain.min() >= 0 and plain.max() <= 1
    assert model.training  # mode restored
    tta = predict_probabilities(model, image.numpy(), InferenceSettings((8, 8, 8), backend="builtin", tta_flips=True))
    # Flip-averaging equals averaging the model and its mirrored copies; check one voxel by hand.
    with torch.no_grad():
        manual = torch.zeros(3, 12, 10, 8)
        for axes in flips:
            x = image[None]
            flipped = torch.flip(x, axes) if axes else x
            out = torch.sigmoid(
                sliding_window(flipped, model, (8, 8, 8), backend="builtin")  # type: ignore[arg-type]
            )
            manual += (torch.flip(out, axes) if axes else out)[0]
    assert torch.allclose(tta, manual / 8, atol=1e-6)
    assert threshold(torch.tensor([0.2, 0.5, 0.7])).tolist() == [False, False, True]


def test_inference_settings_carry_every_sliding_window_field() -> None:
    section = SlidingWindowConfig(
        roi=(32, 32, 16), overlap=0.25, mode="constant", sigma_scale=0.2, sw_batch_size=4, backend="builtin"
    )
    settings = InferenceSettings.from_config(section, (16, 16, 8), tta_flips=True)
    assert settings == InferenceSettings(
        roi=(16, 16, 8),
        overlap=0.25,
        mode="constant",
        sigma_scale=0.2,
        sw_batch_size=4,
        backend="builtin",
        tta_flips=True,
    )
    # The defaults of the two are the same, so a config that leaves a field unset predicts as the library does.
    assert InferenceSettings.from_config(SlidingWindowConfig(), (8, 8, 8)) == InferenceSettings((8, 8, 8))


def test_predict_probabilities_follows_its_settings() -> None:
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 3, padding=1))
    image = torch.rand(1, 20, 20, 12)
    gaussian = predict_probabilities(model, image, InferenceSettings((8, 8, 8), backend="builtin"))
    constant = predict_probabilities(model, image, InferenceSettings((8, 8, 8), mode="constant", backend="builtin"))
    assert not torch.allclose(gaussian, constant)  # the blending mode reaches the windows
    expected = torch.sigmoid(sliding_window(image[None], model, (8, 8, 8), mode="constant", backend="builtin"))[0]
    assert torch.allclose(constant, expected, atol=1e-6)
