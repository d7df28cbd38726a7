"""The key sequences a run wrote, per side, beside the teleoperators' real ones (FACTS.md).

``generate_report.json`` holds the distribution (``totals.key_sequences``) and the command prints
:func:`format_key_sequence_distribution`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from mvla_sim.facts import SIDES, real_key_sequences


def key_sequence_distribution(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The key sequences of the written episodes, per side, beside the real table of FACTS.md.

    For each real sequence: its real episode count and share of its side, and how many written
    episodes pressed exactly it. The other written sequences (corrections in randomized scenes,
    recoveries after noise) are counted with their distance to the nearest real sequence of
    their side (keys that differ, position by position) and the most common of them listed.
    """
    out: dict[str, Any] = {}
    for side in SIDES:
        real = real_key_sequences(side)
        real_total = sum(s.episodes for s in real)
        written = [r["keys"] for r in records if r.get("file") and r["scenario"].split("_")[0] == side]
        counts = Counter(k for k in written if k)
        rows = [
            {
                "keys": s.keys,
                "name": s.name,
                "real_episodes": s.episodes,
                "real_share": s.episodes / real_total,
                "sim_episodes": counts.get(s.keys, 0),
                "sim_share": counts.get(s.keys, 0) / len(written) if written else 0.0,
            }
            for s in real
        ]
        real_keys = {s.keys for s in real}
        others = {k: c for k, c in counts.items() if k not in real_keys}
        distances = [min(_key_distance(k, s.keys) for s in real) for k, c in others.items() for _ in range(c)]
        out[side] = {
            "written": len(written),
            "real": rows,
            "other": {
                "sim_episodes": sum(others.values()),
                "sim_share": sum(others.values()) / len(written) if written else 0.0,
                "median_keys_from_nearest_real": float(np.median(distances)) if distances else None,
                "most_common": [
                    {
                        "keys": k,
                        "count": c,
                        "keys_from_nearest_real": min(_key_distance(k, s.keys) for s in real),
                    }
                    for k, c in sorted(others.items(), key=lambda kc: (-kc[1], kc[0]))[:5]
                ],
            },
        }
    return out


def _key_distance(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def format_key_sequence_distribution(distribution: dict[str, Any]) -> str:
    """The distribution as a plain-text table, the real one beside it."""
    lines = ["Key sequences written, beside the teleoperators' real ones (FACTS.md):"]
    lines.append(f"{'side':<6}{'sequence':<22}{'real':>6}{'real %':>8}{'sim':>6}{'sim %':>7}")
    for side, d in distribution.items():
        for r in d["real"]:
            name = r["name"].split(" ", 1)[1]
            lines.append(
                f"{side:<6}{name:<22}{r['real_episodes']:>6}{100 * r['real_share']:>7.1f}%"
                f"{r['sim_episodes']:>6}{100 * r['sim_share']:>6.1f}%"
            )
        o = d["other"]
        median = o["median_keys_from_nearest_real"]
        note = "" if median is None else f"  (median {median:g} keys from the nearest real one)"
        lines.append(
            f"{side:<6}{'other':<22}{'':>6}{'':>8}{o['sim_episodes']:>6}{100 * o['sim_share']:>6.1f}%{note}"
        )
        for m in o["most_common"][:3]:
            lines.append(
                f"{'':<6}  {m['keys']:<20}{'':>14}{m['count']:>6}   ({m['keys_from_nearest_real']} keys off)"
            )
    return "\n".join(lines)
