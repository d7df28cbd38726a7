"""Closed-loop evaluation: ``python -m eval.rollout --ckpt top3``.

Rolls out checkpoints (and optional baselines) on one fixed, seeded list of episodes over the
scene grid (side x lighting x obstacle distance), in parallel worker processes, and writes:

- ``<out>/episodes.jsonl``  one record per episode, appended as episodes finish (resumable);
- ``<out>/summary.json``    success rates with Wilson 95 % intervals, SPL, collisions, side
  errors, latency, rank agreement val_loss vs success, paired tests, the recommendation;
- ``<out>/report.md``, ``<out>/report.html`` and ``<out>/plots/*.png`` built from summary.json;
- ``videos/<run>/<policy>__<scene>__seed<seed>__<outcome>.mp4``.

Each episode is a pure function of (policy spec, scene cell, seed): results do not depend on
the number of workers or on the order in which episodes finish.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib
import json
import logging
import math
import multiprocessing as mp
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Container, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval import records as rec
from eval.select import REFERENCE_RUN_DIR, REPO_ROOT, SelectionError, resolve_checkpoints
from eval.video import EpisodeVideo, caption, video_name

logger = logging.getLogger("eval.rollout")

SIDES = ("left", "right")
LIGHTINGS = ("day", "evening")
DISTANCES = ("close", "medium", "far")
DEFAULT_RUNS = Path("runs")
DEFAULT_EPISODES = 50
QUICK_EPISODES = 10
DEFAULT_VIDEOS = 2
LATENCY_BUDGET_MS = 100.0
"""act() budget per step (ms): the real robot sends a key press every 0.3-0.4 s, and the deployed
model needed about 120 ms on an RTX A5000."""
TIMEOUT_REASONS = ("box_not_passed", "goal_not_reached")
"""Failures that are time-outs: the horizon ran out before the goal (no collision, no wrong side)."""
EPISODE_STEP_CAP = 1000
"""Safety net for an env that never ends an episode (the real horizon is 17 actions)."""


class UsageError(Exception):
    """Bad command-line input; the message is one line naming the problem and the fix."""


class RolloutInterrupted(Exception):
    """Ctrl-C during a rollout; finished episodes are already on disk."""


@dataclass(frozen=True)
class Cell:
    """One scene condition of the grid. ``name`` matches the env's ``info["scene"]``."""

    side: str
    lighting: str
    distance: str

    @property
    def name(self) -> str:
        return f"{self.side}-{self.lighting}-{self.distance}"


