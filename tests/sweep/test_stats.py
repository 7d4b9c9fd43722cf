"""The sweep's statistics against hand-computed values and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from radiossl.sweep.stats import bootstrap_ci, describe, paired_wilcoxon


def test_bootstrap_of_constant_scores_is_that_constant() -> None:
    assert bootstrap_ci([0.7, 0.7, 0.7], seed=3) == (pytest.approx(0.7), pytest.approx(0.7))


def test_bootstrap_interval_of_two_cases_is_their_range() -> None:
    # The mean of two cases drawn with replacement from {0, 1} is 0, 0.5 or 1 with probabilities 1/4, 1/2,
    # 1/4: the 2.5 % and 97.5 % quantiles are 0 and 1.
    assert bootstrap_ci([0.0, 1.0], seed=0) == (0.0, 1.0)


def test_bootstrap_interval_matches_the_hand_computed_quantiles() -> None:
    # Four cases, one of them 1: a replicate's mean is k/4 with k ~ Binomial(4, 1/4), so
    # P(k <= 2) = 0.949 < 0.975 <= P(k <= 3) = 0.996: the interval is (0, 0.75).
    assert bootstrap_ci([0.0, 0.0, 0.0, 1.0], seed=0) == (0.0, 0.75)


def test_bootstrap_resamples_seeds_too() -> None:
    # Two seeds that agree within themselves: the replicates are the seeds' spread (0, 0.5 or 1).
    assert bootstrap_ci([[0.0, 0.0], [1.0, 1.0]], seed=0) == (0.0, 1.0)
    # Identical seeds leave only the spread over cases: (0, 0.75) as for a single seed.
    assert bootstrap_ci([[0.0, 0.0, 0.0, 1.0]] * 3, seed=0) == (0.0, 0.75)


def test_bootstrap_is_fixed_by_its_seed_and_skips_missing_scores() -> None:
    scores = np.array([[0.61, 0.72, math.nan, 0.55], [0.66, 0.70, 0.58, 0.52]])
    first = bootstrap_ci(scores, seed=7, resamples=2000)
    assert first == bootstrap_ci(scores, seed=7, resamples=2000)
    assert 0.52 <= first[0] < first[1] <= 0.72
    assert bootstrap_ci([math.nan, math.nan]) == (pytest.approx(math.nan, nan_ok=True),) * 2


def test_describe_gives_mean_spreads_and_counts() -> None:
    stats = describe([[0.8, 0.6], [0.7, math.nan]], resamples=500)
    assert stats.mean == pytest.approx(0.7)
    assert stats.std == pytest.approx(np.std([0.8, 0.6, 0.7]))
    assert stats.seed_std == pytest.approx(0.0)  # both seeds average 0.7
    assert (stats.n_seeds, stats.n_cases, stats.n) == (2, 2, 3)


def test_wilcoxon_matches_the_exact_hand_computed_p_value() -> None:
    # Five pairs, all a > b: W- = 0 is the most extreme of 2**5 equally likely sign patterns, both sides: 2/32.
    result = paired_wilcoxon([0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.45])
    assert result.p_value == pytest.approx(2 / 32)
    assert result.n_pairs == 5 and result.mean_difference == pytest.approx(0.41)


def test_wilcoxon_drops_incomplete_pairs_as_scipy_would_see_them() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(12), rng.random(12)
    a[3], b[7] = math.nan, math.nan
    keep = ~(np.isnan(a) | np.isnan(b))
    result = paired_wilcoxon(a, b)
    assert result.n_pairs == 10
    assert result.p_value == pytest.approx(wilcoxon(a[keep], b[keep]).pvalue)


def test_wilcoxon_with_ties_and_zero_differences_matches_scipy() -> None:
    a = [0.5, 0.6, 0.6, 0.7, 0.8, 0.8, 0.9, 0.4]
    b = [0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.95, 0.3]
    assert paired_wilcoxon(a, b).p_value == pytest.approx(wilcoxon(a, b, zero_method="wilcox").pvalue)


def test_wilcoxon_without_any_difference_has_no_p_value() -> None:
    result = paired_wilcoxon([0.5, 0.6], [0.5, 0.6])
    assert math.isnan(result.p_value) and result.mean_difference == 0.0 and result.n_pairs == 2
