"""Metrics on hand-made curves, each value computed by hand in the test."""

import numpy as np
import pytest

from rl_transfer.metrics import Curve, seed_metrics, time_to_threshold

T = np.array([0.0, 100.0, 200.0, 300.0, 400.0])


def metrics(
    ft,
    fb,
    *,
    t=T,
    tb=None,
    threshold=50.0,
    r_min=0.0,
    r_max=100.0,
    src=0.0,
    reuse=1,
    k=2,
    seg=None,
    every=100.0,
):
    return seed_metrics(
        Curve(t, np.asarray(ft, float)),
        Curve(t if tb is None else tb, np.asarray(fb, float)),
        threshold=threshold,
        r_min=r_min,
        r_max=r_max,
        eval_every=every,
        source_steps=src,
        source_curve=None
        if seg is None
        else Curve(np.asarray(seg[0], float), np.asarray(seg[1], float)),
        n_reuse=reuse,
        asymptote_window=k,
    )


def test_target_only_metrics_by_hand():
    m = metrics([20, 60, 80, 90, 90], [10, 20, 40, 60, 80])
    assert m["jumpstart"].value == 10.0
    # last k=2: (90+90)/2 - (60+80)/2 = 20
    assert m["asymptotic_gain"].value == pytest.approx(20.0)
    # trapezoid AUC_T = 100*(40+70+85+90) = 28500 ; AUC_B = 100*(15+30+50+70) = 16500
    assert m["auc_gain"].value == pytest.approx(12000.0)
    # normalized with r_min=0,r_max=100: areas 285 and 165 -> ratio (285-165)/165
    assert m["transfer_ratio"].value == pytest.approx(120 / 165)
    # FT: A_T = 285/400, A_B = 165/400 -> (A_T - A_B) / (1 - A_B)
    a_t, a_b = 285 / 400, 165 / 400
    assert m["forward_transfer"].value == pytest.approx((a_t - a_b) / (1 - a_b))
    # threshold 50: T first >= 50 at t=100, B at t=300
    assert m["time_to_threshold_transfer"].value == 100.0
    assert m["time_to_threshold_scratch"].value == 300.0
    assert m["time_to_threshold_gain"].value == 200.0
    assert m["time_to_threshold_speedup"].value == pytest.approx(3.0)


def test_speedup_uses_eval_interval_when_source_is_already_above_threshold():
    m = metrics([60, 60, 60, 60, 60], [10, 20, 40, 60, 80])
    assert m["time_to_threshold_transfer"].value == 0.0
    assert m["time_to_threshold_speedup"].value == pytest.approx(300 / 100)  # delta = 100


def test_censoring_is_null_with_reason_and_lower_bound_is_flagged():
    m = metrics([60, 60, 60, 60, 60], [10, 10, 10, 10, 10])
    assert m["time_to_threshold_scratch"].value is None
    assert "not reached" in m["time_to_threshold_scratch"].note
    assert m["time_to_threshold_gain"].value is None
    assert m["time_to_threshold_speedup"].value == pytest.approx(400 / 100)
    assert "lower bound" in m["time_to_threshold_speedup"].note
    m2 = metrics([10, 10, 10, 10, 10], [10, 20, 40, 60, 80])
    assert m2["time_to_threshold_transfer"].value is None
    assert m2["time_to_threshold_speedup"].value is None
    assert "transfer arm" in m2["time_to_threshold_speedup"].note


def test_total_time_uses_the_measured_source_segment():
    # t_src = 200, the source on the target measured at 0, 100, 200: [5, 30, 45].
    # Total-time T on the grid = [seg(0), seg(100), fT(0), fT(100), fT(200)] = [5, 30, 20, 60, 80]
    seg = ([0, 100, 200], [5, 30, 45])
    m = metrics([20, 60, 80, 90, 90], [10, 20, 40, 60, 80], src=200.0, reuse=2, seg=seg)
    # exact areas of the piecewise-linear total-time curve, the jump at t = 200 kept:
    # [0,100] (5+30)/2, [100,200] (30+45)/2, jump 45 -> 20, [200,300] (20+60)/2, [300,400] (60+80)/2
    auc_t = 100 * (17.5 + 37.5 + 40 + 70)
    assert m["jumpstart_total_time"].value == -5.0
    assert m["asymptotic_gain_total_time"].value == pytest.approx(0.0)
    assert m["auc_gain_total_time"].value == pytest.approx(auc_t - 16500)
    assert m["time_to_threshold_transfer_total_time"].value == 300.0  # 200 + 100
    assert m["time_to_threshold_gain_total_time"].value == 0.0
    a_t, a_b = auc_t / 100 / 400, 165 / 400
    assert m["forward_transfer_total_time"].value == pytest.approx((a_t - a_b) / (1 - a_b))
    assert m["normalized_area_gain_total_time"].value == pytest.approx(a_t - a_b)
    # amortized over 2 targets: shift 100, the segment compressed into [0, 100] (points at 0, 50,
    # 100), then fT shifted by 100: 875 + 1875 + 4000 + 7000 + 8500
    a_am = (875 + 1875 + 4000 + 7000 + 8500) / 100 / 400
    assert m["normalized_area_gain_amortized"].value == pytest.approx(a_am - a_b)
    assert m["time_to_threshold_transfer_amortized"].value == 200.0


def test_total_time_area_keeps_the_jump_at_the_source_budget():
    # scratch scores high at t = 0 and then falls; an identical transfer arm charged one
    # evaluation interval of source steps (segment at R_min) must not gain area
    grid = np.arange(11) * 1000.0
    f = np.array([344.0] + [20.0] * 10)
    m = metrics(
        f,
        f,
        t=grid,
        threshold=475.0,
        r_min=20.0,
        r_max=500.0,
        every=1000.0,
        src=1000.0,
        seg=([0, 1000], [20, 20]),
    )
    assert m["normalized_area_gain_total_time"].value == pytest.approx(0.0, abs=1e-12)


