"""``python -m eval.correlate --real REAL.csv RESULTS_DIR... [--json]``: does sim success predict real success?

After a session on the robot, the team writes one row per policy into ``REAL.csv``::

    id,successes,trials
    epoch19-val0.064,7,10
    epoch10-val0.070,4,10

``id`` is the policy id that ``eval.rollout`` gave it (the ``policy_id`` column of its tables).
The simulated successes come from each ``RESULTS_DIR``'s ``summary.json`` (``policies[].overall``),
or its ``episodes.jsonl`` when there is no summary; several folders are pooled per id.

Printed: per policy, real and simulated success with Wilson 95 % intervals
(``eval.results.stats.wilson_interval``); Pearson's r and Spearman's rho (``scipy.stats``) between
the two success rates; and MMRV, the mean maximum rank violation of SimplerEnv (Li et al., 2024):
for policy i, the largest real-success gap |R_i - R_j| over the policies j that the simulator
orders differently from real ((S_i > S_j) != (R_i > R_j)), averaged over policies (0 is a perfect
ranking; lower is better). Each statistic has a 95 % bootstrap interval: ``BOOTSTRAP`` seeded
parametric resamples, every policy's real and simulated successes redrawn from a binomial at its
observed rate and count (``numpy.random.default_rng(seed)``), percentile interval.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from eval.results.stats import wilson_interval

BOOTSTRAP = 2000
MIN_POLICIES = 3
"""Correlations need at least three policies (two points always lie on a line)."""


class CorrelateError(ValueError):
    """Bad input; the message is one line naming the file and the fix."""


def read_real_csv(path: Path) -> dict[str, tuple[int, int]]:
    """``{id: (successes, trials)}`` from ``REAL.csv`` (header ``id,successes,trials``)."""
    if not path.is_file():
        raise CorrelateError(f"{path}: no such file; write one row per policy: id,successes,trials")
    rows: dict[str, tuple[int, int]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"id", "successes", "trials"} <= set(reader.fieldnames):
            raise CorrelateError(f"{path}: the header must be id,successes,trials, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                k, n = int(row["successes"]), int(row["trials"])
            except (TypeError, ValueError):
                raise CorrelateError(
                    f"{path}:{line}: successes and trials must be integers, got {row}"
                ) from None
            if n <= 0 or not 0 <= k <= n:
                raise CorrelateError(
                    f"{path}:{line}: need 0 <= successes <= trials and trials > 0, got {k}/{n}"
                )
            rows[row["id"].strip()] = (k, n)
    return rows


def read_sim_results(folders: Sequence[Path]) -> dict[str, tuple[int, int]]:
    """``{policy_id: (successes, episodes)}`` pooled over result folders."""
    pooled: dict[str, list[int]] = {}
    for folder in folders:
        summary, records = folder / "summary.json", folder / "episodes.jsonl"
        if summary.is_file():
            data = json.loads(summary.read_text(encoding="utf-8"))
            counts = [
                (p["policy_id"], p["overall"]["successes"], p["overall"]["n"])
                for p in data.get("policies", [])
                if p.get("overall")
            ]
        elif records.is_file():
            rows = [
                json.loads(line) for line in records.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
            ids = sorted({r["policy_id"] for r in rows})
            counts = [
                (
                    i,
                    sum(bool(r["success"]) for r in rows if r["policy_id"] == i),
                    sum(r["policy_id"] == i for r in rows),
                )
                for i in ids
            ]
        else:
            raise CorrelateError(
                f"{folder}: no summary.json or episodes.jsonl; give an eval.rollout results folder"
            )
        for policy_id, k, n in counts:
            entry = pooled.setdefault(policy_id, [0, 0])
            entry[0] += int(k)
            entry[1] += int(n)
    return {k: (v[0], v[1]) for k, v in pooled.items()}


def rank_violations(real: Sequence[float], sim: Sequence[float]) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, that ``sim`` orders differently from ``real``: (S_i > S_j) != (R_i > R_j)
    or the other way round (SimplerEnv's rule, checked in both directions)."""
    r, s = np.asarray(real, float), np.asarray(sim, float)
    return [
        (i, j)
        for i in range(len(r))
        for j in range(i + 1, len(r))
        if (s[i] > s[j]) != (r[i] > r[j]) or (s[j] > s[i]) != (r[j] > r[i])
    ]


