"""The episode runner: one seeded episode of one policy in one scene cell -> an :class:`EpisodeRecord`.

:func:`run_episode` is a pure function of (policy, cell, seed) apart from wall-clock times. A
policy that raises, answers a wrong shape or a non-finite action, or a server that fails
(:class:`policies.http.client.ServerFault`) ends the episode as a failure with the reason
recorded; nothing a policy does crashes a rollout.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.config import Cell
from eval.results import records as rec
from eval.results.records import EpisodeRecord
from eval.results.stats import percentiles
from eval.results.video import EpisodeVideo, caption, video_name
from eval.runner.policy_factory import PolicySpec
from mvla_sim.task import TIMEOUT_OUTCOMES, outcome_from_info
from policies.messages import one_line

EPISODE_STEP_CAP = 1000
"""Safety net for an env that never ends an episode (the real horizon is 17 actions)."""
SERVER_FAULT = "server_fault"
"""Failure code of an episode ended by a server fault (timeout, refused/reset connection, HTTP error)."""


@dataclass(frozen=True)
class EpisodeTask:
    """One episode to run: the policy, the scene cell, the episode's index and seed, its video path."""

    spec: PolicySpec
    cell: Cell
    index: int
    seed: int
    video: str | None = None


@dataclass(frozen=True)
class HarnessError:
    """An episode that could not run (env or harness error, not the policy's fault); not recorded."""

    policy_id: str
    cell: str
    seed: int
    error: str


def _policy_failure(exc: BaseException, call: str, steps: int) -> str:
    code = getattr(exc, "failure_code", None)
    if code:  # e.g. a ServerFault: "server_fault: timeout: no answer within 1 s"
        return f"{code}: {' '.join(str(exc).split())[:250]} ({call} at step {steps})"
    return f"policy_error: {call} raised {one_line(exc)}" + (f" at step {steps}" if call == "act()" else "")


def _xy(info: dict[str, Any]) -> list[float] | None:
    xy = info.get("robot_xy")
    if xy is None:
        return None
    return [round(float(xy[0]), 4), round(float(xy[1]), 4)]


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def outcome_label(record: EpisodeRecord | dict[str, Any]) -> str:
    """``success`` or ``fail-<reason>`` (used in video file names)."""
    r = record.to_dict() if isinstance(record, EpisodeRecord) else record
    if r["success"]:
        return "success"
    return "fail-" + str(r["failure_reason"] or "unknown").split(":")[0].replace("_", "-")


def latency_stats(ms: list[float]) -> dict[str, Any]:
    """``{mean, p50, p95, p99, max, steps}`` of per-step times (ms); None values when empty."""
    if not ms:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None, "steps": []}
    arr = np.asarray(ms)
    return {
        "mean": float(arr.mean()),
        **percentiles(ms, (50, 95, 99)),
        "max": float(arr.max()),
        "steps": [round(float(v), 3) for v in arr],
    }