def test_segment_that_crosses_the_threshold_is_said():
    m = metrics(
        [60, 60, 80, 90, 90], [10, 20, 40, 60, 80], src=200.0, seg=([0, 100, 200], [5, 55, 60])
    )
    v = m["time_to_threshold_transfer_total_time"]
    assert v.value == 100.0
    assert "while training on the source" in v.note


def test_imported_source_segment_is_assumed_at_r_min():
    m = metrics([20, 60, 80, 90, 90], [10, 20, 40, 60, 80], src=200.0)
    # R_min = 0 over [0, 200], then the jump to fT(0) = 20: 100 * ((20 + 60) / 2 + (60 + 80) / 2)
    a_t = 100 * (40 + 70) / 100 / 400
    assert m["normalized_area_gain_total_time"].value == pytest.approx(a_t - 165 / 400)
    assert "assumed" in m["forward_transfer_total_time"].note


def _random_nondecreasing(rng, n):
    return np.maximum.accumulate(rng.uniform(0, 120, size=n))


def test_property_identical_arms_never_gain_in_total_time():
    # scratch non-decreasing, a segment at R_min: charging source steps can only hurt
    from rl_transfer import compare

    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1000, 11)
    for _ in range(300):
        n = int(rng.integers(2, 8))
        scratch = np.stack([_random_nondecreasing(rng, 11) for _ in range(n)])
        src = float(rng.integers(1, 1200))
        seg = (np.array([0.0, src]), np.zeros((n, 2)))
        c = compare(
            grid,
            scratch,
            scratch,
            threshold=90,
            r_min=0,
            r_max=100,
            source_steps=src,
            source_curve=seg,
        )
        ft = c.metrics["forward_transfer_total_time"].per_seed
        assert all(v is None or v <= 1e-12 for v in ft)
        assert c.verdict_total_time != "positive"
        assert c.verdict == "inconclusive"


def test_property_more_source_steps_never_improve_total_time():
    rng = np.random.default_rng(1)
    grid = np.linspace(0, 1000, 11)
    names = (
        "forward_transfer",
        "auc_gain",
        "jumpstart",
        "asymptotic_gain",
        "time_to_threshold_gain",
    )
    for _ in range(200):
        fb = _random_nondecreasing(rng, 11)
        ft = _random_nondecreasing(rng, 11)
        small, large = sorted(rng.uniform(1, 1500, size=2))
        out = []
        for src in (small, large):
            m = seed_metrics(
                Curve(grid, ft),
                Curve(grid, fb),
                threshold=60.0,
                r_min=0.0,
                r_max=100.0,
                eval_every=100.0,
                source_steps=src,
                source_curve=Curve(np.array([0.0, src]), np.zeros(2)),
            )
            out.append(m)
        for name in names:
            a, b = out[0][name + "_total_time"].value, out[1][name + "_total_time"].value
            if a is not None and b is not None:
                assert b <= a + 1e-9, name


def test_source_longer_than_budget_is_said():
    m = metrics([20, 60, 80, 90, 90], [10, 20, 40, 60, 80], src=1000.0)
    assert "cannot pay" in m["forward_transfer_total_time"].note
    assert m["asymptotic_gain_total_time"].value == pytest.approx(0 - 70)  # R_min, assumed


def test_negative_returns_normalize_before_ratio():
    # Pendulum-like: r_min=-1200, r_max=0; T better (less negative) than B everywhere.
    m = metrics([-600] * 5, [-900] * 5, r_min=-1200.0, r_max=0.0, threshold=-200.0)
    # normalized: T = 0.5, B = 0.25 -> ratio (0.5-0.25)/0.25 = 1.0 (a raw ratio would be negative)
    assert m["transfer_ratio"].value == pytest.approx(1.0)
    assert m["forward_transfer"].value == pytest.approx((0.5 - 0.25) / 0.75)


def test_forward_transfer_clips_and_undefined_when_scratch_at_max():
    m = metrics([100] * 5, [100] * 5)
    assert m["forward_transfer"].value is None
    assert "R_max" in m["forward_transfer"].note
    m2 = metrics([150] * 5, [50] * 5)  # above r_max clipped to 1
    assert m2["forward_transfer"].value == pytest.approx(1.0)


def test_unequal_grids_interpolate_transfer_onto_scratch_grid():
    t_t = np.array([0.0, 200.0, 400.0])
    m = seed_metrics(
        Curve(t_t, np.array([0.0, 40.0, 80.0])),
        Curve(T, np.array([0, 0, 0, 0, 0], float)),
        threshold=50.0,
        r_min=0.0,
        r_max=100.0,
        eval_every=100.0,
        source_steps=0.0,
    )
    # T interpolated on [0,100,..,400] = [0,20,40,60,80]: AUC = 100*(10+30+50+70) = 16000
    assert m["auc_gain"].value == pytest.approx(16000.0)
    assert m["time_to_threshold_transfer"].value == 400.0  # first *evaluated* t with f >= 50


def test_time_to_threshold_first_evaluated_step():
    assert time_to_threshold(T, np.array([0, 49.9, 50, 10, 60]), 50.0) == 200.0
    assert time_to_threshold(T, np.zeros(5), 50.0) is None


def test_curve_requires_t0():
    with pytest.raises(ValueError, match="t = 0"):
        Curve(np.array([100.0, 200.0]), np.array([1.0, 2.0]))
