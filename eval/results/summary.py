"""Aggregate episode records into ``summary.json``, and print it as a terminal table.

The summary is the one machine-readable result of an evaluation: reports and plots are built
from it (plus ``episodes.jsonl`` for trajectories), never from the terminal output.
"""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from eval.results import stats
from policies.vla.profiles import DEFAULT_PROFILE

SCHEMA_VERSION = 2
CONDITION_KEYS = ("side", "lighting", "distance")
POLICY_FAILURES = ("policy_error", "non_finite_action", "invalid_action", "server_fault")
"""Failure codes of episodes the policy (or its server) ended, not the driving."""


def failure_code(reason: str | None) -> str | None:
    """``"policy_error: act() raised ..."`` -> ``"policy_error"``."""
    return None if reason is None else str(reason).split(":")[0]


def aggregate(records: list[dict[str, Any]], latency_budget_ms: float) -> dict[str, Any]:
    """Success rate with its Wilson 95 % interval, SPL, collisions, side errors, time-outs, latency."""
    n = len(records)
    k = sum(bool(r["success"]) for r in records)
    ci = stats.wilson_interval(k, n)
    reasons: dict[str, int] = defaultdict(int)
    for r in records:
        code = failure_code(r.get("failure_reason"))
        if code:
            reasons[code] += 1
    step_ms = _steps(records, "latency_ms")

    def rate(count: int) -> float | None:
        return count / n if n else None

    def mean(values: Iterable[Any]) -> float | None:
        vals = [float(v) for v in values if v is not None]
        return float(np.mean(vals)) if vals else None

    collisions = sum(bool(r.get("collided")) for r in records)
    wrong = sum(bool(r.get("wrong_side")) for r in records)
    timeouts = sum(bool(r.get("timed_out")) for r in records)
    errors = sum(failure_code(r.get("failure_reason")) in POLICY_FAILURES for r in records)
    faults = sum(failure_code(r.get("failure_reason")) == "server_fault" for r in records)
    out = {
        "n": n,
        "successes": k,
        "success_rate": rate(k),
        "ci95_low": ci[0] if ci else None,
        "ci95_high": ci[1] if ci else None,
        "spl_mean": mean(r.get("spl") for r in records),
        "collisions": collisions,
        "collision_rate": rate(collisions),
        "wrong_side": wrong,
        "wrong_side_rate": rate(wrong),
        "timeouts": timeouts,
        "timeout_rate": rate(timeouts),
        "policy_failures": errors,
        "failure_reasons": dict(sorted(reasons.items())),
        "path_length_mean_m": mean(r.get("path_length") for r in records),
        "steps_mean": mean(r.get("steps") for r in records),
        "server_faults": faults,
        "latency_ms": _latency_block(step_ms, latency_budget_ms),
    }
    for key in ("round_trip_ms", "server_latency_ms"):  # policies served over HTTP
        if any(r.get(key) for r in records):
            out[key] = _latency_block(_steps(records, key), latency_budget_ms)
    return out


def _steps(records: list[dict[str, Any]], key: str) -> list[float]:
    return [v for r in records for v in ((r.get(key) or {}).get("steps") or [])]


def _latency_block(step_ms: list[float], budget_ms: float) -> dict[str, Any]:
    """Percentiles (ms) of per-step times against the budget (within_budget: p95 <= budget)."""
    lat = stats.percentiles(step_ms, (50, 95, 99))
    return {
        "p50": lat["p50"],
        "p95": lat["p95"],
        "p99": lat["p99"],
        "max": float(max(step_ms)) if step_ms else None,
        "mean": float(np.mean(step_ms)) if step_ms else None,
        "n_steps": len(step_ms),
        "budget": budget_ms,
        "within_budget": (lat["p95"] <= budget_ms) if lat["p95"] is not None else None,
    }


