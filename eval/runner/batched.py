"""``eval.rollout --batch N``: N envs in lock-step around one model, one forward per step for all.

N *slot* processes each run episodes with the one-episode runner
(:func:`eval.runner.episode.run_episode`: the same judging, timing, video and records); a
checkpoint's episodes get a proxy policy that sends each observation to this process, which
waits until every slot running a checkpoint episode has sent one and then answers them all with
one :meth:`policies.base.BatchPolicy.act_batch` per checkpoint (:class:`policies.vla.policy.VLAPolicy`:
one backbone forward for the N frames). A slot whose episode ends takes the next seed of the plan
at once, so the batch stays full until the plan runs out. Baselines, factories and servers run
inside their slot as in a worker (one task per server lane at a time).

Every episode is the unbatched run's: the env is reset with the episode's seed in its slot
(no autoreset), and the model's per-episode state makes its actions those of a policy running
that episode alone (bit for bit on CPU). Only the timing fields differ: an ``act()`` latency is
the wait for the batch. Ctrl-C: slots ignore SIGINT; this process stops them, the finished
episodes are already on disk and a rerun with the same ``--out`` resumes.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from eval.config import RolloutConfig
from eval.runner import workers
from eval.runner.episode import EpisodeTask, HarnessError
from eval.runner.policy_factory import PolicySpec, build_policy
from eval.runner.workers import Result, WorkerPool
from policies.messages import one_line

logger = logging.getLogger("eval.rollout")

SLOT_JOIN_TIMEOUT_S = 10.0


# ----------------------------------------------------------------------------------------------
# In a slot process


class BatcherProxy:
    """The policy a slot's checkpoint episode sees: each call is answered by the main process."""

    name = "batched"

    def __init__(self, conn: Connection, seed: int) -> None:
        self.conn, self.seed = conn, seed
        self.given_instruction: str | None = None
        """What a probe spec's policy was given instead of the env's instruction (for the record)."""

    def _ask(self, kind: str, payload: Any) -> Any:
        self.conn.send((kind, payload))
        status, value = self.conn.recv()
        if status == "error":
            raise value  # the exception act_batch or start_episode raised, as an unbatched policy would
        return value

    def reset(self, instruction: str) -> None:
        self.given_instruction = self._ask("start", (instruction, self.seed))

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return self._ask("act", obs)

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name}


class _SlotWorker(workers._Worker):
    """A worker whose checkpoint policies are :class:`BatcherProxy` objects."""

    def __init__(self, config: RolloutConfig, conn: Connection) -> None:
        super().__init__(config)
        self.conn = conn

    def policy_for(self, spec: PolicySpec, env: Any, seed: int) -> Any:
        if spec.kind == "checkpoint":
            return BatcherProxy(self.conn, seed)
        return super().policy_for(spec, env, seed)


def _slot_main(conn: Connection, config: RolloutConfig) -> None:
    workers._worker_init(config, torch_needed=False)  # SIGINT ignored, threads fixed, logging
    slot = _SlotWorker(config, conn)
    try:
        while True:
            message = conn.recv()
            if message[0] == "close":
                return
            conn.send(("done", slot.run(message[1])))
    except (EOFError, BrokenPipeError):  # the main process went away
        return
    finally:
        slot.close()


# ----------------------------------------------------------------------------------------------
# In the main process


@dataclass(eq=False)
class _Slot:
    process: Any
    conn: Connection
    task: EpisodeTask | None = None
    episode: Any = None
    pending: dict[str, Any] | None = None

    @property
    def batched(self) -> bool:
        """Running a checkpoint episode: its steps are answered in lock-step with the others."""
        return self.task is not None and self.task.spec.kind == "checkpoint"


class _Models:
    """One :class:`policies.base.BatchPolicy` per checkpoint spec, loaded on its first episode and
    dropped after its last."""

    def __init__(self, plan: list[EpisodeTask]) -> None:
        self.left = Counter(t.spec.id for t in plan)
        self.loaded: dict[str, Any] = {}
        self.failed: dict[str, Exception] = {}

    def get(self, spec: PolicySpec) -> Any:
        """The spec's policy, loaded once (a load that failed fails again without retrying)."""
        if spec.id in self.failed:
            raise self.failed[spec.id]
        if spec.id not in self.loaded:
            try:
                self.loaded[spec.id] = build_policy(spec, None, 0)
            except Exception as exc:
                self.failed[spec.id] = exc
                raise
        return self.loaded[spec.id]

    def finished(self, spec: PolicySpec) -> None:
        self.left[spec.id] -= 1
        if self.left[spec.id] <= 0:
            self.loaded.pop(spec.id, None)


