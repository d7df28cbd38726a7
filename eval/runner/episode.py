"""The episode runner: one seeded episode of one policy in one scene cell -> an :class:`EpisodeRecord`.

Its parts are shared by every runner (this one, the batched one, the Ray backend): :func:`judge`
(the outcome, from the env's ``info``), :class:`EpisodeRecorder` (path, actions, timing, video,
the record) and :func:`checked_action`; :func:`run_episode` is the loop around them.

:func:`run_episode` is a pure function of (policy, cell, seed) apart from wall-clock times. A
policy that raises, answers a wrong shape or a non-finite action, or a server that fails
(:class:`policies.http.client.ServerFault`) ends the episode as a failure with the reason
recorded; nothing a policy does crashes a rollout.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
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


@dataclass(frozen=True)
class Outcome:
    """How an episode ended, judged from the env's final ``info`` and any policy failure."""

    success: bool
    failure_reason: str | None
    side_passed: str
    wrong_side: bool
    timed_out: bool
    spl: float


def judge(info: dict[str, Any], cell: Cell, failure: str | None, truncated: bool) -> Outcome:
    """The outcome of an episode: the env's (``info``, :func:`mvla_sim.task.outcome_from_info`),
    unless the policy failed."""
    success = bool(info.get("is_success", False)) and failure is None
    reason = None if success else (failure or outcome_from_info(info, cell.side))
    side_passed = info.get("side_passed") or "none"
    spl = info.get("spl")
    return Outcome(
        success=success,
        failure_reason=reason,
        side_passed=side_passed,
        wrong_side=side_passed not in ("none", cell.side),
        timed_out=bool(truncated and reason in TIMEOUT_OUTCOMES),
        spl=float(spl) if spl is not None and failure is None else 0.0,
    )