def run_episode(
    env: Any,
    policy: Any,
    spec: PolicySpec,
    cell: Cell,
    index: int,
    seed: int,
    video_path: Path | None = None,
) -> EpisodeRecord:
    """Run one episode and return its record.

    A policy that raises or returns a non-finite action ends the episode as a failure with the
    reason recorded; it never crashes the rollout. A policy with ``step_timings()`` (the HTTP
    client) adds its per-step round trip and server latency to the record.
    """
    t_start = time.perf_counter()
    obs, info = env.reset(seed=int(seed))
    layout = info.get("layout")
    instruction = str(obs.get("instruction", ""))
    trajectory = [_xy(info)]
    actions: list[list[float]] = []
    latencies_ms: list[float] = []
    t_act = t_step = t_render = 0.0
    terminated = truncated = False
    failure: str | None = None
    steps = 0

    video = EpisodeVideo(video_path.with_name(video_path.stem + "__running.mp4")) if video_path else None

    def record_frame(action: np.ndarray | None) -> None:
        nonlocal t_render
        if video is None:
            return
        t0 = time.perf_counter()
        frame = env.render()
        if frame is not None:
            video.append(np.asarray(frame), caption(steps, action, instruction, spec.id))
        t_render += time.perf_counter() - t0

    try:
        record_frame(None)
        try:
            policy.reset(instruction)
        except Exception as exc:  # noqa: BLE001 - a failing policy is a failed episode
            failure = _policy_failure(exc, "reset()", steps)
        while failure is None and not (terminated or truncated):
            t0 = time.perf_counter()
            try:
                raw = policy.act(obs)
                action = np.asarray(raw, dtype=np.float32).ravel()
            except Exception as exc:  # noqa: BLE001
                failure = _policy_failure(exc, "act()", steps)
                break
            finally:
                dt = time.perf_counter() - t0
                t_act += dt
                latencies_ms.append(dt * 1000.0)
            if action.size not in (2, 3):
                failure = f"policy_error: act() returned shape {tuple(np.shape(raw))} at step {steps}, expected (2,)"
                break
            if not np.all(np.isfinite(action)):
                failure = f"non_finite_action: act() returned {action.tolist()} at step {steps}"
                break
            t1 = time.perf_counter()
            try:
                obs, _reward, terminated, truncated, info = env.step(action)
            except ValueError as exc:  # the env rejects non-finite or malformed actions
                failure = f"invalid_action: env.step rejected {action.tolist()}: {one_line(exc)}"
                break
            finally:
                t_step += time.perf_counter() - t1
            steps += 1
            actions.append([round(float(v), 4) for v in action[:2]])
            trajectory.append(_xy(info))
            record_frame(action)
            if steps >= EPISODE_STEP_CAP:
                truncated = True
    finally:
        if video is not None:
            video.close()

    timings = policy.step_timings() if hasattr(policy, "step_timings") else {}
    success = bool(info.get("is_success", False)) and failure is None
    reason = None if success else (failure or outcome_from_info(info, cell.side))
    side_passed = info.get("side_passed") or "none"
    spl = info.get("spl")
    record = EpisodeRecord(
        policy_id=spec.id,
        policy_kind=spec.kind,
        checkpoint=spec.path,
        profile=spec.profile,
        url=spec.url,
        val_loss=spec.val_loss,
        cell=cell.name,
        side=cell.side,
        lighting=cell.lighting,
        distance=cell.distance,
        episode_index=int(index),
        seed=int(seed),
        scene=info.get("scene"),
        instruction=instruction,
        success=success,
        collided=bool(info.get("collided", False)),
        side_passed=side_passed,
        wrong_side=side_passed not in ("none", cell.side),
        spl=float(spl) if spl is not None and failure is None else 0.0,
        path_length=_float_or_none(info.get("path_length")),
        distance_to_goal=_float_or_none(info.get("distance_to_goal")),
        bottle_in_view=info.get("bottle_in_view"),
        steps=steps,
        terminated=bool(terminated),
        truncated=bool(truncated),
        timed_out=bool(truncated and reason in TIMEOUT_OUTCOMES),
        failure_reason=reason,
        latency_ms=latency_stats(latencies_ms),
        round_trip_ms=latency_stats(timings["round_trip_ms"]) if "round_trip_ms" in timings else None,
        server_latency_ms=(
            latency_stats(timings["server_latency_ms"]) if "server_latency_ms" in timings else None
        ),
        time_s={"act": t_act, "env_step": t_step, "render": t_render, "total": time.perf_counter() - t_start},
        video=None,
        trajectory=trajectory,
        actions=actions,
        layout=rec.to_jsonable(layout) if layout is not None else None,
        renderer=info.get("renderer"),
        appearance=info.get("appearance"),
        probe=spec.probe,
        probe_instruction=getattr(policy, "given_instruction", None) if spec.probe else None,
    )
    if video is not None and video.frames_written:
        final = video_path.with_name(video_name(spec.id, cell.name, seed, outcome_label(record)))
        os.replace(video.path, final)
        record.video = str(final)
    return record


def is_server_fault(record: EpisodeRecord | dict[str, Any]) -> bool:
    """The episode ended because its server failed (not because of the policy's driving)."""
    reason = record.failure_reason if isinstance(record, EpisodeRecord) else record.get("failure_reason")
    return bool(reason) and str(reason).startswith(SERVER_FAULT + ":")


__all__ = [
    "EPISODE_STEP_CAP",
    "SERVER_FAULT",
    "EpisodeTask",
    "HarnessError",
    "is_server_fault",
    "latency_stats",
    "outcome_label",
    "run_episode",
]