def _policy_block(
    entry: dict[str, Any], records: list[dict[str, Any]], cells: list[str], budget: float
) -> dict[str, Any]:
    spec = entry["spec"]
    settings = entry.get("settings") or {}
    block: dict[str, Any] = {
        "policy_id": spec["id"],
        "kind": spec["kind"],
        "name": spec.get("name") or spec.get("target"),
        "checkpoint": spec.get("path"),
        "profile": spec.get("profile"),
        "url": spec.get("url"),
        "role": spec.get("role"),
        "epoch": spec.get("epoch"),
        "val_loss": spec.get("val_loss"),
        "val_loss_source": spec.get("val_loss_source"),
        "status": entry.get("status", "ok"),
        "reason": entry.get("reason"),
        "settings": settings,
        "key_report": settings.get("key_report") if isinstance(settings, dict) else None,
        "health": settings.get("health") if isinstance(settings, dict) else None,
    }
    if block["status"] != "ok":
        return block
    block["overall"] = aggregate(records, budget)
    block["by_cell"] = {c: aggregate([r for r in records if r["cell"] == c], budget) for c in cells}
    block["by_condition"] = {
        key: {
            value: aggregate([r for r in records if r[key] == value], budget)
            for value in sorted({r[key] for r in records})
        }
        for key in CONDITION_KEYS
    }
    return block


def _fmt_rate(agg: dict[str, Any]) -> str:
    if not agg or agg.get("success_rate") is None:
        return "n/a"
    return (
        f"{agg['successes']}/{agg['n']} = {agg['success_rate']:.0%} "
        f"(95% CI {agg['ci95_low']:.0%}-{agg['ci95_high']:.0%})"
    )


def recommend(
    policies: list[dict[str, Any]], pairs: list[dict[str, Any]], alpha: float = stats.ALPHA
) -> dict[str, Any] | None:
    """The checkpoint to deploy: highest success rate; a tie goes to the lower val_loss.

    The evidence says whether the lead over the runner-up is significant (exact McNemar on the
    shared episodes, Holm-adjusted over all checkpoint pairs).
    """
    ckpts = [p for p in policies if p["kind"] == "checkpoint" and p["status"] == "ok" and p["overall"]["n"]]
    if not ckpts:
        return None

    def key(p: dict[str, Any]) -> tuple[float, float, str]:
        vl = p["val_loss"] if p["val_loss"] is not None else float("inf")
        return (-p["overall"]["success_rate"], vl, p["policy_id"])

    ranked = sorted(ckpts, key=key)
    best = ranked[0]
    out: dict[str, Any] = {
        "policy_id": best["policy_id"],
        "checkpoint": best["checkpoint"],
        "val_loss": best["val_loss"],
        "success_rate": best["overall"]["success_rate"],
        "ci95_low": best["overall"]["ci95_low"],
        "ci95_high": best["overall"]["ci95_high"],
        "runner_up": None,
        "significant": None,
        "pvalue": None,
        "pvalue_holm": None,
        "lowest_val_loss_id": None,
        "agrees_with_val_loss": None,
    }
    with_loss = [p for p in ckpts if p["val_loss"] is not None]
    if with_loss:
        lowest = min(with_loss, key=lambda p: (p["val_loss"], p["policy_id"]))
        out["lowest_val_loss_id"] = lowest["policy_id"]
        out["agrees_with_val_loss"] = lowest["policy_id"] == best["policy_id"]
    lines = [f"{best['policy_id']} succeeded in {_fmt_rate(best['overall'])}"]
    if best["overall"]["successes"] == 0:
        lines.append(
            "no checkpoint succeeded in any episode, so this choice rests on val_loss alone and says nothing "
            "about closed-loop quality"
        )
    if len(ranked) == 1:
        lines.append("it is the only checkpoint evaluated, so there is nothing to compare it with")
    else:
        lines += _against_runner_up(out, best, ranked[1], pairs, alpha)
    if out["agrees_with_val_loss"] is False:
        lines.append(
            f"note: the lowest-val_loss checkpoint is {out['lowest_val_loss_id']}, not the recommended one"
        )
    out["evidence"] = "; ".join(lines) + "."
    return out


