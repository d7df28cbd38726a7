"""A run's episodes into ``episodes.jsonl``: planned, run by any runner, appended as they finish.

:func:`record_episodes` plans the episodes not yet in the log (a rerun resumes), hands them to a
runner (the worker pool today; a batched or distributed runner yields the same results), appends
each record as it arrives and leaves the log sorted. Server faults are held back per URL
(:class:`FaultStreaks`): a fault followed by a normal episode of the same server is a measured
failure; ``max_server_faults`` in a row stop the run without recording the streak.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.config import RolloutConfig
from eval.probes import probe_id
from eval.results import records as rec
from eval.results.records import EpisodeRecord
from eval.runner.episode import HarnessError, is_server_fault
from eval.runner.plan import plan_episodes
from eval.runner.policy_factory import PolicySpec
from eval.runner.workers import Result, WorkerPool

logger = logging.getLogger("eval.rollout")


class RolloutInterrupted(Exception):
    """Ctrl-C during a rollout; finished episodes are already on disk."""


class FaultStreaks:
    """Server-fault episodes per URL, held back until the URL answers again.

    A fault episode followed by a normal one of the same server is a measured failure and is
    recorded. ``limit`` faults in a row mean the server is down: the run stops and those
    episodes are not recorded, so a rerun runs them again.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: dict[str, list[EpisodeRecord]] = {}

    def add(self, record: EpisodeRecord) -> tuple[list[EpisodeRecord], str | None]:
        """(records to write now, a stop message or None)."""
        if record.url is None:
            return [record], None
        if not is_server_fault(record):
            return [*self.pending.pop(record.url, []), record], None
        streak = self.pending.setdefault(record.url, [])
        streak.append(record)
        if len(streak) >= self.limit:
            return [], (
                f"server {record.url} failed {len(streak)} episodes in a row "
                f"(last: {record.failure_reason}); the run stopped"
            )
        return [], None

    def flush(self) -> list[EpisodeRecord]:
        out = [r for streak in self.pending.values() for r in streak]
        self.pending.clear()
        return out


@dataclass
class RunOutcome:
    """What running the planned episodes left: the records kept, errors, and why the run stopped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[HarnessError] = field(default_factory=list)
    stopped: str | None = None


def record_episodes(
    pool: WorkerPool,
    specs: list[PolicySpec],
    order: list[str],
    config: RolloutConfig,
    progress: bool,
) -> RunOutcome:
    """Run every planned episode of ``specs`` not yet in ``episodes.jsonl``; the records of the plan.

    The log ends sorted in ``order`` of policy ids, then the instruction probes' ids in that order.

    Raises:
        RolloutInterrupted: on Ctrl-C (finished episodes are saved).
    """
    out, outcome = config.out, RunOutcome()
    video_root, streaks = _video_root(config), FaultStreaks(config.max_server_faults)
    log = rec.EpisodeLog(out / "episodes.jsonl")
    try:
        plan, planned = plan_episodes(specs, config, log.done, video_root)
        if len(planned) > len(plan):
            logger.info(
                "resuming %s: %d of %d episodes already done", out, len(planned) - len(plan), len(planned)
            )
        logger.info(
            "%d policies (+%d probes each) x %d cells x %d episodes = %d episodes to run (%d workers)",
            len(specs), len(config.probes), len(config.cells), config.episodes, len(plan),
            pool.workers,
        )  # fmt: skip
        _collect(pool.run(plan, progress), log, outcome, streaks)
        log.rewrite_sorted([*order, *(probe_id(pid, probe) for pid in order for probe in config.probes)])
    except KeyboardInterrupt as exc:
        raise RolloutInterrupted(
            f"interrupted; {len(log.records)} finished episodes are saved in {out / 'episodes.jsonl'}; "
            f"rerun the same command with --out {out} to resume"
        ) from exc
    finally:
        log.close()
    outcome.records = [r for r in log.records if rec.record_key(r) in planned]
    if outcome.stopped:
        outcome.stopped += (
            f"; {len(log.records)} finished episodes are saved in {out / 'episodes.jsonl'}, the failed ones were "
            f"not recorded; fix the server and rerun the same command with --out {out} to resume"
        )
    return outcome


def _collect(
    results: Iterator[Result], log: rec.EpisodeLog, outcome: RunOutcome, streaks: FaultStreaks
) -> None:
    """Append finished episodes to the log; hold back server faults; stop at a streak of them."""
    try:
        for result in results:
            if isinstance(result, HarnessError):
                outcome.errors.append(result)
                logger.error("%s %s seed %s: %s", result.policy_id, result.cell, result.seed, result.error)
                continue
            ready, outcome.stopped = streaks.add(result)
            for record in ready:
                log.append(record)
            if outcome.stopped:
                return
    finally:
        results.close()  # cancels the episodes not started yet
    for record in streaks.flush():
        log.append(record)


def _video_root(config: RolloutConfig) -> Path:
    """``videos_dir/<results folder name>/``, without the videos of episodes a killed run left unfinished."""
    video_root = config.videos_dir / config.out.resolve().name
    for stale in video_root.glob("*__running.mp4") if video_root.is_dir() else []:
        stale.unlink(missing_ok=True)
    return video_root


__all__ = ["FaultStreaks", "RolloutInterrupted", "RunOutcome", "record_episodes"]
