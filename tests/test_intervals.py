"""Interval code against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lame_tools.intervals import (
    bootstrap_interval,
    format_points,
    mcnemar_exact,
    paired_comparison,
    score_interval,
    stratified_bootstrap,
    wilson_interval,
    wilson_share,
)


def test_wilson_matches_the_formula_by_hand():
    # 8 of 10 at 95%: z = 1.959964; centre = (0.8 + z^2/20) / (1 + z^2/10); half = z sqrt(0.016 + z^2/400) / (1 + z^2/10)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    got = wilson_interval(8, 10)
    assert got.estimate == 0.8 and got.n == 10
    assert got.low == pytest.approx(centre - half, abs=1e-9) and got.high == pytest.approx(centre + half, abs=1e-9)
    assert (round(got.low, 4), round(got.high, 4)) == (0.4902, 0.9433)  # the textbook value
    assert wilson_interval(0, 5).low == 0.0 and wilson_interval(5, 5).high == 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    # the reports' form of the same proportion
    assert wilson_share(8, 10) == {"n": 10, "count": 8, "share": 0.8, "interval": [got.low, got.high]}


def test_bootstrap_of_three_values_matches_the_exact_distribution():
    # resampling [0, 0, 1]: the mean is Binomial(3, 1/3) / 3, P = 8/27, 12/27, 6/27, 1/27 at 0, 1/3, 2/3, 1
    replicates = stratified_bootstrap([0.0, 0.0, 1.0], n_resamples=40000, seed=1)
    for value, p in ((0.0, 8 / 27), (1 / 3, 12 / 27), (2 / 3, 6 / 27), (1.0, 1 / 27)):
        assert np.isclose(replicates, value).mean() == pytest.approx(p, abs=0.01)
    got = bootstrap_interval([0.0, 0.0, 1.0], n_resamples=40000, seed=1)
    assert (got.low, got.high) == (0.0, 1.0)  # the 2.5% and 97.5% quantiles of that distribution
    assert bootstrap_interval([1.0] * 7).low == bootstrap_interval([1.0] * 7).high == 1.0


def test_stratified_bootstrap_keeps_strata_and_is_deterministic():
    scores = {"a": [1.0] * 10, "b": [0.0] * 90}
    got = bootstrap_interval(scores)
    assert got.estimate == 0.5 and got.low == got.high == 0.5  # each stratum constant: no spread at all
    mixed = {"a": [0, 1] * 50, "b": [1, 1, 0] * 30}
    assert bootstrap_interval(mixed, seed=3) == bootstrap_interval(mixed, seed=3)
    assert bootstrap_interval(mixed, seed=3).low < bootstrap_interval(mixed).estimate < bootstrap_interval(mixed).high


def test_score_interval_picks_wilson_for_binary_scores():
    assert score_interval([1, 0, 1, 1]) == wilson_interval(3, 4)
    spread = score_interval([0.2, 0.4, 0.9])
    assert spread.low < spread.estimate < spread.high


def test_mcnemar_by_hand():
    # 10 queries only A gets right, 2 only B: two-sided exact p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * 79 / 4096
    a = [1] * 10 + [0] * 2 + [1] * 5 + [0] * 3
    b = [0] * 10 + [1] * 2 + [1] * 5 + [0] * 3
    assert mcnemar_exact(a, b) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact([1, 0], [1, 0]) == 1.0


def test_paired_comparison_uses_the_same_queries():
    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.5).astype(float)
    better = base.copy()
    better[np.flatnonzero(base == 0)[:60]] = 1.0  # A fixes 60 of B's misses, loses none
    got = paired_comparison({"s": better}, {"s": base})
    assert got.difference.estimate == pytest.approx(60 / 400)
    assert got.difference.low > 0 and got.a_only == 60 and got.b_only == 0 and got.p_mcnemar < 1e-10
    same = paired_comparison({"s": base}, {"s": base})
    assert same.difference.low == same.difference.high == 0.0 and same.p_mcnemar == 1.0
    with pytest.raises(ValueError, match="same strata"):
        paired_comparison({"s": base}, {"t": base})


def test_compare_results_pools_the_reasoning_and_perception_subtasks():
    from lame_tools.data.tasks import PERCEPTION_SUBTASKS, REASONING_SUBTASKS, SUBTASK_KIND
    from lame_tools.evaluate.compare import compare_results, format_comparison
    from lame_tools.intervals import paired_comparison

    rng = np.random.default_rng(3)
    per_a = {name: rng.integers(0, 2, 20).astype(float).tolist() for name in SUBTASK_KIND}
    per_b = {name: rng.integers(0, 2, 20).astype(float).tolist() for name in SUBTASK_KIND}

    def result(per):
        return {"tasks": {n: {"per_query": q, "meta_task": SUBTASK_KIND[n]} for n, q in per.items()}}

    report = compare_results(result(per_a), result(per_b))
    for pool, names in (("reasoning", REASONING_SUBTASKS), ("perception", PERCEPTION_SUBTASKS)):
        expected = paired_comparison({n: per_a[n] for n in names}, {n: per_b[n] for n in names}).to_dict()
        assert report["pools"][pool] == expected
        # the pooled difference is the mean of the subtask differences (strata weigh equally)
        assert report["pools"][pool]["difference"]["estimate"] == pytest.approx(
            np.mean([np.mean(per_a[n]) - np.mean(per_b[n]) for n in names]))
    assert "<reasoning>" in format_comparison(report)
    # results without every subtask of a pool have no pool for it
    partial = {n: per_a[n] for n in ("count", "colour_of")}
    assert "pools" not in compare_results(result(partial), result({n: per_b[n] for n in partial}))


def test_compare_results_splits_labelled_queries_by_group():
    from lame_tools.evaluate.compare import compare_results, format_comparison
    from lame_tools.evaluate.report import query_intervals

    # shape_of: 4 held-out queries (A right on all, B on one), then 6 seen ones (both right on 3)
    a_hits, b_hits = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    groups = ["held_out"] * 4 + ["seen"] * 6
    labelled = query_intervals(a_hits, groups)  # what the harness writes
    assert labelled["per_query_group"] == groups
    assert labelled["query_groups"]["held_out"]["score"] == 1.0
    a = {"tasks": {"shape_of": {**labelled, "meta_task": "vqa"}}}
    b = {"tasks": {"shape_of": {"per_query": [float(h) for h in b_hits], "meta_task": "vqa"}}}  # no labels
    report = compare_results(a, b)
    assert report["groups"]["shape_of/held_out"]["difference"]["estimate"] == pytest.approx(0.75)
    assert report["groups"]["shape_of/held_out"]["difference"]["n"] == 4
    assert report["groups"]["shape_of/seen"]["difference"]["estimate"] == pytest.approx(0.0)
    assert report["tasks"]["shape_of"]["difference"]["estimate"] == pytest.approx(0.3)
    assert "shape_of/held_out" in format_comparison(report)
    assert "groups" not in compare_results(b, b)


def test_t_interval_matches_a_hand_computation():
    from lame_tools.intervals import t_interval

    # mean 2.5, sample sd sqrt(5/3) = 1.29099, t(0.975, 3 df) = 3.18245: half-width 2.05426
    ci = t_interval([1.0, 2.0, 3.0, 4.0])
    assert ci.n == 4 and ci.estimate == pytest.approx(2.5)
    assert ci.low == pytest.approx(2.5 - 2.05426, abs=1e-5) and ci.high == pytest.approx(2.5 + 2.05426, abs=1e-5)
    with pytest.raises(ValueError, match="at least two"):
        t_interval([1.0])


def test_format_points_writes_points_with_signs_and_pads_for_columns():
    assert format_points(0.0123, -0.0031, 0.0284) == "+1.2 [-0.3, +2.8]"
    assert format_points(-0.05, -0.1, 0.0) == "-5.0 [-10.0, +0.0]"
    assert format_points(0.012, -0.003, 0.028, width=6) == "  +1.2 [  -0.3,   +2.8]"
