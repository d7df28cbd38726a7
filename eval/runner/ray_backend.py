"""``eval.rollout --backend ray``: an evaluation's episodes as Ray tasks, its models in Ray actors.

The plan (checkpoints x cells x seeds) is cut into *chunks*: the episodes of one policy in one
cell, :data:`CHUNK_EPISODES` seeds at a time (a server without sessions holds one history: all of
its episodes form one chunk). Each chunk is a Ray task that runs its episodes with the one-episode
runner (:func:`eval.runner.episode.run_episode`: the same judging, timing, video and records) and
streams them back one by one (a generator task). A checkpoint lives in one :class:`ModelActor`
(``num_gpus=1`` when its ``device`` is CUDA) that answers every chunk's steps through a
:class:`policies.http.sessions.SessionBatcher`: concurrent episodes are batched into one
``act_batch``, each keeping its own history, so every record equals the local backend's.

Videos are written by the task in its own temporary folder and sent back with the record; this
process writes them into the run's video folder. Records are yielded to ``eval.rollout``, which
appends them to ``episodes.jsonl`` as they arrive (resumable, no duplicates).

Without ``--ray-address`` a local Ray starts with ``--workers`` CPUs (and stops at the end);
with it this process joins that cluster, whose nodes need this project installed
(``pip install .[ray]``) and the checkpoints on a path they can read.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eval.config import RolloutConfig, UsageError
from eval.results import records as rec
from eval.results.records import EpisodeRecord
from eval.runner import workers
from eval.runner.episode import EpisodeTask
from eval.runner.policy_factory import PolicySpec, build_policy
from eval.runner.workers import Result, WorkerPool
from mvla_sim.files import atomic_write_bytes

logger = logging.getLogger("eval.rollout")

CHUNK_EPISODES = 4
"""Seeds per Ray task (a chunk streams its episodes back one by one)."""
MODEL_ACTOR_CONCURRENCY = 64
"""Steps a model actor accepts at once (they wait in its batcher)."""


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError("--backend ray needs Ray: pip install '.[ray]' (or pip install ray)") from exc
    return ray


# ----------------------------------------------------------------------------------------------
# In Ray's processes


class ModelActor:
    """One checkpoint's policy, its episodes' steps batched (a threaded Ray actor)."""

    def __init__(self, spec: PolicySpec, torch_threads: int, max_batch: int) -> None:
        from policies.http.sessions import SessionBatcher

        workers.configure_torch(torch_threads, True)
        self.batcher = SessionBatcher(build_policy(spec, None, 0), max_batch=max_batch, max_wait_ms=5.0)

    def start(self, session_id: str, instruction: str) -> str | None:
        """Start the session's episode; the instruction a probe gave instead (None otherwise)."""
        return getattr(self.batcher.start(session_id, instruction), "given_instruction", None)

    def act(self, session_id: str, obs: dict[str, Any]) -> np.ndarray:
        return self.batcher.act(session_id, obs)

    def stats(self) -> dict[str, int]:
        return {"batches": self.batcher.batches, "steps": self.batcher.steps}


class ActorProxy:
    """The policy a chunk's checkpoint episode sees: one session of the checkpoint's actor."""

    name = "ray"

    def __init__(self, actor: Any) -> None:
        self.actor, self.session_id = actor, uuid.uuid4().hex
        self.given_instruction: str | None = None
        """What a probe spec's policy was given instead of the env's instruction (for the record)."""

    def reset(self, instruction: str) -> None:
        import ray

        self.given_instruction = ray.get(self.actor.start.remote(self.session_id, instruction))

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        import ray

        return ray.get(self.actor.act.remote(self.session_id, obs))

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name}


class _ChunkWorker(workers._Worker):
    """A Ray worker process's envs (one per cell, kept between chunks); checkpoints via the actor."""

    def __init__(self, config: RolloutConfig) -> None:
        super().__init__(config)
        self.actor: Any = None

    def policy_for(self, spec: PolicySpec, env: Any, seed: int) -> Any:
        if spec.kind == "checkpoint":
            return ActorProxy(self.actor)
        return super().policy_for(spec, env, seed)


_CHUNK_WORKER: _ChunkWorker | None = None


def _chunk_worker(config: RolloutConfig) -> _ChunkWorker:
    global _CHUNK_WORKER
    if _CHUNK_WORKER is None or _CHUNK_WORKER.config != config:
        if _CHUNK_WORKER is not None:
            _CHUNK_WORKER.close()
        workers.configure_torch(config.torch_threads, False)
        _CHUNK_WORKER = _ChunkWorker(config)
    return _CHUNK_WORKER


def run_chunk(
    config: RolloutConfig, tasks: list[EpisodeTask], actor: Any
) -> Iterator[tuple[Result, bytes | None]]:
    """Run a chunk's episodes; yields (record or HarnessError, the video's bytes or None) per episode."""
    worker = _chunk_worker(config)
    worker.actor = actor
    with tempfile.TemporaryDirectory(prefix="mvla-ray-") as tmp:
        for task in tasks:
            local = task
            if task.video:
                local = EpisodeTask(
                    task.spec, task.cell, task.index, task.seed, str(Path(tmp) / Path(task.video).name)
                )
            result = worker.run(local)
            video = None
            if isinstance(result, EpisodeRecord) and result.video:
                video = Path(result.video).read_bytes()
                Path(result.video).unlink()
            yield result, video