def _against_runner_up(
    out: dict[str, Any], best: dict[str, Any], runner: dict[str, Any], pairs: list[dict[str, Any]], alpha: float
) -> list[str]:
    """Evidence lines comparing ``best`` with the runner-up; fills ``out``'s runner-up and test fields."""
    out["runner_up"] = runner["policy_id"]
    lines = [f"runner-up {runner['policy_id']}: {_fmt_rate(runner['overall'])}"]
    if runner["overall"]["success_rate"] == best["overall"]["success_rate"]:
        lines.append(
            "the success rates tie, so the lower val_loss decides"
            + (
                f" ({best['val_loss']:.4f} vs {runner['val_loss']:.4f})"
                if runner["val_loss"] is not None and best["val_loss"] is not None
                else ""
            )
        )
    pair = next((r for r in pairs if {r["a"], r["b"]} == {best["policy_id"], runner["policy_id"]}), None)
    if pair is None:
        return lines
    best_only = pair["a_only"] if pair["a"] == best["policy_id"] else pair["b_only"]
    runner_only = pair["discordant"] - best_only
    out.update(pvalue=pair["pvalue"], pvalue_holm=pair["pvalue_holm"], significant=pair["significant"])
    lines.append(
        f"on {pair['n_pairs']} shared episodes, {best['policy_id']} alone succeeded in {best_only} and "
        f"{runner['policy_id']} alone in {runner_only}; exact McNemar p = {pair['pvalue']:.3g} "
        f"(Holm-adjusted {pair['pvalue_holm']:.3g})"
    )
    if pair["significant"]:
        lines.append(f"the difference is significant at {alpha}")
    else:
        lines.append(
            f"the difference is NOT significant at {alpha}: the data do not separate these checkpoints; "
            f"more episodes (--episodes) would be needed to tell them apart"
        )
    return lines


