"""Aggregation, tests and decision procedures against values computed by hand."""

import numpy as np
import pytest
from scipy import stats as sps

from rl_transfer.stats import (
    aggregate,
    decide,
    holm,
    iqm,
    look_levels,
    look_schedule,
    paired_t_test,
    probability_of_improvement,
    seeds_needed,
    sequential_look,
    sign_flip_test,
    spent_alpha,
)


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
    assert aggregate([0.0, 3.0, 3.0]).ci == (0.0, 3.0)


def test_bootstrap_is_seeded_and_matches_large_sample_percentiles():
    x = np.arange(20, dtype=float)
    a, b = aggregate(list(x)), aggregate(list(x))
    assert a.ci == b.ci
    rng = np.random.default_rng(1)
    draws = sps.trim_mean(rng.choice(x, size=(100_000, 20)), 0.25, axis=1)
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
    assert probability_of_improvement([1, 2, 3], [2, 2, 0]) == pytest.approx(6 / 9)
    assert probability_of_improvement([5, 5], [1, 1]) == 1.0


def test_paired_t_test_by_hand():
    # d = 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2
    t = 2 / (1 / np.sqrt(3))
    assert paired_t_test([1.0, 2.0, 3.0]) == pytest.approx(2 * sps.t.sf(t, 2))
    assert paired_t_test([1.0, 2.0, 3.0]) == pytest.approx(0.07418, abs=1e-5)
    assert paired_t_test([0.0, 0.0, 0.0]) == 1.0  # no difference at all
    assert paired_t_test([0.0, 1e-17, 0.0]) == 1.0  # equal up to rounding
    assert paired_t_test([0.5] * 4) == pytest.approx(2 / 16)  # sign-flip bound
    assert paired_t_test([1.0]) is None