def mmrv(real: Sequence[float], sim: Sequence[float]) -> float:
    """SimplerEnv's mean maximum rank violation of ``sim`` against ``real`` success rates."""
    r, s = np.asarray(real, float), np.asarray(sim, float)
    worst = np.zeros(len(r))
    for i in range(len(r)):
        for j in range(len(r)):
            if (r[i] > r[j]) != (s[i] > s[j]):
                worst[i] = max(worst[i], abs(r[i] - r[j]))
    return float(worst.mean())


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def correlations(real: Sequence[float], sim: Sequence[float]) -> dict[str, float | None]:
    """Pearson's r, Spearman's rho (None when a side is constant) and MMRV."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pearson = stats.pearsonr(sim, real).statistic if np.ptp(sim) and np.ptp(real) else math.nan
        spearman = stats.spearmanr(sim, real).statistic if np.ptp(sim) and np.ptp(real) else math.nan
    return {"pearson": _finite(pearson), "spearman": _finite(spearman), "mmrv": mmrv(real, sim)}


def bootstrap(
    real: list[tuple[int, int]], sim: list[tuple[int, int]], resamples: int, seed: int
) -> dict[str, Any]:
    """Percentile 95 % intervals of each statistic over binomial resamples of both sides."""
    rng = np.random.default_rng(seed)
    rk, rn = np.array(real).T
    sk, sn = np.array(sim).T
    draws: dict[str, list[float]] = {"pearson": [], "spearman": [], "mmrv": []}
    for _ in range(resamples):
        r = rng.binomial(rn, rk / rn) / rn
        s = rng.binomial(sn, sk / sn) / sn
        for key, value in correlations(r, s).items():
            if value is not None:
                draws[key].append(value)
    return {
        key: ([float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None)
        for key, v in draws.items()
    }


def correlate(
    real: dict[str, tuple[int, int]],
    sim: dict[str, tuple[int, int]],
    resamples: int = BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """Per policy rates with intervals, and the statistics with bootstrap intervals."""
    ids = sorted(set(real) & set(sim))
    missing = sorted(set(real) - set(sim))
    if len(ids) < MIN_POLICIES:
        raise CorrelateError(
            f"{len(ids)} policies are in both REAL.csv and the results (need {MIN_POLICIES}); "
            f"REAL.csv ids without sim results: {missing}; sim ids: {sorted(sim)}"
        )
    rows = []
    for i in ids:
        (rk, rn), (sk, sn) = real[i], sim[i]
        rows.append(
            {
                "id": i,
                "real": {"successes": rk, "trials": rn, "rate": rk / rn, "ci95": wilson_interval(rk, rn)},
                "sim": {"successes": sk, "trials": sn, "rate": sk / sn, "ci95": wilson_interval(sk, sn)},
            }
        )
    point = correlations([r["real"]["rate"] for r in rows], [r["sim"]["rate"] for r in rows])
    intervals = bootstrap([real[i] for i in ids], [sim[i] for i in ids], resamples, seed)
    return {
        "policies": rows,
        "statistics": {k: {"value": point[k], "ci95": intervals[k]} for k in point},
        "bootstrap": {"resamples": resamples, "seed": seed, "kind": "parametric binomial, percentile"},
        "real_without_sim": missing,
        "sim_without_real": sorted(set(sim) - set(real)),
    }


def format_report(result: dict[str, Any]) -> str:
    def ci(c: Any) -> str:
        return f"[{c[0]:.2f}, {c[1]:.2f}]" if c else "-"

    lines = ["| policy | real | real 95 % CI | sim | sim 95 % CI |", "|---|---|---|---|---|"]
    for r in result["policies"]:
        lines.append(
            f"| {r['id']} | {r['real']['successes']}/{r['real']['trials']} ({100 * r['real']['rate']:.0f} %) | "
            f"{ci(r['real']['ci95'])} | {r['sim']['successes']}/{r['sim']['trials']} ({100 * r['sim']['rate']:.0f} %) | "
            f"{ci(r['sim']['ci95'])} |"
        )
    lines += ["", "| statistic | value | bootstrap 95 % CI |", "|---|---|---|"]
    for name, block in result["statistics"].items():
        value = "-" if block["value"] is None else f"{block['value']:.3f}"
        lines.append(f"| {name} | {value} | {ci(block['ci95'])} |")
    if result["real_without_sim"]:
        lines.append(
            f"\nREAL.csv ids without simulated results (left out): {', '.join(result['real_without_sim'])}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.correlate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--real", type=Path, required=True, help="REAL.csv: id,successes,trials per policy")
    parser.add_argument("results", type=Path, nargs="+", help="eval.rollout results folder(s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    parser.add_argument(
        "--bootstrap", type=int, default=BOOTSTRAP, help=f"bootstrap resamples (default {BOOTSTRAP})"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    try:
        result = correlate(
            read_real_csv(args.real), read_sim_results(args.results), args.bootstrap, args.seed
        )
    except (CorrelateError, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
