"""Soft cross-entropy, swapped prediction and the thesis' legacy ``ce``: hand-computed values, NaN safety."""

from __future__ import annotations

import math

import pytest
import torch

from radiossl.losses.legacy_ce import legacy_ce, legacy_swav
from radiossl.losses.swapped_ce import (
    SoftCrossEntropy,
    SwappedPredictionLoss,
    cross_entropy_soft,
    safe_log,
    swapped_prediction_loss,
)


def test_cross_entropy_hand_computed() -> None:
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    probs = torch.tensor([[0.8, 0.2], [0.25, 0.75]])
    # position 0: -log 0.8 = 0.223144; position 1: -(0.5 log 0.25 + 0.5 log 0.75) = 0.836988
    expected = (0.2231435513 + 0.8369882167) / 2
    assert float(cross_entropy_soft(targets, probs.log(), dim=1)) == pytest.approx(expected, abs=1e-6)


def test_class_axis_of_dense_maps() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 3, 2, generator=g)
    targets = torch.softmax(torch.randn(2, 4, 3, 3, 2, generator=g), dim=1)
    log_p = torch.log_softmax(logits, dim=1)
    manual = -(targets * log_p).sum(1).mean()
    torch.testing.assert_close(cross_entropy_soft(targets, log_p, dim=1), manual)
    # one-hot targets: identical to torch's integer-label cross-entropy
    labels = torch.randint(0, 4, (2, 3, 3, 2), generator=g)
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 4, 1, 2, 3).float()
    torch.testing.assert_close(cross_entropy_soft(onehot, log_p), torch.nn.functional.cross_entropy(logits, labels))


def test_swapped_prediction_hand_computed() -> None:
    t1 = torch.tensor([[1.0, 0.0]])
    t2 = torch.tensor([[0.0, 1.0]])
    p1 = torch.tensor([[0.9, 0.1]])
    p2 = torch.tensor([[0.6, 0.4]])
    # ½ [CE(t1, p2) + CE(t2, p1)] = ½ [-log 0.6 - log 0.1]
    expected = 0.5 * (-math.log(0.6) - math.log(0.1))
    got = swapped_prediction_loss(t1, t2, p1.log(), p2.log())
    assert float(got) == pytest.approx(expected, abs=1e-6)
    # not the unswapped pairing
    assert float(got) != pytest.approx(0.5 * (-math.log(0.9) - math.log(0.4)), abs=1e-3)


def test_zero_probabilities_give_no_nan() -> None:
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    probs = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    loss = cross_entropy_soft(targets, torch.log(probs))  # log 0 = -inf where the target is 0
    assert float(loss.detach()) == 0.0
    logits = torch.tensor([[50.0, -200.0, -200.0]], requires_grad=True)
    loss = swapped_prediction_loss(targets, targets, torch.log_softmax(logits, 1), torch.log_softmax(logits, 1))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert torch.isfinite(safe_log(torch.zeros(3))).all()


def test_mask_excludes_samples() -> None:
    g = torch.Generator().manual_seed(1)
    targets = torch.softmax(torch.randn(3, 5, 2, 2, 2, generator=g), 1)
    log_p = torch.log_softmax(torch.randn(3, 5, 2, 2, 2, generator=g), 1)
    mask = torch.tensor([True, False, True])
    expected = cross_entropy_soft(targets[mask], log_p[mask])
    torch.testing.assert_close(cross_entropy_soft(targets, log_p, mask=mask), expected)
    assert float(cross_entropy_soft(targets, log_p, mask=torch.zeros(3, dtype=torch.bool))) == 0.0


def test_modules_match_functions() -> None:
    g = torch.Generator().manual_seed(2)
    t1, t2 = (torch.softmax(torch.randn(4, 6, generator=g), 1) for _ in range(2))
    l1, l2 = (torch.log_softmax(torch.randn(4, 6, generator=g), 1) for _ in range(2))
    torch.testing.assert_close(SoftCrossEntropy(dim=1)(t1, l1), cross_entropy_soft(t1, l1))
    torch.testing.assert_close(SwappedPredictionLoss(dim=1)(t1, t2, l1, l2), swapped_prediction_loss(t1, t2, l1, l2))


def test_loss_is_float32_under_half_inputs() -> None:
    t = torch.softmax(torch.randn(4, 3), 1).to(torch.bfloat16)
    log_p = torch.log_softmax(torch.randn(4, 3), 1).to(torch.bfloat16)
    assert cross_entropy_soft(t, log_p).dtype == torch.float32


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        cross_entropy_soft(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="shape mismatch"):
        legacy_ce(torch.zeros(2, 3), torch.zeros(3, 2))


def test_legacy_ce_is_mean_over_all_elements() -> None:
    """The thesis' ``ce`` averages over the class axis too: K times smaller than the per-position CE."""
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    expected = -(math.log(0.7) + math.log(0.25)) / 8
    assert float(legacy_ce(targets, probs)) == pytest.approx(expected, abs=1e-7)
    assert float(legacy_ce(targets, probs)) * 4 == pytest.approx(float(cross_entropy_soft(targets, probs.log())))
    # legacy swav pairs view-1 targets with view-2 probabilities
    assert float(legacy_swav(targets, targets, probs, probs)) == pytest.approx(expected, abs=1e-7)
    swapped = legacy_swav(targets[:1], targets[1:], probs[1:], probs[:1])
    assert float(swapped) == pytest.approx(0.5 * (-math.log(0.7) / 4 - math.log(0.25) / 4), abs=1e-7)


def test_legacy_ce_epsilon_prevents_nan() -> None:
    targets = torch.tensor([[1.0, 0.0]])
    probs = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = legacy_ce(targets, probs)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(probs.grad).all()
    assert math.isnan(float(-(targets * probs.detach().log()).mean()))  # what the thesis computed
