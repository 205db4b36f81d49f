"""rl_transfer.compare against values worked out by hand, its errors, and its import cost."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

import rl_transfer
from rl_transfer.comparison import ComparisonError

T = np.array([0.0, 100.0, 200.0])


def test_compare_by_hand():
    # normalized (r_min 0, r_max 100) trapezoid areas over [0, 200], divided by 200:
    # T rows [0, 50, 100] -> A = (25 + 75) / 200 = 0.5; scratch [0, 0, 0] -> 0
    # T row [0, 100, 100] -> A = (50 + 100) / 200 = 0.75; T row [0, 20, 40] -> 0.2
    transfer = np.array([[0, 50, 100], [0, 100, 100], [0, 20, 40]], float)
    scratch = np.zeros((3, 3))
    c = rl_transfer.compare(T, transfer, scratch, threshold=90, r_min=0, r_max=100)
    d = np.array([0.5, 0.75, 0.2])
    assert c.metrics["normalized_area_gain"].per_seed == pytest.approx(list(d))
    assert c.metrics["forward_transfer"].per_seed == pytest.approx(list(d))  # A_B = 0
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert c.p_value == pytest.approx(2 * sps.t.sf(t, 2))
    assert c.metrics["forward_transfer"].p_value == c.p_value
    assert c.verdict == ("positive" if c.p_value < 0.05 else "inconclusive")
    assert c.metrics["forward_transfer"].iqm == pytest.approx(d.mean())
    assert c.metrics["jumpstart"].per_seed == [0.0, 0.0, 0.0]
    assert c.metrics["jumpstart"].p_value == 1.0  # all differences 0
    # time to threshold 90: T reaches it at 200, 100, never; scratch never
    assert c.metrics["time_to_threshold_transfer"].per_seed == [200.0, 100.0, None]
    assert c.metrics["time_to_threshold_transfer"].p_value is None  # a level, no test
    # speed-up censored: t_max / max(TTT_T, eval_every = 100) = 1, 2 (lower bounds)
    assert c.metrics["time_to_threshold_speedup"].per_seed == [1.0, 2.0, None]
    assert "lower bound" in c.metrics["time_to_threshold_speedup"].notes[0]
    # speed-up tested on its logarithm against log 1 = 0: d = [0, log 2]
    x = np.log([1.0, 2.0])
    tt = x.mean() / (x.std(ddof=1) / np.sqrt(2))
    assert c.metrics["time_to_threshold_speedup"].p_value == pytest.approx(2 * sps.t.sf(tt, 1))
    assert c.n_seeds == 3
    assert c.seeds_needed is None or c.verdict == "inconclusive"


def test_compare_is_antisymmetric_in_the_arms():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 100, (5, 3)), rng.uniform(0, 100, (5, 3))
    ab = rl_transfer.compare(T, a, b, threshold=90, r_min=0, r_max=100)
    ba = rl_transfer.compare(T, b, a, threshold=90, r_min=0, r_max=100)
    assert ab.p_value == pytest.approx(ba.p_value)
    gain_ab = ab.metrics["normalized_area_gain"].per_seed
    gain_ba = ba.metrics["normalized_area_gain"].per_seed
    assert gain_ab == pytest.approx([-v for v in gain_ba])
    flip = {"positive": "negative", "negative": "positive", "inconclusive": "inconclusive"}
    assert ab.verdict == flip[ba.verdict]


def test_compare_with_a_measured_source_curve():
    transfer = np.array([[50, 50, 50]] * 2, float)
    scratch = np.array([[0, 50, 50]] * 2, float)
    seg = (np.array([0.0, 100.0]), np.array([[0.0, 0.0]] * 2))
    c = rl_transfer.compare(
        T,
        transfer,
        scratch,
        threshold=40,
        r_min=0,
        r_max=100,
        source_steps=100,
        source_curve=seg,
    )
    # total-time T: 0 over [0, 100] (segment), jump to 50, 50 over [100, 200]: area 5000;
    # scratch ramps 0 -> 50 then holds: 2500 + 5000. Normalized by 100 and 200 steps:
    assert c.metrics["normalized_area_gain_total_time"].per_seed == pytest.approx([-0.125] * 2)
    assert c.p_value_total_time == pytest.approx(2 / 2**2)  # constant differences: sign-flip bound
    assert c.verdict_total_time == "inconclusive"
    assert c.metrics["time_to_threshold_transfer_total_time"].per_seed == [100.0, 100.0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t": [0, 100]}, "transfer must have shape"),
        ({"t": [10, 100, 200]}, "start at 0"),
        ({"t": [0, np.nan, 200]}, "finite"),
        ({"t": [0, 100, np.inf]}, "finite"),
        ({"transfer": np.zeros((0, 3)), "scratch": np.zeros((0, 3))}, "at least one seed"),
        ({"scratch": np.zeros((2, 3))}, "same shape"),
        ({"transfer": np.full((3, 3), np.nan)}, "NaN"),
        ({"r_min": 100, "r_max": 0}, "r_min"),
        ({"alpha": 1.5}, "alpha"),
        ({"source_steps": 50, "source_curve": ([0, 100], np.zeros((3, 2)))}, "end at"),
        ({"source_steps": 100, "source_curve": ([0, 100], np.zeros((2, 2)))}, "one row per"),
    ],
)
def test_compare_refuses_bad_input(kwargs, match):
    args = {
        "t": T,
        "transfer": np.zeros((3, 3)),
        "scratch": np.zeros((3, 3)),
        "threshold": 1,
        "r_min": 0,
        "r_max": 100,
    }
    args.update(kwargs)
    t, tr, sc = args.pop("t"), args.pop("transfer"), args.pop("scratch")
    with pytest.raises(ComparisonError, match=match):
        rl_transfer.compare(t, tr, sc, **args)


def test_compare_needs_no_torch():
    code = (
        "import sys, numpy as np, rl_transfer\n"
        "rl_transfer.compare(np.array([0, 1.0]), np.ones((2, 2)), np.zeros((2, 2)),"
        " threshold=1, r_min=0, r_max=2)\n"
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'gymnasium') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_family_verdict_sign_follows_the_tested_mean_not_the_iqm():
    from rl_transfer.reports import family_verdicts

    d = [1.0] * 5 + [-0.01] * 15  # mean +0.24 (p = 0.026), IQM -0.01
    entry = {
        "pair": "p",
        "algo": "a",
        "method": "m",
        "p_value": sps.ttest_1samp(d, 0).pvalue,
        "p_value_total_time": None,
        "p_value_amortized": None,
        "metrics": {
            name: {"per_seed": d, "iqm": -0.01}
            for name in (
                "normalized_area_gain",
                "normalized_area_gain_total_time",
                "normalized_area_gain_amortized",
            )
        },
    }
    family_verdicts([entry], None)
    assert entry["verdict"] == "positive"


def test_interrupted_adaptive_experiment_leaves_open_comparisons_undecided():
    from rl_transfer.reports import family_verdicts

    def entry(method, p):
        return {
            "pair": "p",
            "algo": "a",
            "method": method,
            "seeds": [0, 1, 2, 3, 4],
            "p_value": p,
            "p_value_total_time": None,
            "p_value_amortized": None,
            "metrics": {
                k: {"per_seed": [0.1, 0.2, 0.15, 0.12, 0.11], "iqm": 0.13}
                for k in (
                    "normalized_area_gain",
                    "normalized_area_gain_total_time",
                    "normalized_area_gain_amortized",
                )
            },
        }

    decided, still_open = entry("x", 0.9), entry("y", 0.001)
    seq = {
        "looks": [3, 5, 8, 10],
        "max_seeds": 10,
        "decisions": {"p/a/x": {"status": "futile", "verdict": "inconclusive", "n": 5}},
    }
    info = family_verdicts([decided, still_open], seq)
    assert info["design"] == "adaptive seeds"
    assert still_open["verdict"] == "inconclusive"  # not Holm on adaptively collected seeds
    assert still_open["sequential"]["status"] == "open"
    assert still_open["p_value_adjusted"] is None


def test_compare_refuses_more_bad_input():
    base = dict(threshold=1, r_min=0, r_max=100)
    for kwargs, match in (
        ({"eval_every": 0}, "eval_every"),
        ({"source_steps": -1}, "source_steps"),
        ({"asymptote_window": 0}, "asymptote_window"),
        ({"threshold": float("nan")}, "threshold"),
    ):
        with pytest.raises(ComparisonError, match=match):
            rl_transfer.compare(T, np.zeros((2, 3)), np.zeros((2, 3)), **{**base, **kwargs})
    with pytest.raises(ComparisonError, match="numeric array"):
        rl_transfer.compare(T, [[0, 1, 2], [0, 1]], np.zeros((2, 3)), **base)


def test_speedup_of_identical_arms_is_one():
    f = np.array([[500.0, 500.0, 500.0]] * 2)  # both at the threshold from t = 0
    c = rl_transfer.compare(T, f, f, threshold=475, r_min=0, r_max=500)
    assert c.metrics["time_to_threshold_speedup"].per_seed == [1.0, 1.0]
