"""Statistics of a label-efficiency sweep: pure functions of NumPy arrays (no files, no torch).

A sweep's scores for one method, label ratio and region form a ``seeds x cases`` matrix (the test
cases are the same for every seed; NaN where a score is missing, e.g. a case scored NaN under the
empty-mask policy). :func:`describe` gives its mean, standard deviation and a bootstrap confidence
interval of the mean; :func:`paired_wilcoxon` compares two methods case by case.

The bootstrap resamples seeds and cases independently, with replacement (a two-way bootstrap of a
crossed design): each replicate takes ``S`` seed rows and ``C`` case columns of the matrix and
averages them, so the interval reflects both the spread over training seeds and the spread over test
cases. The interval is the percentile interval of the replicates' means. Replicates are drawn from
``numpy.random.default_rng(seed)``, so a fixed seed gives the same interval every time.

Example:
    >>> import numpy as np
    >>> stats = describe(np.array([[0.8, 0.6], [0.7, 0.5]]), resamples=2000, seed=0)
    >>> round(stats.mean, 3), round(stats.std, 3), stats.n_seeds, stats.n_cases
    (0.65, 0.112, 2, 2)
    >>> stats.ci_low <= stats.mean <= stats.ci_high
    True
    >>> paired_wilcoxon([0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.45]).p_value  # 2 / 2**5
    0.0625
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Description:
    """Mean, spread and bootstrap interval of a ``seeds x cases`` score matrix (NaN entries left out)."""

    mean: float
    std: float
    """Population standard deviation of all scores (seeds and cases together)."""
    seed_std: float
    """Population standard deviation of the per-seed means (0 with one seed)."""
    ci_low: float
    ci_high: float
    n_seeds: int
    n_cases: int
    n: int
    """Scores that are not NaN."""


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of paired scores: two-sided p-value and the mean difference ``a - b``."""

    p_value: float
    mean_difference: float
    n_pairs: int
    """Pairs with both scores present (pairs with equal scores count here but not in the test)."""


def as_matrix(scores: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    """``scores`` as a float ``seeds x cases`` matrix (a 1-D input is one seed)."""
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise ValueError(f"expected a seeds x cases matrix, got shape {matrix.shape}")
    return matrix


def bootstrap_ci(
    scores: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    *,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean score, resampling seeds and cases (see the module docstring).

    NaN scores are left out of every replicate's mean; ``(nan, nan)`` when no score is present.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    matrix = as_matrix(scores)
    present = ~np.isnan(matrix)
    if not present.any():
        return math.nan, math.nan
    n_seeds, n_cases = matrix.shape
    values = np.where(present, matrix, 0.0)
    weights = present.astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    block = max(1, 2_000_000 // max(1, n_seeds * n_cases))  # replicates per vectorised step, bounded memory
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        seed_rows = rng.integers(0, n_seeds, size=(count, n_seeds))
        case_cols = rng.integers(0, n_cases, size=(count, n_cases))
        picked = values[seed_rows[:, :, None], case_cols[:, None, :]]
        kept = weights[seed_rows[:, :, None], case_cols[:, None, :]]
        totals, counts = picked.sum(axis=(1, 2)), kept.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start : start + count] = totals / counts
    means = means[~np.isnan(means)]  # replicates that drew only missing scores
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def describe(
    scores: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    *,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Description:
    """Mean, standard deviations, bootstrap interval and counts of a ``seeds x cases`` score matrix."""
    matrix = as_matrix(scores)
    present = matrix[~np.isnan(matrix)]
    if present.size == 0:
        nan = math.nan
        return Description(nan, nan, nan, nan, nan, matrix.shape[0], matrix.shape[1], 0)
    with warnings.catch_warnings():  # a seed whose scores are all NaN: "Mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        seed_means = np.nanmean(matrix, axis=1)
    seed_means = seed_means[~np.isnan(seed_means)]
    low, high = bootstrap_ci(matrix, level=level, resamples=resamples, seed=seed)
    return Description(
        mean=float(present.mean()),
        std=float(present.std()),
        seed_std=float(seed_means.std()),
        ci_low=low,
        ci_high=high,
        n_seeds=int(matrix.shape[0]),
        n_cases=int(matrix.shape[1]),
        n=int(present.size),
    )


def paired_wilcoxon(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of ``a`` against ``b``, paired by position.

    Pairs with a NaN on either side are dropped; pairs with equal scores are dropped from the test
    (``zero_method="wilcox"``). SciPy chooses the exact null distribution for small samples without
    ties and the normal approximation otherwise. The p-value is NaN when no pair differs (nothing to
    test), and the mean difference NaN when there is no pair.
    """
    from scipy.stats import wilcoxon

    left, right = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if left.shape != right.shape or left.ndim != 1:
        raise ValueError(f"paired scores need two vectors of one length, got {left.shape} and {right.shape}")
    both = ~(np.isnan(left) | np.isnan(right))
    differences = left[both] - right[both]
    n_pairs = int(differences.size)
    mean_difference = float(differences.mean()) if n_pairs else math.nan
    if not np.any(differences != 0):
        return PairedTest(math.nan, mean_difference, n_pairs)
    result = wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    return PairedTest(float(result.pvalue), mean_difference, n_pairs)