def _next_task(queue: deque[EpisodeTask], slots: list[_Slot]) -> EpisodeTask | None:
    """The first task of the plan whose server lane (if any) has no episode running."""
    busy = {s.task.spec.lane for s in slots if s.task is not None and s.task.spec.lane is not None}
    for i, task in enumerate(queue):
        if task.spec.lane is None or task.spec.lane not in busy:
            del queue[i]
            return task
    return None


class BatchedPool(WorkerPool):
    """Runs episode tasks in ``config.batch`` slot processes around this process's models."""

    def __init__(
        self,
        config: RolloutConfig,
        torch_needed: bool,
        max_tasks: int,
        warm_spec: PolicySpec | None = None,
    ) -> None:
        self.config, self.torch_needed = config, torch_needed
        self.workers = max(1, min(config.batch, max_tasks))
        if config.torch_threads > 1 and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            logger.warning(
                "--torch-threads %d: idle torch threads spin on the cores the envs need between steps; "
                "set OMP_WAIT_POLICY=PASSIVE before torch is imported (eval.rollout's command line does)",
                config.torch_threads,
            )
        self._pool = None
        context = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        for i in range(self.workers):
            here, there = context.Pipe()
            process = context.Process(
                target=_slot_main, args=(there, config), name=f"eval-slot-{i}", daemon=True
            )
            process.start()
            there.close()
            self._slots.append(_Slot(process, here))

    def _results(self, plan: list[EpisodeTask]) -> Iterator[Result]:
        queue, models = deque(plan), _Models(plan)
        yield from self._assign(queue, models)
        while any(s.task is not None for s in self._slots):
            busy = {s.conn: s for s in self._slots if s.task is not None}
            for conn in wait(list(busy)):
                result = self._handle(busy[conn], models)
                if result is not None:
                    yield result
                    yield from self._assign(queue, models)
            self._step(models)

    def _assign(self, queue: deque[EpisodeTask], models: _Models) -> Iterator[Result]:
        """Give every idle slot the next task; a checkpoint that cannot load fails its task here,
        as in a worker (a :class:`HarnessError`, not recorded)."""
        for slot in self._slots:
            while slot.task is None:
                task = _next_task(queue, self._slots)
                if task is None:
                    return
                if task.spec.kind == "checkpoint":
                    try:
                        models.get(task.spec)
                    except Exception as exc:  # noqa: BLE001 - CheckpointError and anything else
                        models.finished(task.spec)
                        yield HarnessError(task.spec.id, task.cell.name, task.seed, one_line(exc))
                        continue
                slot.task = task
                slot.conn.send(("task", task))

    def _handle(self, slot: _Slot, models: _Models) -> Result | None:
        """One message of a slot: an episode starts, a step waits for its action, or a result."""
        try:
            kind, payload = slot.conn.recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError(
                "a slot process died (out of memory, or a crash in the simulator); finished episodes are "
                "saved, rerun with the same --out to resume, or without --batch to see the error"
            ) from exc
        if kind == "act":
            slot.pending = payload
        elif kind == "start":
            instruction, seed = payload
            try:
                slot.episode = models.get(slot.task.spec).start_episode(instruction, seed=seed)
                slot.conn.send(("ok", getattr(slot.episode, "given_instruction", None)))
            except Exception as exc:  # noqa: BLE001 - the episode fails as an unbatched one would
                slot.conn.send(("error", exc))
        else:  # "done"
            if slot.batched:
                models.finished(slot.task.spec)
            slot.task = slot.episode = slot.pending = None
            return payload
        return None

    def _step(self, models: _Models) -> None:
        """When every checkpoint episode waits for its action: one act_batch per checkpoint."""
        batched = [s for s in self._slots if s.batched]
        if not batched or any(s.pending is None for s in batched):
            return
        groups: dict[str, list[_Slot]] = {}
        for slot in batched:
            groups.setdefault(slot.task.spec.id, []).append(slot)
        for group in groups.values():
            try:
                policy = models.get(group[0].task.spec)
                actions = policy.act_batch([s.episode for s in group], [s.pending for s in group])
                replies = [("ok", action) for action in actions]
            except Exception as exc:  # noqa: BLE001
                replies = [("error", exc)] * len(group)
            for slot, reply in zip(group, replies, strict=True):
                slot.pending = None
                slot.conn.send(reply)

    def close(self) -> None:
        for slot in self._slots:
            if slot.task is None and slot.process.is_alive():
                try:
                    slot.conn.send(("close",))
                except (BrokenPipeError, OSError):
                    pass
            else:
                slot.process.terminate()  # mid-episode (interrupted): its episode is not recorded
        for slot in self._slots:
            slot.process.join(timeout=SLOT_JOIN_TIMEOUT_S)
            if slot.process.is_alive():
                slot.process.terminate()
                slot.process.join()
            slot.conn.close()
        self._slots = []


__all__ = ["BatchedPool", "BatcherProxy"]