@dataclass
class RolloutConfig:
    """Everything that defines one evaluation (saved as ``config`` in summary.json).

    Attributes:
        ckpt: checkpoint selectors/paths: ``top3`` (any ``topK``), ``best``, ``last``, file paths.
            Empty when only baselines run.
        runs: training output folder searched for the newest run (``*.ckpt``).
        runs_explicit: the user named ``runs``; if it holds no checkpoints that is an error
            (otherwise the bundled reference run is used).
        baselines: baseline names evaluated beside the checkpoints (``expert``, ``straight``, ...).
        sides, lightings, distances: the scene grid.
        randomize: domain randomization of the scenes (start jitter, lighting, textures, ...).
        episodes: episodes per cell (shared by every policy, so comparisons are paired).
        seed: base seed; episode seeds derive from (seed, cell, index).
        workers: worker processes (results do not depend on it).
        out: results folder; reusing one resumes it.
        videos: episodes recorded per cell and policy (the first ``videos`` of each cell).
        videos_dir: videos go to ``videos_dir/<out folder name>/``.
        image_size: camera image (width, height) in pixels, or None for the env's default.
        max_steps: actions per episode, or None for the env's default (17, the real protocol).
        torch_threads: torch intra-op threads per worker (fixed so results are reproducible).
        latency_budget_ms: act() latency budget per step (ms).
        env_factory: ``"module:function"`` building an env from (cell, config) instead of
            ``mvla_sim`` (tests and custom scenes).
        policy_options: settings passed to every checkpoint policy
            (``VLAPolicy.from_checkpoint(path, **policy_options)``), e.g. ``{"device": "cuda"}``.
    """

    ckpt: list[str] = field(default_factory=lambda: ["top3"])
    runs: Path = DEFAULT_RUNS
    runs_explicit: bool = False
    baselines: list[str] = field(default_factory=list)
    sides: tuple[str, ...] = SIDES
    lightings: tuple[str, ...] = LIGHTINGS
    distances: tuple[str, ...] = ("medium",)
    randomize: bool = True
    episodes: int = DEFAULT_EPISODES
    seed: int = 0
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    out: Path | None = None
    videos: int = DEFAULT_VIDEOS
    videos_dir: Path = REPO_ROOT / "videos"
    image_size: tuple[int, int] | None = None
    max_steps: int | None = None
    torch_threads: int = 1
    latency_budget_ms: float = LATENCY_BUDGET_MS
    env_factory: str | None = None
    policy_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, values, allowed in (
            ("sides", self.sides, SIDES),
            ("lightings", self.lightings, LIGHTINGS),
            ("distances", self.distances, DISTANCES),
        ):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise UsageError(f"--{name} {','.join(values)!s}: choose from {','.join(allowed)}")
        if self.episodes < 1:
            raise UsageError(f"--episodes {self.episodes}: must be at least 1")
        if self.workers < 1:
            raise UsageError(f"--workers {self.workers}: must be at least 1")
        if self.videos < 0:
            raise UsageError(f"--videos {self.videos}: must be 0 or more")
        if self.image_size is not None and (
            len(self.image_size) != 2 or self.image_size[0] < 16 or self.image_size[1] < 9
        ):
            size = "x".join(str(v) for v in self.image_size)
            raise UsageError(f"--image-size {size}: give WIDTHxHEIGHT of at least 16x9 pixels, e.g. 256x144")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps {self.max_steps}: must be at least 1")
        if self.torch_threads < 1:
            raise UsageError(f"--torch-threads {self.torch_threads}: must be at least 1")

    @property
    def cells(self) -> list[Cell]:
        return [Cell(s, li, d) for s in self.sides for li in self.lightings for d in self.distances]

    def episode_settings(self) -> dict[str, Any]:
        """The settings that change episode results: a resumed folder must match them."""
        return {
            "seed": self.seed,
            "randomize": self.randomize,
            "image_size": list(self.image_size) if self.image_size else None,
            "max_steps": self.max_steps,
            "env_factory": self.env_factory,
            "policy_options": dict(self.policy_options),
        }

    def to_dict(self) -> dict[str, Any]:
        return rec.to_jsonable(asdict(self))