def test_sign_flip_test_exact_by_hand():
    # d = 1..6, all positive: of 64 sign patterns only all-+ and all-- reach |mean| = 3.5
    assert sign_flip_test([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    # d = (-1, 2, 3, 4, 5, 6): |sum| >= 19 for flips of a subset S with sum(S) <= 1.5 ...
    d = np.array([-1, 2, 3, 4, 5, 6], float)
    signs = np.array(np.meshgrid(*[[-1, 1]] * 6)).reshape(6, -1).T
    means = np.abs((signs * d).mean(axis=1))
    assert sign_flip_test(d) == pytest.approx((means >= abs(d.mean()) - 1e-12).mean())
    assert sign_flip_test([1, 2, 3, 4, 5]) is None  # cannot reach 5% below 6 seeds


def test_decide_and_holm_by_hand():
    assert decide(0.01, 0.3, 0.05) == "positive"
    assert decide(0.01, -0.3, 0.05) == "negative"
    assert decide(0.06, 0.3, 0.05) == "inconclusive"
    assert decide(None, 0.3, 0.05) == "inconclusive"
    assert decide(float("nan"), -0.3, 0.05) == "inconclusive"
    assert decide(0.01, float("nan"), 0.05) == "inconclusive"
    # p sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])


def test_seeds_needed_against_noncentral_t():
    d = [0.1, 0.3, 0.2]  # effect size mean / sd = 0.2 / 0.1 = 2
    n = seeds_needed(d)
    power = lambda k: sps.nct.sf(sps.t.ppf(0.975, k - 1), k - 1, 2 * np.sqrt(k))  # noqa: E731
    assert power(n) >= 0.8 > power(n - 1)
    assert n == 5
    assert seeds_needed([0.1, -0.1]) is None  # no effect to detect


def test_alpha_spending_and_looks():
    assert look_schedule(3, 10) == [3, 5, 8, 10]
    assert look_schedule(3, 3) == [3]
    assert spent_alpha(1.0, 0.05) == pytest.approx(0.05)
    assert spent_alpha(0.5, 0.05) == pytest.approx(0.05 * 0.5**2)
    levels = look_levels([3, 5, 8, 10], 0.05)
    assert all(0 < v < 0.05 for v in levels)
    assert levels[0] == pytest.approx(spent_alpha(0.3, 0.05))  # first look: exactly its spend
    assert look_levels([3], 0.05) == [pytest.approx(0.05)]


def test_look_levels_spend_alpha_on_fresh_null_simulations():
    # independent of the simulation that set the levels: normal differences under the null,
    # first rejection at look k happens with probability spent(k) - spent(k - 1)
    looks, alpha = [3, 5, 8, 10], 0.05
    levels = look_levels(looks, alpha)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((100_000, 10))
    alive = np.ones(len(x), bool)
    first = []
    for n, level in zip(looks, levels):
        p = np.array([sps.ttest_1samp(x[alive, :n], 0, axis=1).pvalue]).ravel()
        hit = np.zeros(len(x), bool)
        hit[np.flatnonzero(alive)[p <= level]] = True
        first.append(hit.mean())
        alive &= ~hit
    spent = [spent_alpha(n / 10, alpha) for n in looks]
    expected = np.diff([0.0, *spent])
    se = np.sqrt(expected * (1 - expected) / len(x))
    assert np.all(np.abs(np.array(first) - expected) < 4 * se + 1e-4)
    assert sum(first) == pytest.approx(alpha, abs=0.003)


def test_sequential_look_statuses():
    looks = [3, 5, 8, 10]
    assert sequential_look([0.1, 0.101, 0.1005], 0, looks, 10, 0.025).status == "positive"
    assert sequential_look([0.1, 0.12, 0.11], 0, looks, 10, 0.025).status == "continue"
    assert sequential_look([0.1, -0.1, 0.05], 0, looks, 10, 0.025).status == "continue"
    # second look, an effect far too small for 2 x 10 seeds: futile; last look undecided
    flat = [0.1, -0.12, 0.01, 0.02, -0.03]
    assert sequential_look(flat, 1, looks, 10, 0.025).status == "futile"
    assert sequential_look(flat, 3, looks, 10, 0.025).status == "undecided"


def test_aa_false_verdicts_at_most_five_percent_small_simulation():
    # a quick guard; the full calibration is benchmarks/bench_calibration.py
    rng = np.random.default_rng(0)
    for n in (3, 6):
        d = rng.standard_t(3, size=(2000, n)) - rng.standard_t(3, size=(2000, n))
        rate = np.mean([paired_t_test(row) < 0.05 for row in d])
        assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2000)


def test_constant_effect_is_not_futile():
    # every difference equal: p is the sign-flip bound 2 / 2^n; 2 / 2^6 = 0.031 < 0.05
    assert seeds_needed([1.0] * 5, 0.05) == 6
    assert sequential_look([1.0] * 5, 1, [3, 5, 8, 10], 10, 0.05).status == "continue"
    assert sequential_look([1.0] * 8, 2, [3, 5, 8, 10], 10, 0.05).status == "positive"


def test_failed_runs_are_not_called_futile():
    assert sequential_look([0.2], 1, [3, 5, 8, 10], 10, 0.05).status == "failed"


def test_sequential_holm_passes_a_rejection_share_on():
    from rl_transfer.stats import sequential_holm_look

    looks = [3, 5, 8, 10]
    strong = [1.0, 1.01, 1.02, 0.99, 1.0]  # p ~ 1e-9: rejected at alpha / 2
    # p = 0.0078: above the look-2 level for alpha / 2 (0.0042), below the level for the whole
    # alpha (0.0085), which it holds once the strong one is rejected
    mid = [0.3, 0.5, 0.4, 0.45, 0.1]
    p_mid = paired_t_test(mid)
    half, whole = look_levels(looks, 0.025)[1], look_levels(looks, 0.05)[1]
    assert half < p_mid <= whole
    alone = sequential_look(mid, 1, looks, 10, 0.025)
    assert alone.status == "continue"
    both = sequential_holm_look({"a": strong, "b": mid}, 1, looks, 10, 0.05, 2, 0)
    assert both["a"].status == "positive" and both["b"].status == "positive"
    assert both["b"].level == pytest.approx(whole)


def test_iqm_band_is_aggregate_at_every_step():
    """The vectorized band (one bootstrap over all steps) gives at each step the IQM and the
    interval stats.aggregate gives for that step's values: steps with spread, steps where every
    run agrees (the interval closes on the value), and a single run (no interval: the IQM)."""
    from rl_transfer.stats import aggregate, iqm_band

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 7, 20):
        ys = rng.normal(100.0, 30.0, size=(n, 12))
        ys[:, 0] = 9.5  # every run at the same value
        centre, lo, hi = iqm_band(ys)
        for j, col in enumerate(ys.T):
            a = aggregate(list(col))
            assert centre[j] == a.iqm
            expected = a.ci if a.ci is not None else (a.iqm, a.iqm)
            np.testing.assert_allclose([lo[j], hi[j]], expected, rtol=1e-12)
        assert np.all(lo <= centre) and np.all(centre <= hi)
        assert (n == 1) == bool(np.all(lo[1:] == hi[1:]))
