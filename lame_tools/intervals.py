"""Confidence intervals and paired comparisons for retrieval scores.

Per-query scores (Hit@1 is 0 or 1) are grouped by subtask. The interval of one subtask's mean is
Wilson's score interval when the scores are 0/1 (closed form), else a percentile bootstrap; the
overall score is the mean of the subtask means, and its interval comes from a stratified bootstrap
(queries resampled within their subtask, so each subtask keeps its size). Two models scored on the
same queries are compared pairwise: the stratified bootstrap of the difference, and McNemar's exact
test on the discordant queries.

scipy's `bootstrap` resamples one flat sample and cannot keep strata, hence our own resampler here;
McNemar's test is scipy's exact binomial test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95
N_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its (low, high) confidence interval."""

    estimate: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def format_points(estimate: float, low: float, high: float, width: int = 0) -> str:
    """A difference of two scores (fractions) in points with its interval, e.g. '+1.2 [-0.3, +2.8]';
    `width` pads each number for aligned columns. The one way every report and table writes one."""
    return f"{100 * estimate:+{width}.1f} [{100 * low:+{width}.1f}, {100 * high:+{width}.1f}]"


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson's score interval for a proportion `successes / n`."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must lie in 0..n")
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends (no rounding residue)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, n)


def wilson_share(successes: int, n: int, confidence: float = CONFIDENCE) -> dict:
    """A proportion as the reports write it: {"n", "count", "share", "interval": [low, high]} (Wilson)."""
    interval = wilson_interval(successes, n, confidence)
    return {"n": n, "count": successes, "share": interval.estimate, "interval": [interval.low, interval.high]}


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Student's t interval of the mean of a few values (e.g. one paired difference per training seed:
    the seeds, not the queries, are the sample). Needs at least two values."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError("a t interval needs at least two values")
    mean = float(x.mean())
    half = float(t.ppf(0.5 + confidence / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size))


def _strata(values: Mapping[str, Sequence[float]] | Sequence[float]) -> dict[str, np.ndarray]:
    if isinstance(values, Mapping):
        strata = {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}
    else:
        strata = {"all": np.asarray(values, dtype=np.float64)}
    if not strata or any(v.ndim != 1 or v.size == 0 for v in strata.values()):
        raise ValueError("every stratum needs a non-empty 1-D array of scores")
    return strata


def stratified_bootstrap(
    values: Mapping[str, Sequence[float]] | Sequence[float],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap replicates of the mean of stratum means: [n_resamples] (deterministic for a seed)."""
    strata = _strata(values)
    rng = np.random.default_rng(seed)
    means = np.zeros(n_resamples)
    for scores in strata.values():
        picks = rng.integers(0, scores.size, size=(n_resamples, scores.size))
        means += scores[picks].mean(axis=1)
    return means / len(strata)


def bootstrap_interval(
    values: Mapping[str, Sequence[float]] | Sequence[float],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of the mean of stratum means (a flat sequence: one stratum)."""
    strata = _strata(values)
    estimate = float(np.mean([v.mean() for v in strata.values()]))
    replicates = stratified_bootstrap(strata, n_resamples, seed)
    low, high = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(estimate, float(low), float(high), sum(v.size for v in strata.values()))


def score_interval(scores: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """One subtask's interval: Wilson's for 0/1 scores, else a percentile bootstrap."""
    array = np.asarray(scores, dtype=np.float64)
    if array.size and np.isin(array, (0.0, 1.0)).all():
        return wilson_interval(int(array.sum()), int(array.size), confidence)
    return bootstrap_interval(array, confidence, seed=seed)


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes (1.0 when no query is discordant)."""
    from scipy.stats import binomtest

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError("paired scores must have the same shape")
    only_a = int(((a == 1) & (b == 0)).sum())
    only_b = int(((a == 0) & (b == 1)).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """Model A minus model B on the same queries."""

    difference: Interval
    p_mcnemar: float | None  # None when the scores are not 0/1
    a_only: int  # queries A gets right and B wrong (0/1 scores)
    b_only: int

    def to_dict(self) -> dict[str, object]:
        return {"difference": self.difference.to_dict(), "p_mcnemar": self.p_mcnemar,
                "a_only": self.a_only, "b_only": self.b_only}


def paired_comparison(
    a: Mapping[str, Sequence[float]] | Sequence[float],
    b: Mapping[str, Sequence[float]] | Sequence[float],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """Paired difference A - B (mean of stratum means), its stratified bootstrap interval and McNemar's p.

    Both arguments hold the same queries in the same order (per stratum). The same resampled query
    indices are used for A and B, which is what makes the comparison paired.
    """
    sa, sb = _strata(a), _strata(b)
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise ValueError("paired scores must cover the same strata and queries")
    diff = {k: sa[k] - sb[k] for k in sa}
    interval = bootstrap_interval(diff, confidence, n_resamples, seed)
    flat_a, flat_b = np.concatenate(list(sa.values())), np.concatenate(list(sb.values()))
    binary = np.isin(flat_a, (0.0, 1.0)).all() and np.isin(flat_b, (0.0, 1.0)).all()
    a_only = int(((flat_a == 1) & (flat_b == 0)).sum()) if binary else 0
    b_only = int(((flat_a == 0) & (flat_b == 1)).sum()) if binary else 0
    return PairedComparison(interval, mcnemar_exact(flat_a, flat_b) if binary else None, a_only, b_only)