class EpisodeRecorder:
    """What one episode leaves behind: path, actions, per-step times, the video, then its record.

    The loop that drives the episode (:func:`run_episode`, or a batched or distributed runner)
    calls :meth:`start` after the env's reset, :meth:`timed` around the policy's and the env's
    calls, :meth:`frame` after each step and :meth:`finish` at the end.
    """

    def __init__(
        self,
        spec: PolicySpec,
        cell: Cell,
        index: int,
        seed: int,
        video_path: Path | None,
        render: Callable[[], Any],
    ) -> None:
        self.spec, self.cell, self.index, self.seed = spec, cell, int(index), int(seed)
        self.video_path, self.render = video_path, render
        self.t_start = time.perf_counter()
        self.times = {"act": 0.0, "env_step": 0.0, "render": 0.0}
        self.latencies_ms: list[float] = []
        self.trajectory: list[list[float] | None] = []
        self.actions: list[list[float]] = []
        self.instruction = ""
        self.layout: dict[str, Any] | None = None
        self.steps = 0
        self.video = (
            EpisodeVideo(video_path.with_name(video_path.stem + "__running.mp4")) if video_path else None
        )

    def start(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.layout = info.get("layout")
        self.instruction = str(obs.get("instruction", ""))
        self.trajectory.append(_xy(info))

    @contextlib.contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        """Add the time spent inside to ``kind`` (``act`` also counts as one step's latency)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.times[kind] += dt
            if kind == "act":
                self.latencies_ms.append(dt * 1000.0)

    def stepped(self, action: np.ndarray, info: dict[str, Any]) -> None:
        self.steps += 1
        self.actions.append([round(float(v), 4) for v in action[:2]])
        self.trajectory.append(_xy(info))

    def frame(self, action: np.ndarray | None) -> None:
        """Append the env's rendered frame to the video, captioned (nothing without a video)."""
        if self.video is None:
            return
        with self.timed("render"):
            frame = self.render()
            if frame is not None:
                self.video.append(
                    np.asarray(frame), caption(self.steps, action, self.instruction, self.spec.id)
                )

    def close_video(self) -> None:
        if self.video is not None:
            self.video.close()

    def finish(
        self,
        info: dict[str, Any],
        failure: str | None,
        terminated: bool,
        truncated: bool,
        timings: dict[str, list[float]],
        probe_instruction: str | None = None,
    ) -> EpisodeRecord:
        """The episode's record; the video, if any, renamed after its outcome.

        ``probe_instruction``: what a probe spec's policy was given instead of the env's instruction.
        """
        outcome = judge(info, self.cell, failure, truncated)
        record = self._record(info, outcome, terminated, truncated, timings)
        record.probe_instruction = probe_instruction if self.spec.probe else None
        if self.video is not None and self.video.frames_written:
            final = self.video_path.with_name(
                video_name(self.spec.id, self.cell.name, self.seed, outcome_label(record))
            )
            os.replace(self.video.path, final)
            record.video = str(final)
        return record

    def _record(
        self,
        info: dict[str, Any],
        outcome: Outcome,
        terminated: bool,
        truncated: bool,
        timings: dict[str, list[float]],
    ) -> EpisodeRecord:
        spec, cell, layout = self.spec, self.cell, self.layout
        return EpisodeRecord(
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
            episode_index=self.index,
            seed=self.seed,
            scene=info.get("scene"),
            instruction=self.instruction,
            success=outcome.success,
            collided=bool(info.get("collided", False)),
            side_passed=outcome.side_passed,
            wrong_side=outcome.wrong_side,
            spl=outcome.spl,
            path_length=_float_or_none(info.get("path_length")),
            distance_to_goal=_float_or_none(info.get("distance_to_goal")),
            bottle_in_view=info.get("bottle_in_view"),
            steps=self.steps,
            terminated=bool(terminated),
            truncated=bool(truncated),
            timed_out=outcome.timed_out,
            failure_reason=outcome.failure_reason,
            latency_ms=latency_stats(self.latencies_ms),
            round_trip_ms=latency_stats(timings["round_trip_ms"]) if "round_trip_ms" in timings else None,
            server_latency_ms=(
                latency_stats(timings["server_latency_ms"]) if "server_latency_ms" in timings else None
            ),
            time_s={**self.times, "total": time.perf_counter() - self.t_start},
            video=None,
            trajectory=self.trajectory,
            actions=self.actions,
            layout=rec.to_jsonable(layout) if layout is not None else None,
            renderer=info.get("renderer"),
            appearance=info.get("appearance"),
            probe=spec.probe,
            probe_instruction=None,
        )


def checked_action(raw: Any, steps: int) -> tuple[np.ndarray | None, str | None]:
    """(the policy's answer as a flat float32 action, None) or (None, why it cannot drive the env)."""
    action = np.asarray(raw, dtype=np.float32).ravel()
    if action.size not in (2, 3):
        return (
            None,
            f"policy_error: act() returned shape {tuple(np.shape(raw))} at step {steps}, expected (2,)",
        )
    if not np.all(np.isfinite(action)):
        return None, f"non_finite_action: act() returned {action.tolist()} at step {steps}"
    return action, None


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
    recorder = EpisodeRecorder(spec, cell, index, seed, video_path, env.render)
    obs, info = env.reset(seed=int(seed))
    recorder.start(obs, info)
    terminated = truncated = False
    failure: str | None = None
    try:
        recorder.frame(None)
        try:
            policy.reset(recorder.instruction)
        except Exception as exc:  # noqa: BLE001 - a failing policy is a failed episode
            failure = _policy_failure(exc, "reset()", 0)
        while failure is None and not (terminated or truncated):
            try:
                with recorder.timed("act"):
                    raw = policy.act(obs)
                action, failure = checked_action(raw, recorder.steps)
            except Exception as exc:  # noqa: BLE001
                failure = _policy_failure(exc, "act()", recorder.steps)
            if failure is not None:
                break
            try:
                with recorder.timed("env_step"):
                    obs, _reward, terminated, truncated, info = env.step(action)
            except ValueError as exc:  # the env rejects non-finite or malformed actions
                failure = f"invalid_action: env.step rejected {action.tolist()}: {one_line(exc)}"
                break
            recorder.stepped(action, info)
            recorder.frame(action)
            truncated = truncated or recorder.steps >= EPISODE_STEP_CAP
    finally:
        recorder.close_video()
    timings = policy.step_timings() if hasattr(policy, "step_timings") else {}
    given = getattr(policy, "given_instruction", None)
    return recorder.finish(info, failure, terminated, truncated, timings, given)


def is_server_fault(record: EpisodeRecord | dict[str, Any]) -> bool:
    """The episode ended because its server failed (not because of the policy's driving)."""
    reason = record.failure_reason if isinstance(record, EpisodeRecord) else record.get("failure_reason")
    return bool(reason) and str(reason).startswith(SERVER_FAULT + ":")


__all__ = [
    "EPISODE_STEP_CAP",
    "SERVER_FAULT",
    "EpisodeRecorder",
    "EpisodeTask",
    "HarnessError",
    "Outcome",
    "checked_action",
    "judge",
    "is_server_fault",
    "latency_stats",
    "outcome_label",
    "run_episode",
]