def episode_seed(base_seed: int, cell: str, index: int) -> int:
    """Seed of episode ``index`` of ``cell``: a hash of (base seed, cell, index), in [0, 2**31).

    It does not depend on the policy, so every policy meets the same episodes (paired comparison).
    """
    digest = hashlib.sha256(f"mvla-eval/{int(base_seed)}/{cell}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _import_target(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(f"{target!r}: expected 'module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import {target!r}: {exc}") from exc


def make_env(cell: Cell, config: RolloutConfig) -> Any:
    """Build the gymnasium env for one cell (``render_mode="rgb_array"`` for videos)."""
    if config.env_factory:
        return _import_target(config.env_factory)(cell=cell, config=config)
    import gymnasium as gym

    import mvla_sim

    env_id = mvla_sim.env_id(cell.side, cell.lighting)
    kwargs: dict[str, Any] = {
        "obstacle_distance": cell.distance,
        "randomize": config.randomize,
        "render_mode": "rgb_array",
    }
    if config.image_size:
        kwargs["image_size"] = tuple(config.image_size)
    if config.max_steps:
        kwargs["max_steps"] = config.max_steps
    return gym.make(env_id, disable_env_checker=True, **kwargs)


def baseline_spec(name: str) -> dict[str, Any]:
    """Spec of a baseline policy (``policies.baselines.make_baseline``) or a ``module:factory``."""
    if ":" in name:
        return {
            "kind": "factory",
            "id": re.sub(r"[^A-Za-z0-9._-]+", "-", name.split(":")[-1]),
            "target": name,
        }
    return {"kind": "baseline", "id": name, "name": name}


def build_policy(spec: dict[str, Any], env: Any, seed: int) -> Any:
    """Rebuild a policy from its serialisable spec (in a worker or the main process).

    ``{"kind": "baseline", "name": ...}`` -> ``policies.baselines.make_baseline(name, env, seed)``;
    ``{"kind": "checkpoint", "path": ..., "options": {...}}`` ->
    ``policies.vla_policy.VLAPolicy.from_checkpoint(path, **options)``;
    ``{"kind": "factory", "target": "module:function"}`` -> ``function(env=env, seed=seed)``.
    """
    kind = spec["kind"]
    if kind == "baseline":
        from policies.baselines import make_baseline

        return make_baseline(spec["name"], env, seed)
    if kind == "checkpoint":
        from policies.vla_policy import VLAPolicy

        return VLAPolicy.from_checkpoint(spec["path"], **(spec.get("options") or {}))
    if kind == "factory":
        return _import_target(spec["target"])(env=env, seed=seed)
    raise ValueError(f"unknown policy spec kind {kind!r}")


def _xy(info: dict[str, Any]) -> list[float] | None:
    xy = info.get("robot_xy")
    if xy is None:
        return None
    return [round(float(xy[0]), 4), round(float(xy[1]), 4)]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _failure_reason(info: dict[str, Any], side: str, layout: dict[str, Any] | None) -> str:
    if info.get("collided"):
        return "collision"
    passed = info.get("side_passed") or "none"
    if passed not in ("none", side):
        return "wrong_side"
    if passed == "none":
        return "box_not_passed"
    radius, distance = (layout or {}).get("goal_radius"), info.get("distance_to_goal")
    if (
        info.get("bottle_in_view") is False
        and radius is not None
        and distance is not None
        and distance <= radius
    ):
        return "bottle_not_in_view"  # close enough, but the camera does not see the bottle
    return "goal_not_reached"


def outcome_label(record: dict[str, Any]) -> str:
    """``success`` or ``fail-<reason>`` (used in video file names)."""
    if record["success"]:
        return "success"
    return "fail-" + str(record["failure_reason"] or "unknown").split(":")[0].replace("_", "-")


def _latency_stats(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"mean": None, "p50": None, "p95": None, "max": None, "steps": []}
    arr = np.asarray(ms)
    return {
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "max": float(arr.max()),
        "steps": [round(float(v), 3) for v in arr],
    }


Task = tuple[dict[str, Any], Cell, int, int, str | None]
"""(policy spec, cell, episode index, seed, video path or None): one episode to run."""


def run_episode(
    env: Any,
    policy: Any,
    spec: dict[str, Any],
    cell: Cell,
    index: int,
    seed: int,
    video_path: Path | None = None,
) -> dict[str, Any]:
    """Run one episode and return its record (see ``eval.records``).

    A policy that raises or returns a non-finite action ends the episode as a failure with the
    reason recorded; it never crashes the rollout.
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
            video.append(np.asarray(frame), caption(steps, action, instruction, spec.get("id", "")))
        t_render += time.perf_counter() - t0

    try:
        record_frame(None)
        try:
            policy.reset(instruction)
        except Exception as exc:  # noqa: BLE001 - a failing policy is a failed episode
            failure = f"policy_error: reset() raised {_one_line(exc)}"
        while failure is None and not (terminated or truncated):
            t0 = time.perf_counter()
            try:
                raw = policy.act(obs)
                action = np.asarray(raw, dtype=np.float32).ravel()
            except Exception as exc:  # noqa: BLE001
                failure = f"policy_error: act() raised {_one_line(exc)} at step {steps}"
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
                failure = f"invalid_action: env.step rejected {action.tolist()}: {_one_line(exc)}"
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

    success = bool(info.get("is_success", False)) and failure is None
    reason = None if success else (failure or _failure_reason(info, cell.side, layout))
    side_passed = info.get("side_passed") or "none"
    spl = info.get("spl")
    record: dict[str, Any] = {
        "policy_id": spec["id"],
        "policy_kind": spec["kind"],
        "checkpoint": spec.get("path"),
        "val_loss": spec.get("val_loss"),
        "cell": cell.name,
        "side": cell.side,
        "lighting": cell.lighting,
        "distance": cell.distance,
        "episode_index": int(index),
        "seed": int(seed),
        "scene": info.get("scene"),
        "instruction": instruction,
        "success": success,
        "collided": bool(info.get("collided", False)),
        "side_passed": side_passed,
        "wrong_side": side_passed not in ("none", cell.side),
        "spl": float(spl) if spl is not None and failure is None else 0.0,
        "path_length": _float_or_none(info.get("path_length")),
        "distance_to_goal": _float_or_none(info.get("distance_to_goal")),
        "bottle_in_view": info.get("bottle_in_view"),
        "steps": steps,
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "timed_out": bool(truncated and reason in TIMEOUT_REASONS),
        "failure_reason": reason,
        "latency_ms": _latency_stats(latencies_ms),
        "time_s": {
            "act": t_act,
            "env_step": t_step,
            "render": t_render,
            "total": time.perf_counter() - t_start,
        },
        "video": None,
        "trajectory": trajectory,
        "actions": actions,
        "layout": rec.to_jsonable(layout) if layout is not None else None,
        "renderer": info.get("renderer"),
    }
    if video is not None and video.frames_written:
        final = video_path.with_name(video_name(spec["id"], cell.name, seed, outcome_label(record)))
        os.replace(video.path, final)
        record["video"] = str(final)
    return record


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


# ----------------------------------------------------------------------------------------------
# Workers: each builds envs (one per cell) and checkpoint policies once, and reuses them.

_WORKER: dict[str, Any] = {}


_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _configure_torch(threads: int, needed: bool) -> None:
    """Fix torch's intra-op threads (results must not depend on them).

    In a fresh worker the OpenMP/BLAS thread counts are set through the environment before torch
    is imported: ``torch.set_num_threads`` alone leaves OpenMP pools that make parallel workers
    fight over the cores (measured: 2 workers at 126 ms per act() each instead of 70 ms).
    """
    if "torch" not in sys.modules:
        for var in _THREAD_ENV_VARS:
            os.environ[var] = str(threads)
    if not needed:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def _worker_init(config: RolloutConfig, torch_needed: bool, warm_spec: dict[str, Any] | None = None) -> None:
    _WORKER.clear()
    _WORKER.update(config=config, envs={}, policy_key=None, policy=None)
    _configure_torch(config.torch_threads, torch_needed)
    if mp.current_process().name != "MainProcess":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    logging.basicConfig(level=logging.WARNING)
    if warm_spec is not None:
        try:  # load the first checkpoint ahead of its episodes; a failure shows up in those episodes
            _worker_policy(warm_spec, None, 0)
        except Exception:  # noqa: BLE001
            _WORKER.update(policy_key=None, policy=None)


def _worker_env(cell: Cell) -> Any:
    envs = _WORKER["envs"]
    if cell.name not in envs:
        envs[cell.name] = make_env(cell, _WORKER["config"])
    return envs[cell.name]


def _worker_policy(spec: dict[str, Any], env: Any, seed: int) -> Any:
    if spec["kind"] != "checkpoint":
        return build_policy(spec, env, seed)  # cheap, and bound to this env and seed
    key = (spec["id"], spec["path"])
    if _WORKER.get("policy_key") != key:
        _WORKER["policy"] = None
        _WORKER["policy"] = build_policy(spec, env, seed)
        _WORKER["policy_key"] = key
    return _WORKER["policy"]


def _run_task(task: Task) -> dict[str, Any]:
    spec, cell, index, seed, video = task
    try:
        env = _worker_env(cell)
        policy = _worker_policy(spec, env, seed)
        return run_episode(env, policy, spec, cell, index, seed, Path(video) if video else None)
    except Exception as exc:  # noqa: BLE001 - an env/harness error must not kill the pool
        logger.debug("episode failed", exc_info=True)
        return {"error": _one_line(exc), "policy_id": spec["id"], "cell": cell.name, "seed": seed}


def _worker_close() -> None:
    for env in _WORKER.get("envs", {}).values():
        try:
            env.close()
        except Exception:  # noqa: BLE001
            pass
    _WORKER.clear()


# ----------------------------------------------------------------------------------------------
# Orchestration


@dataclass
class PolicyEntry:
    """A policy of this evaluation: its spec and what loading it reported."""

    spec: dict[str, Any]
    status: str = "ok"
    reason: str | None = None
    settings: dict[str, Any] | None = None


def _probe(entry: PolicyEntry, config: RolloutConfig, env: Callable[[], Any]) -> None:
    """Build a policy once in the main process: catches broken checkpoints, reads settings()."""
    try:
        policy = build_policy(entry.spec, env() if entry.spec["kind"] != "checkpoint" else None, config.seed)
    except Exception as exc:  # noqa: BLE001 - CheckpointError and anything else: report it
        entry.status, entry.reason = "load_failed", _one_line(exc)
        logger.error("%s: could not load %s: %s", entry.spec["id"], entry.spec.get("path", ""), entry.reason)
        return
    try:
        entry.settings = rec.to_jsonable(policy.settings())
    except Exception as exc:  # noqa: BLE001
        entry.settings = {"error": f"settings() raised {_one_line(exc)}"}


def environment_info() -> dict[str, Any]:
    """Python, package versions and git revision (recorded in summary.json)."""
    import platform
    import subprocess
    from importlib import metadata

    packages = {}
    for name in (
        "mvla-sim", "numpy", "scipy", "gymnasium", "pybullet", "torch", "transformers", "peft",
        "lightning", "matplotlib", "imageio", "imageio-ffmpeg", "pillow",
    ):  # fmt: skip
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    git: dict[str, Any] = {"revision": None, "dirty": None}
    try:
        git["revision"] = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        git["dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": packages,
        "git": git,
    }


def _check_resume(out: Path, config: RolloutConfig) -> None:
    path = out / "run_config.json"
    settings = config.episode_settings()
    if path.exists():
        try:
            previous = json.loads(path.read_text()).get("episode_settings")
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous is not None and previous != rec.to_jsonable(settings):
            diff = {
                k: (previous.get(k), v) for k, v in rec.to_jsonable(settings).items() if previous.get(k) != v
            }
            raise UsageError(
                f"{out} holds results made with other episode settings {diff} (old, new); "
                f"use a new --out folder or the old settings"
            )
    rec.write_json_atomic(path, {"episode_settings": settings, "config": config.to_dict()})


def plan_specs(config: RolloutConfig, policy: str | None = None) -> tuple[list[dict[str, Any]], Any]:
    """The policy specs to evaluate: selected checkpoints, then baselines. Returns (specs, selection)."""
    specs: list[dict[str, Any]] = []
    selection = None
    if config.ckpt:
        selection = resolve_checkpoints(config.ckpt, config.runs, runs_explicit=config.runs_explicit)
        specs += [{**c.spec(), "options": dict(config.policy_options)} for c in selection.choices]
    for name in config.baselines:
        spec = baseline_spec(name)
        if spec["kind"] == "baseline":
            from policies.baselines import BASELINE_NAMES

            if name not in BASELINE_NAMES:
                raise UsageError(
                    f"unknown baseline {name!r}; choose from {','.join(BASELINE_NAMES)} (or give module:factory)"
                )
        if spec["id"] in {s["id"] for s in specs}:
            raise UsageError(f"policy id {spec['id']!r} appears twice; list each policy once")
        specs.append(spec)
    if not specs:
        raise UsageError("nothing to evaluate: give --ckpt (e.g. top3), --policy NAME or --baselines NAMES")
    return specs, selection


def plan_episodes(
    specs: list[dict[str, Any]],
    config: RolloutConfig,
    done: Container[tuple[str, str, int]],
    video_root: Path,
) -> tuple[list[Task], set[tuple[str, str, int]]]:
    """The episode tasks still to run, and the keys of every planned episode (done or not).

    Every policy gets the same (cell, seed) list; the first ``config.videos`` episodes of each
    cell are recorded.
    """
    tasks: list[Task] = []
    planned: set[tuple[str, str, int]] = set()
    for spec in specs:
        for cell in config.cells:
            for index in range(config.episodes):
                seed = episode_seed(config.seed, cell.name, index)
                key = (spec["id"], cell.name, seed)
                planned.add(key)
                if key in done:
                    continue
                video = None
                if index < config.videos:
                    video = str(video_root / video_name(spec["id"], cell.name, seed, "pending"))
                tasks.append((spec, cell, index, seed, video))
    return tasks, planned


def run_rollout(config: RolloutConfig, *, progress: bool = True) -> Path:
    """Run (or resume) an evaluation; returns the results folder holding summary.json.

    Raises:
        SelectionError, UsageError: bad input (one-line messages).
        RolloutInterrupted: on Ctrl-C (finished episodes are saved; rerun with the same --out).
    """
    from eval.report import build_report
    from eval.summary import build_summary

    specs, selection = plan_specs(config)
    out = config.out or Path("results") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    config.out = out
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, config)
    video_root = config.videos_dir / out.resolve().name
    for stale in video_root.glob("*__running.mp4") if video_root.is_dir() else []:
        stale.unlink(missing_ok=True)

    cells = config.cells
    probe_env: dict[str, Any] = {}

    def first_env() -> Any:
        if "env" not in probe_env:
            probe_env["env"] = make_env(cells[0], config)
        return probe_env["env"]

    torch_needed = any(s["kind"] == "checkpoint" for s in specs)
    previous_threads = None
    if torch_needed:
        import torch

        previous_threads = torch.get_num_threads()
    _configure_torch(config.torch_threads, torch_needed)

    entries = [PolicyEntry(spec) for spec in specs]
    max_tasks = len(specs) * len(cells) * config.episodes
    warm = next((s for s in specs if s["kind"] == "checkpoint"), None)
    pool = WorkerPool(config, torch_needed, max_tasks, warm)  # workers start up during the checks below
    try:
        for entry in entries:
            _probe(entry, config, first_env)  # loads and drops: workers load their own copy
    except BaseException:
        pool.close()
        raise
    finally:
        if "env" in probe_env:
            probe_env["env"].close()
    ok = [e for e in entries if e.status == "ok"]
    if not ok:
        pool.close()
        failed = entries[0]
        raise SelectionError(
            f"could not load {failed.spec.get('path') or failed.spec['id']}: {failed.reason}; "
            f"pass another checkpoint (--ckpt PATH) or retrain"
            if len(entries) == 1
            else f"none of the {len(entries)} policies could be loaded ({failed.reason}); see the log above"
        )

    log = rec.EpisodeLog(out / "episodes.jsonl")
    errors: list[dict[str, Any]] = []
    try:
        plan, planned_keys = plan_episodes([e.spec for e in ok], config, log.done, video_root)
        done_before = len(planned_keys) - len(plan)
        if done_before:
            logger.info("resuming %s: %d of %d episodes already done", out, done_before, len(planned_keys))
        logger.info(
            "%d policies x %d cells x %d episodes = %d episodes to run (%d workers)",
            len(ok), len(cells), config.episodes, len(plan), min(config.workers, max(1, len(plan))),
        )  # fmt: skip
        for result in pool.run(plan, progress):
            if "error" in result:
                errors.append(result)
                logger.error(
                    "%s %s seed %s: %s", result["policy_id"], result["cell"], result["seed"], result["error"]
                )
                continue
            log.append(result)
        log.rewrite_sorted([e.spec["id"] for e in entries])
    except KeyboardInterrupt as exc:
        raise RolloutInterrupted(
            f"interrupted; {len(log.records)} finished episodes are saved in {out / 'episodes.jsonl'}; "
            f"rerun the same command with --out {out} to resume"
        ) from exc
    finally:
        pool.close()
        log.close()
        if previous_threads is not None:
            import torch

            torch.set_num_threads(previous_threads)

    records = [r for r in log.records if rec.record_key(r) in planned_keys]
    summary = build_summary(
        records=records,
        entries=[{**asdict(e)} for e in entries],
        cells=[c.name for c in cells],
        config=config.to_dict(),
        selection=selection.to_dict() if selection is not None else None,
        environment=environment_info(),
        errors=errors,
    )
    rec.write_json_atomic(out / "summary.json", summary)
    build_report(out)
    if errors:
        logger.error(
            "%d episodes hit env/harness errors and were not recorded; rerun with --out %s", len(errors), out
        )
    return out


def _noop() -> None:
    """A task that only makes the pool start a worker process (and run its initializer)."""


class WorkerPool:
    """Where episodes run: this process (one worker) or spawned worker processes.

    Started early, the workers import the simulator and load the first checkpoint while the main
    process still checks the checkpoints, so the two start-ups overlap. "spawn" workers inherit
    no state (pybullet clients, torch threads), and a worker that dies is reported
    (BrokenProcessPool) instead of hanging the run.
    """

    def __init__(
        self,
        config: RolloutConfig,
        torch_needed: bool,
        max_tasks: int,
        warm_spec: dict[str, Any] | None = None,
    ):
        self.config, self.torch_needed = config, torch_needed
        self.workers = max(1, min(config.workers, max_tasks))
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_worker_init,
                initargs=(config, torch_needed, warm_spec),
            )
            for _ in range(self.workers):
                self._pool.submit(_noop)  # start every worker now

    def run(self, plan: list[Task], progress: bool = True) -> Iterable[dict[str, Any]]:
        """Run episode tasks; yields records in completion order ({"error": ...} for harness errors)."""
        from tqdm import tqdm

        if not plan:
            return
        bar = tqdm(total=len(plan), desc="episodes", unit="ep", disable=not progress, dynamic_ncols=True)
        successes = 0
        try:
            for result in self._results(plan):
                successes += int(bool(result.get("success")))
                bar.update(1)
                bar.set_postfix(success=f"{successes}/{bar.n}")
                yield result
        finally:
            bar.close()

    def _results(self, plan: list[Task]) -> Iterable[dict[str, Any]]:
        if self._pool is None:
            _worker_init(self.config, self.torch_needed)
            try:
                for task in plan:
                    yield _run_task(task)
            finally:
                _worker_close()
            return
        try:
            futures = [self._pool.submit(_run_task, task) for task in plan]
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "a worker process died (out of memory, or a crash in the simulator); finished episodes are "
                "saved, rerun with the same --out to resume, or with --workers 1 to see the error"
            ) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def execute_tasks(
    plan: list[Task], config: RolloutConfig, torch_needed: bool, progress: bool = True
) -> Iterable[dict[str, Any]]:
    """Run episode tasks in a fresh :class:`WorkerPool`; yields records in completion order."""
    with WorkerPool(config, torch_needed, len(plan)) as pool:
        yield from pool.run(plan, progress)


# ----------------------------------------------------------------------------------------------
# Command line


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _image_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT, e.g. 160x90")
    return int(m.group(1)), int(m.group(2))


def build_parser() -> argparse.ArgumentParser:
    from eval.stats import wilson_half_width  # scipy: not needed by worker processes

    hw50, hw10 = wilson_half_width(DEFAULT_EPISODES), wilson_half_width(QUICK_EPISODES)
    parser = argparse.ArgumentParser(
        prog="python -m eval.rollout",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Turn trained checkpoints into measured closed-loop success rates in the simulator.\n\n"
            "Picks checkpoints of the newest training run under --runs (by default the 3 with the lowest\n"
            "val_loss), runs every one on the same seeded episodes over the scene grid (left/right x\n"
            "day/evening x obstacle distance), and writes episodes.jsonl, summary.json, report.md/.html,\n"
            "plots, and videos whose names carry the outcome."
        ),
        epilog=(
            "examples:\n"
            "  python -m eval.rollout --quick                      # top-3 of the newest run, a few minutes\n"
            "  python -m eval.rollout --ckpt top3 --baselines expert,straight,random\n"
            "  python -m eval.rollout --ckpt best,last --runs runs/my_exp\n"
            "  python -m eval.rollout --ckpt path/to/epoch_epoch=06-val_loss=val_loss=0.067.ckpt\n"
            "  python -m eval.rollout --policy expert --episodes 20\n"
            "  python -m eval.rollout --quick --out results/quick     # run again to resume: finished episodes are kept\n"
            "  python -m eval.report results/20250101-120000          # rebuild report.md/.html\n\n"
            f"episodes per cell: the default {DEFAULT_EPISODES} gives a 95 % Wilson interval of at most\n"
            f"+/-{hw50:.2f} per cell (the worst case, at a 50 % success rate); --quick uses {QUICK_EPISODES}\n"
            f"(+/-{hw10:.2f}). Every policy runs the same episodes, so differences between checkpoints are\n"
            "tested pairwise (exact McNemar) on shared seeds.\n\n"
            "exit status: 0 done, 1 some episodes hit environment errors, 2 bad input, 130 interrupted."
        ),
    )
    g = parser.add_argument_group("what to evaluate")
    g.add_argument(
        "--ckpt",
        nargs="+",
        default=None,
        metavar="SEL",
        help="checkpoints: topK (e.g. top3: lowest val_loss), best, last, or .ckpt paths; "
        "several allowed, commas too (default: top3)",
    )
    g.add_argument(
        "--runs",
        type=Path,
        default=None,
        metavar="DIR",
        help="training output folder; the newest folder under it holding *.ckpt is the run "
        "(default: runs/; when runs/ has none, the bundled reference run "
        f"{REFERENCE_RUN_DIR.relative_to(REPO_ROOT)}/ is used; another folder without checkpoints is an error)",
    )
    g.add_argument(
        "--baselines",
        type=_csv,
        default=[],
        metavar="NAMES",
        help="reference policies evaluated on the same episodes, e.g. expert,straight,random",
    )
    g.add_argument(
        "--policy",
        default=None,
        metavar="NAME",
        help="evaluate one baseline alone (e.g. expert), or a 'module:factory' of your own; no checkpoints",
    )
    g = parser.add_argument_group("episodes")
    g.add_argument(
        "--episodes",
        type=int,
        default=None,
        metavar="N",
        help=f"episodes per scene cell (default {DEFAULT_EPISODES}: 95%% CI half-width <= {hw50:.2f})",
    )
    g.add_argument(
        "--quick",
        action="store_true",
        help=f"a few-minute check: {QUICK_EPISODES} episodes per cell, 1 video per cell",
    )
    g.add_argument("--sides", type=_csv, default=list(SIDES), metavar="S", help="left,right (default both)")
    g.add_argument(
        "--lightings", type=_csv, default=list(LIGHTINGS), metavar="L", help="day,evening (default both)"
    )
    g.add_argument(
        "--distances",
        type=_csv,
        default=["medium"],
        metavar="D",
        help="obstacle distances: close,medium,far (default medium)",
    )
    g.add_argument(
        "--randomize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="domain randomization: start/box jitter, lighting, textures, camera pitch (default on)",
    )
    g.add_argument("--seed", type=int, default=0, help="base seed of the episode list (default 0)")
    g.add_argument(
        "--image-size",
        type=_image_size,
        default=None,
        metavar="WxH",
        help="camera image size (default: the env's)",
    )
    g.add_argument(
        "--max-steps",
        type=int,
        default=None,
        metavar="N",
        help="actions per episode (default: the env's, 17)",
    )
    g = parser.add_argument_group("output")
    g.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="results folder (default results/<timestamp>/); reuse it to resume",
    )
    g.add_argument(
        "--videos",
        type=int,
        default=None,
        metavar="K",
        help=f"record the first K episodes of each cell and policy, successes and failures (default {DEFAULT_VIDEOS}; 0 = none)",
    )
    g.add_argument(
        "--videos-dir",
        type=Path,
        default=REPO_ROOT / "videos",
        metavar="DIR",
        help="videos go to DIR/<run>/ (default videos/)",
    )
    g = parser.add_argument_group("execution")
    g.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes (default: all CPUs); results do not depend on it",
    )
    g.add_argument(
        "--torch-threads", type=int, default=1, metavar="N", help="torch threads per worker (default 1)"
    )
    g.add_argument(
        "--policy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a VLA policy setting for every checkpoint, repeatable: device=cuda, dtype=bfloat16, "
        "dead_zone=0.1, execute_steps=2, temporal_ensemble=true ... (recorded in summary.json; "
        "results on a GPU may differ in the last bits between runs)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--dry-run", action="store_true", help="show the chosen checkpoints and the plan, run nothing"
    )
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def config_from_args(args: argparse.Namespace) -> RolloutConfig:
    if args.policy and args.ckpt:
        raise UsageError(
            "--policy evaluates a baseline alone; drop --ckpt, or use --baselines to add it to checkpoints"
        )
    ckpt = [] if args.policy else (args.ckpt or ["top3"])
    baselines = ([args.policy] if args.policy else []) + [b for b in args.baselines if b != args.policy]
    episodes = (
        args.episodes if args.episodes is not None else (QUICK_EPISODES if args.quick else DEFAULT_EPISODES)
    )
    videos = args.videos if args.videos is not None else (1 if args.quick else DEFAULT_VIDEOS)
    options: dict[str, Any] = {}
    for item in args.policy_option:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--policy-option {item!r}: give KEY=VALUE, e.g. device=cuda")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return RolloutConfig(
        policy_options=options,
        ckpt=ckpt,
        runs=args.runs or DEFAULT_RUNS,
        # the default training output (runs/) may be empty: then the reference run is used;
        # any other folder the user names must hold checkpoints
        runs_explicit=args.runs is not None and args.runs.resolve() != DEFAULT_RUNS.resolve(),
        baselines=baselines,
        sides=tuple(args.sides),
        lightings=tuple(args.lightings),
        distances=tuple(args.distances),
        randomize=args.randomize,
        episodes=episodes,
        seed=args.seed,
        workers=args.workers,
        out=args.out,
        videos=videos,
        videos_dir=args.videos_dir,
        image_size=args.image_size,
        max_steps=args.max_steps,
        torch_threads=args.torch_threads,
    )


def _dry_run(config: RolloutConfig) -> None:
    specs, selection = plan_specs(config)
    if selection is not None:
        print(f"run folder: {selection.run_dir}")
        for note in selection.notes:
            print(f"note: {note}")
    for spec in specs:
        extra = (
            f" val_loss={spec['val_loss']} ({spec['val_loss_source']}) {spec['path']}"
            if spec["kind"] == "checkpoint"
            else ""
        )
        print(f"{spec['id']:<24} {spec['kind']:<11} {spec.get('role') or '':<8}{extra}")
    n = len(specs) * len(config.cells) * config.episodes
    print(f"{len(specs)} policies x {len(config.cells)} cells x {config.episodes} episodes = {n} episodes")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
        if args.dry_run:
            _dry_run(config)
            return 0
        out = run_rollout(config, progress=not args.no_progress)
    except (SelectionError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RolloutInterrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("error: interrupted before any episode ran", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from eval.summary import format_table

    summary = json.loads((out / "summary.json").read_text())
    print(format_table(summary))
    print(f"\nresults: {out}/summary.json  report: {out}/report.html")
    return 1 if summary.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
