"""``eval.rollout --real DIR``: closed-loop success in the simulator beside open-loop agreement on real frames.

For every checkpoint of a rollout (first profile), :func:`real_open_loop` measures on the real
episodes of ``DIR`` (``eval.realgap.analysis.open_loop_ranking``): its open-loop direction agreement
with the recorded keys on the real frames and on the paired simulated frames (rendered with the
rollout's appearance), and names the checkpoints that the simulator ranks differently from real
open loop. The result goes into ``summary.json`` as ``real_open_loop``; ``report_section`` renders it.
"""

from __future__ import annotations

from typing import Any

from eval.realgap.analysis import open_loop_ranking
from eval.realgap.sources import load_real
from policies.vla.profiles import DEFAULT_PROFILE


def real_open_loop(config: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """The ``real_open_loop`` block of a rollout's summary (checkpoints of the first profile)."""
    from policies.vla.policy import VLAPolicy

    profile = (summary.get("profiles") or [DEFAULT_PROFILE])[0]
    chosen = [
        p
        for p in summary["policies"]
        if p["kind"] == "checkpoint" and p["status"] == "ok" and p.get("profile") in (None, profile)
    ]
    episodes = [e for e in load_real(config.real, config.real_channel_order) if e.paired]
    if not episodes or not chosen:
        return {
            "real": str(config.real),
            "note": "no paired real episodes or no checkpoint",
            "checkpoints": [],
        }
    options = config.options.checkpoint
    policies = [
        (p["policy_id"], VLAPolicy.from_checkpoint(p["checkpoint"], profile, **options)) for p in chosen
    ]
    block = open_loop_ranking(policies, episodes, config.scene.appearance)
    success = {p["policy_id"]: p["overall"]["success_rate"] for p in chosen}
    for row in block["checkpoints"]:
        row["closed_loop_success"] = success.get(row["policy_id"])
    block.update(
        real=str(config.real),
        profile=profile,
        episodes=len(episodes),
        standins=sum(e.standin for e in episodes),
    )
    return block


def report_rows(block: dict[str, Any]) -> list[list[str]]:
    """Rows of the report's table: checkpoint, closed-loop success, agreement on real and on sim."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.0f} %"

    return [
        [r["policy_id"], pct(r.get("closed_loop_success")), pct(r["real_vs_recorded"]), pct(r["sim_vs_recorded"]),
         pct(r["direction_agreement"]), "yes" if r["policy_id"] in block["misranked"] else "no"]
        for r in block["checkpoints"]
    ]  # fmt: skip


REPORT_HEADERS = [
    "checkpoint",
    "closed-loop success (sim)",
    "open-loop agreement with recorded keys, real frames",
    "same, paired sim frames",
    "real vs sim action agreement",
    "ranked differently by sim",
]