def lighting_breakdown(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Day vs evening success per policy (evening data was scarce in training: 12 of 468 episodes)."""
    rows = []
    for p in policies:
        if p["status"] != "ok":
            continue
        by = p["by_condition"]["lighting"]
        day, eve = by.get("day"), by.get("evening")
        if not day or not eve:
            continue
        diff = (
            eve["success_rate"] - day["success_rate"]
            if eve["success_rate"] is not None and day["success_rate"] is not None
            else None
        )
        rows.append(
            {
                "policy_id": p["policy_id"],
                "day": {k: day[k] for k in ("n", "successes", "success_rate", "ci95_low", "ci95_high")},
                "evening": {k: eve[k] for k in ("n", "successes", "success_rate", "ci95_low", "ci95_high")},
                "difference": diff,
                "fisher_pvalue": stats.fisher_exact(eve["successes"], eve["n"], day["successes"], day["n"]),
            }
        )
    return rows


def profile_comparisons(
    policies: list[dict[str, Any]],
    outcomes: dict[str, dict[tuple[str, int], bool]],
    profiles: list[str],
    alpha: float = stats.ALPHA,
) -> list[dict[str, Any]]:
    """Each checkpoint's profiles side by side: success rates, their difference and exact McNemar.

    Every profile after the first is compared with the first (``difference`` = other - first) on
    the episodes both ran; p-values are Holm-adjusted over all rows.
    """
    by_path: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for p in policies:
        if p["kind"] == "checkpoint" and p["status"] == "ok" and p.get("profile") and p["overall"]["n"]:
            by_path[p["checkpoint"]][p["profile"]] = p
    rows: list[dict[str, Any]] = []
    for path, by_profile in by_path.items():
        present = [pr for pr in profiles if pr in by_profile]
        if len(present) < 2:
            continue
        base = by_profile[present[0]]
        for other_profile in present[1:]:
            other = by_profile[other_profile]
            a, b = outcomes.get(base["policy_id"], {}), outcomes.get(other["policy_id"], {})
            shared = sorted(set(a) & set(b))
            test = stats.mcnemar_exact([a[k] for k in shared], [b[k] for k in shared])
            ra, rb = base["overall"]["success_rate"], other["overall"]["success_rate"]
            rows.append(
                {
                    "checkpoint": path,
                    "profile_a": present[0],
                    "profile_b": other_profile,
                    "a": base["policy_id"],
                    "b": other["policy_id"],
                    "success_a": ra,
                    "success_b": rb,
                    "difference": (rb - ra) if ra is not None and rb is not None else None,
                    **test,
                }
            )
    for row, p_adj in zip(rows, stats.holm([r["pvalue"] for r in rows]), strict=True):
        row["pvalue_holm"] = p_adj
        row["significant"] = bool(p_adj < alpha)
    return rows


def build_summary(
    *,
    records: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    cells: list[str],
    config: dict[str, Any],
    selection: dict[str, Any] | None,
    environment: dict[str, Any],
    errors: list[dict[str, Any]] | None = None,
    stopped: str | None = None,
) -> dict[str, Any]:
    """Build the summary dict (written to ``summary.json``) from episode records.

    With several profiles, checkpoints are ranked (rank agreement, pairwise tests,
    recommendation) under the first one, and each checkpoint's profiles are compared in
    ``profile_comparisons``.
    """
    budget = float(config.get("latency_budget_ms", 100.0))
    profiles = list(config.get("profiles") or [DEFAULT_PROFILE])
    by_policy: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_policy[r["policy_id"]].append(r)
    policies = [_policy_block(e, by_policy.get(e["spec"]["id"], []), cells, budget) for e in entries]
    ranking = _rank_checkpoints(policies, by_policy, profiles[0])
    outcomes = _outcomes(by_policy, [p["policy_id"] for p in policies])
    return {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": config,
        "environment": environment,
        "selection": selection,
        "cells": cells,
        "episodes_per_cell": config.get("episodes"),
        "profiles": profiles,
        "policies": policies,
        **ranking,
        "profile_comparisons": profile_comparisons(policies, outcomes, profiles),
        "lighting": lighting_breakdown(policies),
        "videos": sorted(r["video"] for r in records if r.get("video")),
        "errors": errors or [],
        "stopped": stopped,
    }


def _outcomes(
    by_policy: dict[str, list[dict[str, Any]]], ids: list[str]
) -> dict[str, dict[tuple[str, int], bool]]:
    """Per policy id: success of each episode, keyed by (cell, seed) (the pairing of paired tests)."""
    return {pid: {(r["cell"], r["seed"]): bool(r["success"]) for r in by_policy.get(pid, [])} for pid in ids}


def _rank_checkpoints(
    policies: list[dict[str, Any]], by_policy: dict[str, list[dict[str, Any]]], profile: str
) -> dict[str, Any]:
    """Checkpoints under ``profile`` (the first): rank agreement, paired tests, recommendation.

    The pairs are among those checkpoints; with fewer than two, among every evaluated policy.
    """
    ok_ckpts = [
        p
        for p in policies
        if p["kind"] == "checkpoint"
        and p["status"] == "ok"
        and p["overall"]["n"]
        and p.get("profile", profile) in (None, profile)
    ]
    ranked = [p for p in ok_ckpts if p["val_loss"] is not None]
    agreement = stats.rank_agreement(
        [p["val_loss"] for p in ranked], [p["overall"]["success_rate"] for p in ranked]
    )
    agreement["policies"] = [p["policy_id"] for p in ranked]
    agreement["profile"] = profile
    compared = (
        ok_ckpts if len(ok_ckpts) >= 2 else [p for p in policies if p["status"] == "ok" and p["overall"]["n"]]
    )
    pairs = stats.paired_tests(_outcomes(by_policy, [p["policy_id"] for p in compared]))
    recommendation = recommend(ok_ckpts, pairs)
    vs_baselines: list[dict[str, Any]] = []
    baselines = [p["policy_id"] for p in policies if p["kind"] != "checkpoint" and p["status"] == "ok"]
    if recommendation and baselines and len(ok_ckpts) >= 2:
        best = recommendation["policy_id"]
        tests = stats.paired_tests(_outcomes(by_policy, [best, *baselines]))
        vs_baselines = [r for r in tests if best in (r["a"], r["b"])]
    if recommendation is not None:
        recommendation["profile"] = profile
    return {
        "rank_agreement": agreement,
        "paired_tests": pairs,
        "recommended_vs_baselines": vs_baselines,
        "recommendation": recommendation,
    }


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:5.0%}"


def _ms3(block: dict[str, Any]) -> str:
    return "/".join("n/a" if block.get(k) is None else f"{block[k]:.1f}" for k in ("p50", "p95", "p99"))


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table per policy and condition, then the recommendation (for the terminal)."""

    def label_of(p: dict[str, Any]) -> str:
        return p["policy_id"] + (f" ({p['val_loss']:.3f})" if p.get("val_loss") is not None else "")

    w = max([26, *(len(label_of(p)) for p in summary["policies"])])
    header = f"{'policy':<{w}} {'condition':<22} {'n':>4} {'success':>7} {'95% CI':>13} {'SPL':>5} {'coll':>5} {'wrong':>5} {'t/o':>5} {'p95 ms':>7}"
    lines = [header, "-" * len(header)]
    for p in summary["policies"]:
        label = label_of(p)
        if p["status"] != "ok":
            lines.append(f"{label:<{w}} {p['status']}: {p['reason']}")
            continue
        rows = [("all", p["overall"])] + list(p["by_cell"].items())
        for i, (cond, a) in enumerate(rows):
            ci = "" if a["ci95_low"] is None else f"{a['ci95_low']:.2f}-{a['ci95_high']:.2f}"
            spl = "  n/a" if a["spl_mean"] is None else f"{a['spl_mean']:5.2f}"
            p95 = a["latency_ms"]["p95"]
            lines.append(
                f"{label if i == 0 else '':<{w}} {cond:<22} {a['n']:>4} {_pct(a['success_rate']):>7} {ci:>13} "
                f"{spl:>5} {_pct(a['collision_rate']):>5} {_pct(a['wrong_side_rate']):>5} {_pct(a['timeout_rate']):>5} "
                f"{('n/a' if p95 is None else f'{p95:.1f}'):>7}"
            )
    for p in summary["policies"]:
        rt = (p.get("overall") or {}).get("round_trip_ms")
        if rt:
            srv = p["overall"].get("server_latency_ms") or {}
            lines.append(
                f"{p['policy_id']}: round trip p50/p95/p99 {_ms3(rt)} ms, server latency_ms {_ms3(srv)} ms "
                f"(budget {rt['budget']:g} ms), server faults {p['overall'].get('server_faults', 0)}"
            )
    for c in summary.get("profile_comparisons") or []:
        diff = "n/a" if c["difference"] is None else f"{100 * c['difference']:+.0f} pts"
        lines.append(
            f"{Path(c['checkpoint']).name}: {c['profile_b']} vs {c['profile_a']} {diff} "
            f"(A only {c['a_only']}, B only {c['b_only']}, exact McNemar p = {c['pvalue']:.3g})"
        )
    if summary.get("stopped"):
        lines.append(f"STOPPED: {summary['stopped']}")
    ra = summary.get("rank_agreement") or {}
    lines.append("")
    if ra.get("spearman_rho") is not None:
        lines.append(
            f"val_loss vs success: Spearman rho {ra['spearman_rho']:+.2f}, Kendall tau {ra['kendall_tau']:+.2f} "
            f"(n={ra['n']}; -1 = val_loss ranks checkpoints as success does) {ra.get('note', '')}".rstrip()
        )
    elif ra:
        lines.append(f"val_loss vs success: {ra.get('note')}")
    rec = summary.get("recommendation")
    if rec:
        lines.append(f"recommended: {rec['policy_id']} ({rec['checkpoint']})")
        lines.append(f"  {rec['evidence']}")
    return "\n".join(lines)
