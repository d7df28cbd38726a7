"""Where episodes run: this process (one worker) or spawned worker processes.

Each worker builds its envs (one per cell) and its checkpoint policy once and reuses them.
Episodes of the same *lane* (one server URL without sessions: the server holds one episode's
history) run one at a time, in plan order; everything else runs in parallel (a server with
sessions included: one session per episode). Other runners reuse :class:`_Worker`
(:mod:`eval.runner.batched`, :mod:`eval.runner.ray_backend`). "spawn" workers inherit no state
(pybullet clients, torch threads), and a worker that dies is reported (BrokenProcessPool)
instead of hanging the run.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from eval.config import Cell, RolloutConfig
from eval.results.records import EpisodeRecord
from eval.runner.episode import EpisodeTask, HarnessError, run_episode
from eval.runner.policy_factory import PolicySpec, build_policy, import_target
from policies.base import Policy
from policies.messages import one_line

if TYPE_CHECKING:
    import gymnasium as gym

logger = logging.getLogger("eval.rollout")

Result = EpisodeRecord | HarnessError

_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def make_env(cell: Cell, config: RolloutConfig) -> gym.Env:
    """Build the env of one cell with the run's scene settings (``render_mode="rgb_array"``).

    The one place where eval builds an env (workers and the main process's checks): through the
    simulator's env factory, ``mvla_sim.make_env``, or the config's own ``env_factory``.
    """
    if config.env_factory:
        return import_target(config.env_factory)(cell=cell, config=config)
    from mvla_sim.make import SceneDescription
    from mvla_sim.make import make_env as make_scene_env

    scene = SceneDescription(
        side=cell.side, lighting=cell.lighting, obstacle_distance=cell.distance, **config.scene.to_dict()
    )
    return make_scene_env(scene, render_mode="rgb_array")


def passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning; effective only before torch is imported.

    A process that computes and then waits for others (the batched runner's model between steps)
    otherwise keeps its torch threads spinning on the cores the envs need: measured 10x slower
    with ``--batch 1 --torch-threads 2`` on 2 cores (59 s instead of 5.8 s).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_torch(threads: int, needed: bool) -> None:
    """Fix torch's intra-op threads (results must not depend on them).

    In a fresh worker the OpenMP/BLAS thread counts are set through the environment before torch
    is imported: ``torch.set_num_threads`` alone leaves OpenMP pools that make parallel workers
    fight over the cores (measured: 2 workers at 126 ms per act() each instead of 70 ms).
    """
    if "torch" not in sys.modules:
        for var in _THREAD_ENV_VARS:
            os.environ[var] = str(threads)
        passive_openmp()
    if not needed:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


@contextmanager
def torch_threads(threads: int, needed: bool) -> Iterator[None]:
    """:func:`configure_torch` in this process for a while; torch's thread count is restored after."""
    previous = None
    if needed:
        import torch

        previous = torch.get_num_threads()
    configure_torch(threads, needed)
    try:
        yield
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


# ----------------------------------------------------------------------------------------------
# Worker state: one per process


class _Worker:
    """A worker's envs (one per cell) and its current checkpoint policy, reused across episodes."""

    def __init__(self, config: RolloutConfig) -> None:
        self.config = config
        self.envs: dict[str, gym.Env] = {}
        self.policy_key: tuple[str, str | None] | None = None
        self.policy: Policy | None = None

    def env(self, cell: Cell) -> gym.Env:
        if cell.name not in self.envs:
            self.envs[cell.name] = make_env(cell, self.config)
        return self.envs[cell.name]

    def policy_for(self, spec: PolicySpec, env: gym.Env | None, seed: int) -> Policy:
        if spec.kind != "checkpoint":
            return build_policy(spec, env, seed)  # cheap, and bound to this env and seed
        key = (spec.id, spec.path)
        if self.policy_key != key:
            self.policy = None
            self.policy = build_policy(spec, env, seed)
            self.policy_key = key
        return self.policy

    def run(self, task: EpisodeTask) -> Result:
        try:
            env = self.env(task.cell)
            policy = self.policy_for(task.spec, env, task.seed)
            try:
                return run_episode(
                    env,
                    policy,
                    task.spec,
                    task.cell,
                    task.index,
                    task.seed,
                    Path(task.video) if task.video else None,
                )
            finally:
                if task.spec.kind != "checkpoint" and hasattr(policy, "close"):
                    policy.close()
        except Exception as exc:  # noqa: BLE001 - an env/harness error must not kill the pool
            logger.debug("episode failed", exc_info=True)
            return HarnessError(task.spec.id, task.cell.name, task.seed, one_line(exc))

    def close(self) -> None:
        for env in self.envs.values():
            try:
                env.close()
            except Exception:  # noqa: BLE001
                pass
        self.envs.clear()
        self.policy = None


_WORKER: _Worker | None = None


def _worker_init(config: RolloutConfig, torch_needed: bool, warm_spec: PolicySpec | None = None) -> None:
    global _WORKER
    _WORKER = _Worker(config)
    configure_torch(config.torch_threads, torch_needed)
    if mp.current_process().name != "MainProcess":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    logging.basicConfig(level=logging.WARNING)
    if warm_spec is not None:
        try:  # load the first checkpoint ahead of its episodes; a failure shows up in those episodes
            _WORKER.policy_for(warm_spec, None, 0)
        except Exception:  # noqa: BLE001
            _WORKER.policy_key, _WORKER.policy = None, None


def _run_task(task: EpisodeTask) -> Result:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(task)


def _worker_close() -> None:
    global _WORKER
    if _WORKER is not None:
        _WORKER.close()
    _WORKER = None


def _noop() -> None:
    """A task that only makes the pool start a worker process (and run its initializer)."""


# ----------------------------------------------------------------------------------------------
# The pool


class WorkerPool:
    """Runs episode tasks in this process (one worker) or in spawned worker processes.

    Started early, the workers import the simulator and load the first checkpoint while the main
    process still checks the checkpoints, so the two start-ups overlap.
    """

    def __init__(
        self,
        config: RolloutConfig,
        torch_needed: bool,
        max_tasks: int,
        warm_spec: PolicySpec | None = None,
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

    def run(self, plan: list[EpisodeTask], progress: bool = True) -> Iterator[Result]:
        """Run episode tasks; yields records (or :class:`HarnessError`) in completion order.

        Closing the iterator early cancels the episodes not yet started.
        """
        from tqdm import tqdm

        if not plan:
            return
        bar = tqdm(total=len(plan), desc="episodes", unit="ep", disable=not progress, dynamic_ncols=True)
        successes = 0
        try:
            for result in self._results(plan):
                successes += int(isinstance(result, EpisodeRecord) and result.success)
                bar.update(1)
                bar.set_postfix(success=f"{successes}/{bar.n}")
                yield result
        finally:
            bar.close()

    def _results(self, plan: list[EpisodeTask]) -> Iterable[Result]:
        if self._pool is None:
            _worker_init(self.config, self.torch_needed)
            try:
                for task in plan:
                    yield _run_task(task)
            finally:
                _worker_close()
            return
        lanes: dict[str, deque[EpisodeTask]] = {}
        free: deque[EpisodeTask] = deque()
        for task in plan:
            if task.spec.lane is None:
                free.append(task)
            else:
                lanes.setdefault(task.spec.lane, deque()).append(task)
        capacity = 2 * self.workers  # tasks in flight: enough to keep every worker busy
        running: dict[Future, str | None] = {}

        def fill() -> None:
            busy = set(running.values())
            for lane, queue in lanes.items():  # one task per lane at a time
                if queue and lane not in busy and len(running) < capacity:
                    running[self._pool.submit(_run_task, queue.popleft())] = lane
            while free and len(running) < capacity:
                running[self._pool.submit(_run_task, free.popleft())] = None

        try:
            fill()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                fill()
                for future in done:
                    yield future.result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "a worker process died (out of memory, or a crash in the simulator); finished episodes are "
                "saved, rerun with the same --out to resume, or with --workers 1 to see the error"
            ) from exc
        finally:
            for future in running:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def execute_tasks(
    plan: list[EpisodeTask], config: RolloutConfig, torch_needed: bool, progress: bool = True
) -> Iterator[Result]:
    """Run episode tasks in a fresh :class:`WorkerPool`; yields results in completion order."""
    with WorkerPool(config, torch_needed, len(plan)) as pool:
        yield from pool.run(plan, progress)


__all__ = [
    "Result",
    "WorkerPool",
    "configure_torch",
    "execute_tasks",
    "make_env",
    "passive_openmp",
    "torch_threads",
]