# ----------------------------------------------------------------------------------------------
# In this process


def chunks_of(plan: list[EpisodeTask], size: int = CHUNK_EPISODES) -> list[list[EpisodeTask]]:
    """The plan's tasks grouped by (policy, cell), ``size`` seeds a chunk; a lane's tasks form one chunk."""
    groups: dict[tuple[str, str], list[EpisodeTask]] = {}
    for task in plan:
        groups.setdefault((task.spec.id, task.cell.name if task.spec.lane is None else ""), []).append(task)
    out = []
    for tasks in groups.values():
        step = len(tasks) if tasks[0].spec.lane is not None else size
        out += [tasks[i : i + step] for i in range(0, len(tasks), step)]
    return out


class RayPool(WorkerPool):
    """Runs episode tasks as Ray tasks (envs) around Ray actors (models)."""

    def __init__(
        self,
        config: RolloutConfig,
        torch_needed: bool,
        max_tasks: int,
        warm_spec: PolicySpec | None = None,
    ) -> None:
        self.ray = require_ray()
        self.config, self.torch_needed = config, torch_needed
        self._pool = None
        self._started = False
        if not self.ray.is_initialized():
            self._init(config)
            self._started = True
        self.workers = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self._actors: dict[str, Any] = {}
        self._running: list[Any] = []

    def _init(self, config: RolloutConfig) -> None:
        path = os.pathsep.join(p for p in [*sys.path, os.environ.get("PYTHONPATH", "")] if p)
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": {"PYTHONPATH": path}}}
        if config.ray_address:
            kwargs = {"address": config.ray_address}
        else:
            kwargs.update(num_cpus=config.workers, include_dashboard=False)
        try:
            self.ray.init(logging_level=logging.WARNING, log_to_driver=False, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(
                f"cannot start or join Ray ({' '.join(str(exc).split())[:200]}); "
                "check --ray-address, or leave it out for a local Ray"
            ) from exc

    def _actor(self, spec: PolicySpec) -> Any:
        if spec.id not in self._actors:
            device = str(spec.options.get("device", "cpu"))
            actor = self.ray.remote(ModelActor).options(
                num_cpus=0,
                num_gpus=1 if device.startswith("cuda") else 0,
                max_concurrency=MODEL_ACTOR_CONCURRENCY,
            )
            self._actors[spec.id] = actor.remote(spec, self.config.torch_threads, max(1, self.workers))
        return self._actors[spec.id]

    def _submit(self, chunk: list[EpisodeTask]) -> Any:
        spec = chunk[0].spec
        actor = self._actor(spec) if spec.kind == "checkpoint" else None
        task = self.ray.remote(run_chunk).options(num_cpus=1, num_returns="streaming")
        return task.remote(self.config, chunk, actor)

    def _results(self, plan: list[EpisodeTask]) -> Iterator[Result]:
        videos = {(t.spec.id, t.cell.name, t.seed): t.video for t in plan}
        pending = deque(chunks_of(plan))
        left = Counter(t.spec.id for t in plan)
        capacity = 2 * self.workers
        streams: dict[Any, None] = {}
        while pending or streams:
            while pending and len(streams) < capacity:
                streams[self._submit(pending.popleft())] = None
            self._running = list(streams)
            ready, _ = self.ray.wait(list(streams), num_returns=1)
            for stream in ready:
                try:
                    result, video = self.ray.get(next(stream))
                except StopIteration:
                    streams.pop(stream)
                    continue
                except self.ray.exceptions.RayError as exc:
                    raise RuntimeError(
                        f"a Ray task failed ({' '.join(str(exc).split())[:200]}); finished episodes are saved, "
                        "rerun with the same --out to resume, or without --backend ray to see the error"
                    ) from exc
                left[result.policy_id] -= 1
                if left[result.policy_id] == 0 and result.policy_id in self._actors:
                    self.ray.kill(self._actors.pop(result.policy_id))
                yield self._gathered(result, video, videos)

    @staticmethod
    def _gathered(
        result: Result, video: bytes | None, videos: dict[tuple[str, str, int], str | None]
    ) -> Result:
        """The record with its video written into the run's video folder."""
        if not isinstance(result, EpisodeRecord) or video is None:
            return result
        planned = videos[rec.record_key(result.to_dict())]
        final = Path(planned).with_name(Path(result.video).name)
        final.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(final, video)
        result.video = str(final)
        return result

    def close(self) -> None:
        for stream in self._running:
            try:
                self.ray.cancel(stream, force=True)
            except Exception:  # noqa: BLE001 - finished or already gone
                pass
        for actor in self._actors.values():
            self.ray.kill(actor)
        self._actors, self._running = {}, []
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


__all__ = ["CHUNK_EPISODES", "ActorProxy", "ModelActor", "RayPool", "chunks_of", "require_ray", "run_chunk"]
