"""Statistics for closed-loop success rates and timings: Wilson intervals, exact McNemar, rank agreement, percentiles.

All functions are pure and return plain floats/dicts (JSON-ready: ``None`` instead of NaN).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval for a success proportion (scipy's ``binomtest(...).proportion_ci``).

    Returns None when ``n`` is 0.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be within [0, n={n}]")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def wilson_half_width(n: int, p: float = 0.5, confidence: float = CONFIDENCE) -> float:
    """Half-width of the Wilson interval at true rate ``p`` (0.5 is the widest case).

    Used to choose the number of episodes per cell: n=50 gives at most about 0.13.
    """
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95)) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ...}`` of ``values`` (None when empty)."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    return {f"p{q:g}": (float(np.percentile(arr, q)) if arr.size else None) for q in qs}


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test for paired success/failure outcomes of two policies on the same episodes.

    Only discordant pairs carry information: ``a_only`` (a succeeded, b failed) and ``b_only``.
    Under the null hypothesis each discordant pair goes either way with probability 1/2, so the
    p-value is a two-sided binomial test of ``a_only`` out of ``a_only + b_only``.
    """
    if len(a) != len(b):
        raise ValueError(f"paired outcomes must have the same length, got {len(a)} and {len(b)}")
    a_arr, b_arr = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    a_only = int(np.sum(a_arr & ~b_arr))
    b_only = int(np.sum(~a_arr & b_arr))
    discordant = a_only + b_only
    pvalue = float(stats.binomtest(a_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "n_pairs": len(a_arr),
        "both_success": int(np.sum(a_arr & b_arr)),
        "both_failure": int(np.sum(~a_arr & ~b_arr)),
        "a_only": a_only,
        "b_only": b_only,
        "discordant": discordant,
        "pvalue": min(1.0, pvalue),
    }


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def rank_agreement(val_losses: Sequence[float], success_rates: Sequence[float]) -> dict[str, Any]:
    """Spearman's rho and Kendall's tau between val_loss and closed-loop success rate.

    A value near -1 means the ranking by val_loss (lower is better) agrees with the ranking by
    success (higher is better); near 0, val_loss says little about success. With fewer than 3
    checkpoints, or when either list is constant, the coefficients are undefined (None) and
    ``note`` says why.
    """
    n = len(val_losses)
    out: dict[str, Any] = {
        "n": n,
        "spearman_rho": None,
        "spearman_pvalue": None,
        "kendall_tau": None,
        "kendall_pvalue": None,
        "note": "",
        "reading": "rho/tau near -1: lower val_loss goes with higher success (val_loss ranks well); "
        "near 0 or positive: val_loss does not predict closed-loop success",
    }
    if len(success_rates) != n:
        raise ValueError("val_losses and success_rates must have the same length")
    if n < 3:
        out["note"] = (
            f"only {n} checkpoint(s) with a val_loss and a success rate: rank agreement needs at least 3"
        )
        return out
    if len(set(val_losses)) == 1 or len(set(success_rates)) == 1:
        which = "val_loss" if len(set(val_losses)) == 1 else "success rate"
        out["note"] = f"every checkpoint has the same {which}: rank correlation is undefined"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(val_losses, success_rates)
        tau = stats.kendalltau(val_losses, success_rates)
    out.update(
        spearman_rho=_finite(rho.statistic),
        spearman_pvalue=_finite(rho.pvalue),
        kendall_tau=_finite(tau.statistic),
        kendall_pvalue=_finite(tau.pvalue),
    )
    if n < 5:
        out["note"] = f"with {n} checkpoints the p-values cannot reach significance; read the sign only"
    return out


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided Fisher exact p-value comparing k1/n1 with k2/n2 (unpaired), None when a side is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def paired_tests(
    outcomes: dict[str, dict[tuple[str, int], bool]], alpha: float = ALPHA
) -> list[dict[str, Any]]:
    """Exact McNemar test for each pair of policies on the episodes both ran.

    ``outcomes`` maps policy id -> {(cell, seed): success}. Holm-adjusted p-values are added
    (``pvalue_holm``) because several pairs are tested at once.
    """
    rows: list[dict[str, Any]] = []
    for a, b in combinations(outcomes, 2):
        shared = sorted(set(outcomes[a]) & set(outcomes[b]))
        res = mcnemar_exact([outcomes[a][k] for k in shared], [outcomes[b][k] for k in shared])
        rows.append({"a": a, "b": b, **res})
    adjusted = holm([r["pvalue"] for r in rows])
    for row, p_adj in zip(rows, adjusted, strict=True):
        row["pvalue_holm"] = p_adj
        row["significant"] = bool(p_adj < alpha)
    return rows
