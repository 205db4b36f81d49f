"""Aggregation over seeds against values computed by hand."""

import numpy as np
import pytest

from rl_transfer.stats import aggregate, iqm, probability_of_improvement, verdict


def test_iqm_trims_a_quarter_each_side():
    # sorted -50,1,2,3,4,5,6,100: trim 2 each side -> mean of 2,3,4,5
    assert iqm([100, 1, 3, 4, 5, 6, 2, -50]) == pytest.approx(3.5)
    assert iqm([1.0, 2.0, 6.0]) == pytest.approx(3.0)  # 3 values: the mean


def test_bootstrap_two_values_gives_their_range():
    # Resample means of {a, b}: a w.p. 1/4, (a+b)/2 w.p. 1/2, b w.p. 1/4 -> 2.5%/97.5% = a/b
    agg = aggregate([1.0, 3.0])
    assert agg.iqm == 2.0
    assert agg.ci == (1.0, 3.0)


def test_bootstrap_interval_of_three_values_by_hand():
    # 27 equally likely resamples of {0, 0, 3}: means 0 (8/27), 1 (12/27), 2 (6/27), 3 (1/27).
    # 2.5th percentile = 0; 97.5th: P(mean <= 2) = 26/27 = 0.963 < 0.975 -> 3
    agg = aggregate([0.0, 0.0, 3.0])
    assert agg.ci == (0.0, 3.0)
    # {0, 3, 3}: means 3 w.p. 8/27 and 0 w.p. 1/27 -> 2.5th = 0? P(mean=0)=1/27=0.037 > 0.025
    assert aggregate([0.0, 3.0, 3.0]).ci == (0.0, 3.0)


def test_bootstrap_is_seeded_and_matches_large_sample_percentiles():
    x = np.arange(20, dtype=float)
    a, b = aggregate(list(x)), aggregate(list(x))
    assert a.ci == b.ci
    # hand check by numpy resampling with many draws: within 0.2 of scipy's interval
    rng = np.random.default_rng(1)
    from scipy.stats import trim_mean

    draws = trim_mean(rng.choice(x, size=(100_000, 20)), 0.25, axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    assert a.ci[0] == pytest.approx(lo, abs=0.2)
    assert a.ci[1] == pytest.approx(hi, abs=0.2)


def test_degenerate_and_missing_values():
    assert aggregate([2.0, 2.0, 2.0]).ci == (2.0, 2.0)
    one = aggregate([None, 5.0, None])
    assert (one.iqm, one.ci, one.n_defined) == (5.0, None, 1)
    none = aggregate([None, None])
    assert (none.iqm, none.ci, none.n_defined) == (None, None, 0)


def test_probability_of_improvement_counts_ties_half():
    # pairs (x>y): x=1: vs 2,2,0 -> 1 win ; x=2: ties 2, win 1 -> 1 + 1 ; x=3: 3 wins -> total 6/9
    assert probability_of_improvement([1, 2, 3], [2, 2, 0]) == pytest.approx(6 / 9)
    assert probability_of_improvement([5, 5], [1, 1]) == 1.0


def test_verdict_rule():
    assert verdict((0.1, 0.3)) == "positive"
    assert verdict((-0.3, -0.01)) == "negative"
    assert verdict((-0.1, 0.2)) == "inconclusive"
    assert verdict(None) == "inconclusive"
