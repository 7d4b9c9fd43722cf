"""Effective rank, spread ratio and the collapse monitor against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.ops.embedding_stats import CollapseMonitor, effective_rank, pooled_embeddings, spread_ratio


def test_effective_rank_of_orthogonal_rows_is_their_count() -> None:
    assert effective_rank(torch.eye(6)) == pytest.approx(6.0, rel=1e-5)
    assert effective_rank(torch.eye(6)[:3] * 5.0) == pytest.approx(3.0, rel=1e-5)


def test_effective_rank_matches_the_rankme_formula() -> None:
    matrix = torch.diag(torch.tensor([3.0, 1.0])).repeat(2, 1)  # singular values sqrt(2)·(3, 1)
    share = torch.tensor([0.75, 0.25]) + 1e-7
    expected = math.exp(-float((share * share.log()).sum()))
    assert effective_rank(matrix) == pytest.approx(expected, rel=1e-6)


def test_rank_one_and_zero_embeddings() -> None:
    line = torch.arange(1.0, 11.0)[:, None] * torch.tensor([[1.0, -2.0, 0.5]])
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-4)
    assert effective_rank(torch.zeros(4, 3)) == 0.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0))
def test_rank_and_spread_do_not_depend_on_sample_order_or_scale(seed: int, scale: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(20, 5, generator=generator)
    order = torch.randperm(20, generator=generator)
    assert effective_rank(embeddings[order] * scale) == pytest.approx(effective_rank(embeddings), rel=1e-4)
    assert spread_ratio(embeddings[order] * scale) == pytest.approx(spread_ratio(embeddings), rel=1e-4)


def test_spread_ratio_by_hand() -> None:
    # unit vectors (1, 0) and (0, 1): per-dimension std (unbiased) is sqrt(0.5) each, times sqrt(2) = 1
    assert spread_ratio(torch.tensor([[2.0, 0.0], [0.0, 3.0]])) == pytest.approx(1.0, rel=1e-6)
    assert spread_ratio(torch.tensor([[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]])) == pytest.approx(0.0, abs=1e-7)


def test_pooled_embeddings_average_over_space() -> None:
    features = torch.arange(16.0).reshape(1, 2, 2, 2, 2)
    assert pooled_embeddings(features).tolist() == [[3.5, 11.5]]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        effective_rank(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="at least 2"):
        spread_ratio(torch.zeros(1, 3))


def test_monitor_warns_once_after_patience_and_again_after_recovery() -> None:
    monitor = CollapseMonitor(patience=2)
    low = {"rank": 1.0, "spread": 0.01, "dimension": 64}
    good = {"rank": 40.0, "spread": 0.9, "dimension": 64}
    warnings = [monitor.update(0, **low), monitor.update(1, **low), monitor.update(2, **low)]
    assert warnings[0] is None and warnings[2] is None
    assert warnings[1] is not None and "since epoch 1" in warnings[1] and "rank 1.0 of 64" in warnings[1]
    assert monitor.update(3, **good) is None
    assert monitor.update(4, **low) is None and monitor.update(5, **low) is not None
    assert monitor.history == [0, 1, 2, 4, 5]


def test_monitor_state_round_trip_resumes_exactly() -> None:
    low = {"rank": 1.0, "spread": 0.01, "dimension": 64}
    uninterrupted = CollapseMonitor(patience=3)
    outputs = [uninterrupted.update(epoch, **low) for epoch in range(4)]
    first = CollapseMonitor(patience=3)
    first.update(0, **low)
    resumed = CollapseMonitor(patience=3)
    resumed.load_state_dict(first.state_dict())
    assert [None, *[resumed.update(epoch, **low) for epoch in range(1, 4)]] == outputs
