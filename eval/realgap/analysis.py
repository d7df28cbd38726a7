"""The whole gap analysis of a folder of real frames, as one JSON-ready dict (``run_analysis``).

For each appearance asked for: the paired episodes' simulated frames (``eval.realgap.pairing``),
the appearance gap per scene and overall (paired) and of the unpaired frames against a reference
simulated set (the representative real key sequences, ``mvla_sim.facts.CORE_KEY_SEQUENCES``,
replayed by day on both sides: the distribution the simulator shows); for each checkpoint, the
feature gap (same grouping) and the behaviour gap per paired episode and scene.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eval.realgap.behaviour import behaviour_gap, trace_actions
from eval.realgap.metrics import appearance_gap
from eval.realgap.pairing import make_env as make_paired_env
from eval.realgap.pairing import replay
from eval.realgap.sources import RealEpisode
from mvla_sim.appearance import load_appearance
from mvla_sim.facts import CORE_KEY_SEQUENCES, key_sequence_actions
from mvla_sim.make import SceneDescription, make_env

logger = logging.getLogger(__name__)


@dataclass
class SimSet:
    """One appearance's simulated frames: per paired episode, and the reference set."""

    appearance: str
    paired: dict[str, np.ndarray] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    reference: np.ndarray | None = None


def reference_frames(appearance: Any, size: tuple[int, int]) -> np.ndarray:
    """The simulator's own distribution: each side's representative real sequence, by day."""
    frames = []
    for side, keys in CORE_KEY_SEQUENCES.items():
        scene = SceneDescription(side=side, randomization="none", image_size=size, appearance=appearance)
        env = make_env(scene)
        obs, _ = env.reset(seed=0)
        frames.append(obs["image"])
        for action in key_sequence_actions(keys):
            obs, *_ = env.step(np.asarray(action[:2], dtype=np.float32))
            frames.append(obs["image"])
        env.close()
    return np.stack(frames)


def simulate(episodes: Sequence[RealEpisode], appearance: Any) -> SimSet:
    """Replay every paired episode with ``appearance``; render the reference set when unpaired ones exist."""
    look = load_appearance(appearance)
    out = SimSet(look.name)
    for episode in episodes:
        if not episode.paired:
            continue
        size = (episode.frames.shape[2], episode.frames.shape[1])
        env = make_paired_env(episode, size, look)
        played = replay(episode, env)
        env.close()
        out.paired[episode.name], out.outcomes[episode.name] = played.frames, played.outcome
    unpaired = [e for e in episodes if not e.paired]
    if unpaired:
        size = (unpaired[0].frames.shape[2], unpaired[0].frames.shape[1])
        out.reference = reference_frames(look, size)
    return out


def groups(episodes: Sequence[RealEpisode], sims: SimSet) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """``{scene: (real, sim, paired)}``: each paired scene, ``overall`` (paired) and ``unpaired``."""
    out: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    paired = [e for e in episodes if e.paired]
    for scene in sorted({e.scene for e in paired}):
        members = [e for e in paired if e.scene == scene]
        real = np.concatenate([e.frames[: len(sims.paired[e.name])] for e in members])
        out[scene] = (real, np.concatenate([sims.paired[e.name] for e in members]), True)
    if len(out) > 1:
        out["overall"] = (
            np.concatenate([v[0] for v in out.values()]),
            np.concatenate([v[1] for v in out.values()]),
            True,
        )
    unpaired = [e for e in episodes if not e.paired]
    if unpaired and sims.reference is not None:
        out["unpaired"] = (np.concatenate([e.frames for e in unpaired]), sims.reference, False)
    return out


def feature_gaps(policy: Any, grouped: dict[str, tuple[np.ndarray, np.ndarray, bool]]) -> dict[str, float]:
    """Fréchet distance per group in ``policy``'s image features (torch, imported here)."""
    from eval.realgap.features import embed, frechet_distance

    return {
        name: round(frechet_distance(embed(policy, real), embed(policy, sim)), 5)
        for name, (real, sim, _) in grouped.items()
    }


