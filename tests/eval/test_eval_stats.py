"""Statistics: Wilson intervals (scipy), exact McNemar, Holm, rank agreement, the recommendation."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from eval.results import stats
from eval.results.summary import aggregate, recommend


@pytest.mark.parametrize(("k", "n"), [(0, 10), (7, 50), (50, 50), (25, 50), (1, 1)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = stats.wilson_interval(k, n)
    assert (low, high) == pytest.approx((ci.low, ci.high))
    z = 1.959963984540054  # textbook formula as a second check
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-9)


def test_wilson_empty_and_bad_input() -> None:
    assert stats.wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="within"):
        stats.wilson_interval(5, 3)


def test_default_episode_count_gives_a_useful_interval() -> None:
    assert stats.wilson_half_width(50) <= 0.14
    lo, hi = stats.wilson_interval(25, 50)
    assert (hi - lo) / 2 == pytest.approx(stats.wilson_half_width(50), abs=1e-9)


def test_mcnemar_known_table() -> None:
    # 10 shared episodes: both succeed 3, a only 5, b only 1, both fail 1
    a = [True] * 3 + [True] * 5 + [False] * 1 + [False]
    b = [True] * 3 + [False] * 5 + [True] * 1 + [False]
    res = stats.mcnemar_exact(a, b)
    assert (res["both_success"], res["a_only"], res["b_only"], res["both_failure"]) == (3, 5, 1, 1)
    # exact two-sided binomial: P(X<=1 or X>=5 | n=6, p=.5) = 14/64
    assert res["pvalue"] == pytest.approx(14 / 64)
    assert res["pvalue"] == pytest.approx(sps.binomtest(5, 6, 0.5).pvalue)


def test_mcnemar_no_discordant_pairs_and_length_check() -> None:
    assert stats.mcnemar_exact([True, False], [True, False])["pvalue"] == 1.0
    with pytest.raises(ValueError):
        stats.mcnemar_exact([True], [True, False])


def test_holm() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_rank_agreement_perfect_and_inverse() -> None:
    good = stats.rank_agreement([0.05, 0.07, 0.09], [0.9, 0.6, 0.3])
    assert good["spearman_rho"] == pytest.approx(-1.0) and good["kendall_tau"] == pytest.approx(-1.0)
    bad = stats.rank_agreement([0.05, 0.07, 0.09, 0.1], [0.1, 0.2, 0.3, 0.4])
    assert bad["spearman_rho"] == pytest.approx(1.0)
    rho = sps.spearmanr([0.05, 0.07, 0.09, 0.1], [0.3, 0.1, 0.4, 0.2]).statistic
    assert stats.rank_agreement([0.05, 0.07, 0.09, 0.1], [0.3, 0.1, 0.4, 0.2])[
        "spearman_rho"
    ] == pytest.approx(rho)


def test_rank_agreement_undefined_cases_have_a_note() -> None:
    few = stats.rank_agreement([0.1, 0.2], [0.5, 0.4])
    assert few["spearman_rho"] is None and "at least 3" in few["note"]
    const = stats.rank_agreement([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert const["kendall_tau"] is None and "same success rate" in const["note"]


def _rec(pid: str, seed: int, success: bool, **kw) -> dict:
    return {"policy_id": pid, "cell": "left-day-medium", "seed": seed, "success": success, "spl": 0.8 * success,
            "collided": False, "wrong_side": False, "timed_out": not success, "failure_reason": None if success else "goal_not_reached",
            "latency_ms": {"steps": [10.0, 20.0, 150.0]}, **kw}  # fmt: skip


def test_aggregate_counts_and_latency_budget() -> None:
    recs = [_rec("a", i, i < 3) for i in range(4)]
    agg = aggregate(recs, latency_budget_ms=100.0)
    assert (agg["n"], agg["successes"], agg["timeouts"]) == (4, 3, 1)
    assert agg["success_rate"] == 0.75
    assert agg["failure_reasons"] == {"goal_not_reached": 1}
    assert agg["latency_ms"]["p50"] == pytest.approx(20.0)
    assert agg["latency_ms"]["within_budget"] is False


def _policy(pid: str, k: int, n: int, val_loss: float | None) -> dict:
    lo, hi = stats.wilson_interval(k, n)
    return {"policy_id": pid, "kind": "checkpoint", "status": "ok", "checkpoint": f"/x/{pid}.ckpt", "val_loss": val_loss,
            "overall": {"n": n, "successes": k, "success_rate": k / n, "ci95_low": lo, "ci95_high": hi}}  # fmt: skip


def test_recommendation_tie_goes_to_lower_val_loss_and_says_not_significant() -> None:
    pols = [_policy("a", 30, 50, 0.08), _policy("b", 30, 50, 0.06), _policy("c", 10, 50, 0.05)]
    outcomes = {
        "a": {("x", i): i < 30 for i in range(50)},
        "b": {("x", i): 5 <= i < 35 for i in range(50)},
        "c": {("x", i): i < 10 for i in range(50)},
    }
    pairs = stats.paired_tests(outcomes)
    rec = recommend(pols, pairs)
    assert rec["policy_id"] == "b" and rec["runner_up"] == "a"
    assert rec["significant"] is False and "NOT significant" in rec["evidence"]
    assert "tie" in rec["evidence"]
    assert rec["lowest_val_loss_id"] == "c" and rec["agrees_with_val_loss"] is False


def test_recommendation_significant_lead() -> None:
    pols = [_policy("a", 45, 50, 0.08), _policy("b", 10, 50, 0.06)]
    pairs = stats.paired_tests(
        {"a": {("x", i): i < 45 for i in range(50)}, "b": {("x", i): i < 10 for i in range(50)}}
    )
    rec = recommend(pols, pairs)
    assert rec["policy_id"] == "a" and rec["significant"] is True and rec["pvalue"] < 1e-6