def behaviour_gaps(policy: Any, episodes: Sequence[RealEpisode], sims: SimSet) -> dict[str, Any]:
    """Per paired episode and per scene (steps pooled): real vs sim open-loop actions."""
    per_episode: dict[str, Any] = {}
    for episode in episodes:
        if not episode.paired:
            continue
        sim = sims.paired[episode.name]
        real_actions = trace_actions(policy, episode.frames[: len(sim)], episode.instruction or "")
        sim_actions = trace_actions(policy, sim, episode.instruction or "")
        per_episode[episode.name] = behaviour_gap(real_actions, sim_actions, episode.actions)
        per_episode[episode.name]["scene"] = episode.scene
    return {"episodes": per_episode, "scenes": pool_behaviour(per_episode)}


def pool_behaviour(per_episode: dict[str, Any]) -> dict[str, Any]:
    """Step-weighted means of the behaviour numbers per scene and overall."""
    keys = ("direction_agreement", "mean_abs_diff", "real_vs_recorded", "sim_vs_recorded")
    out: dict[str, Any] = {}
    scenes = sorted({row["scene"] for row in per_episode.values()})
    for scene in [*scenes, "overall"]:
        rows = [r for r in per_episode.values() if scene in ("overall", r["scene"])]
        if not rows:
            continue
        block: dict[str, Any] = {"episodes": len(rows), "steps": int(sum(r["steps"] for r in rows))}
        for key in keys:
            pairs = [(r[key], r["steps"]) for r in rows if r.get(key) is not None]
            weight = sum(w for _, w in pairs)
            block[key] = round(sum(v * w for v, w in pairs) / weight, 4) if weight else None
        out[scene] = block
    return out


def run_analysis(
    episodes: Sequence[RealEpisode],
    appearances: Sequence[Any],
    policies: dict[str, Any],
    behaviour: bool = True,
) -> tuple[dict[str, Any], dict[str, SimSet]]:
    """Everything per appearance (and per checkpoint): JSON-ready dict, and the simulated frames."""
    result: dict[str, Any] = {"appearances": {}}
    sims_by: dict[str, SimSet] = {}
    for appearance in appearances:
        sims = simulate(episodes, appearance)
        sims_by[sims.appearance] = sims
        grouped = groups(episodes, sims)
        block: dict[str, Any] = {
            "replay_outcomes": sims.outcomes,
            "appearance_gap": {name: appearance_gap(r, s, p) for name, (r, s, p) in grouped.items()},
            "checkpoints": {},
        }
        for policy_id, policy in policies.items():
            logger.info("checkpoint %s on appearance %s", policy_id, sims.appearance)
            entry: dict[str, Any] = {"feature_gap": feature_gaps(policy, grouped)}
            if behaviour and sims.paired:
                entry["behaviour_gap"] = behaviour_gaps(policy, episodes, sims)
            block["checkpoints"][policy_id] = entry
        result["appearances"][sims.appearance] = block
    return result, sims_by


def open_loop_ranking(
    checkpoints: Sequence[tuple[str, Any]], episodes: Sequence[RealEpisode], appearance: Any
) -> dict[str, Any]:
    """Each checkpoint's open-loop direction agreement with the recorded keys on real and on paired
    simulated frames, and the checkpoints the simulator ranks differently from real open loop."""
    from eval.correlate import rank_violations

    sims = simulate([e for e in episodes if e.paired], appearance)
    rows = []
    for policy_id, policy in checkpoints:
        pooled = behaviour_gaps(policy, episodes, sims)["scenes"].get("overall", {})
        rows.append(
            {
                "policy_id": policy_id,
                "real_vs_recorded": pooled.get("real_vs_recorded"),
                "sim_vs_recorded": pooled.get("sim_vs_recorded"),
                "direction_agreement": pooled.get("direction_agreement"),
                "steps": pooled.get("steps", 0),
            }
        )
    scored = [r for r in rows if r["real_vs_recorded"] is not None and r["sim_vs_recorded"] is not None]
    pairs = rank_violations([r["real_vs_recorded"] for r in scored], [r["sim_vs_recorded"] for r in scored])
    misranked = sorted({scored[k]["policy_id"] for pair in pairs for k in pair})
    return {
        "appearance": sims.appearance,
        "checkpoints": rows,
        "misranked": misranked,
        "misranked_pairs": [[scored[i]["policy_id"], scored[j]["policy_id"]] for i, j in pairs],
    }
