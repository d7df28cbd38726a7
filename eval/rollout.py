"""Closed-loop evaluation: ``python -m eval.rollout --ckpt top3``.

Rolls out checkpoints (under one or more VLA profiles), baselines and policies served over HTTP
on one fixed, seeded list of episodes over the scene grid (side x lighting x obstacle distance),
in parallel worker processes, and writes:

- ``<out>/episodes.jsonl``  one record per episode, appended as episodes finish (resumable);
- ``<out>/summary.json``    success rates with Wilson 95 % intervals, SPL, collisions, side
  errors, latency, rank agreement val_loss vs success, paired tests, profiles side by side,
  the recommendation;
- ``<out>/report.md``, ``<out>/report.html`` and ``<out>/plots/*.png`` built from summary.json;
- ``videos/<run>/<policy>__<scene>__seed<seed>__<outcome>.mp4``.

Each episode is a pure function of (policy spec, scene cell, seed): results do not depend on
the number of workers or on the order in which episodes finish.

This module orchestrates; the jobs live in their own modules: the typed config (:mod:`eval.config`)
and the command line that builds it (:mod:`eval.rollout_cli`), the plan of policies and seeded
episodes (:mod:`eval.runner.plan`), the checks before any episode (:mod:`eval.runner.preflight`),
policy specs and the factory (:mod:`eval.runner.policy_factory`), the episode runner
(:mod:`eval.runner.episode`), the worker pool (:mod:`eval.runner.workers`), provenance and resume
(:mod:`eval.runner.provenance`), records, summary and report (:mod:`eval.results`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.config import RolloutConfig, UsageError
from eval.results import records as rec
from eval.results.records import EpisodeRecord
from eval.rollout_cli import build_parser, config_from_args
from eval.runner.episode import HarnessError, is_server_fault
from eval.runner.plan import plan_episodes, plan_specs
from eval.runner.policy_factory import PolicySpec
from eval.runner.preflight import PolicyEntry, check_scene, check_servers, probe_policies
from eval.runner.provenance import check_resume, environment_info
from eval.runner.workers import Result, WorkerPool, torch_threads
from eval.select import Selection, SelectionError

logger = logging.getLogger("eval.rollout")


class RolloutInterrupted(Exception):
    """Ctrl-C during a rollout; finished episodes are already on disk."""


class RolloutStopped(Exception):
    """A server failed too many episodes in a row; finished episodes and the summary are on disk."""


class _FaultStreaks:
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
class _Outcome:
    """What running the planned episodes left: the records kept, errors, and why the run stopped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[HarnessError] = field(default_factory=list)
    stopped: str | None = None


def run_rollout(config: RolloutConfig, *, progress: bool = True) -> Path:
    """Run (or resume) an evaluation; returns the results folder holding summary.json.

    Raises:
        SelectionError, UsageError: bad input, scene settings the env refuses, or a server failing
            its pre-flight check (one line); nothing is written then.
        RolloutInterrupted: on Ctrl-C (finished episodes are saved; rerun with the same --out).
        RolloutStopped: a server failed ``config.max_server_faults`` episodes in a row (finished
            episodes and summary.json are saved; rerun with the same --out to resume).
    """
    specs, selection = plan_specs(config)
    entries = [PolicyEntry(spec) for spec in specs]
    torch_needed = any(s.kind == "checkpoint" for s in specs)
    with ExitStack() as stack:
        env = stack.enter_context(closing(check_scene(config)))  # the env's own rules judge the scene
        check_servers(entries)  # before anything is written or started
        video_root = _open_results(config)
        stack.enter_context(torch_threads(config.torch_threads, torch_needed))
        warm = next((s for s in specs if s.kind == "checkpoint"), None)
        max_tasks = len(specs) * len(config.cells) * config.episodes
        pool = stack.enter_context(WorkerPool(config, torch_needed, max_tasks, warm))  # workers start up now
        ok = probe_policies(entries, env, config.seed)  # ... while the main process checks the policies
        order = [e.spec.id for e in entries]
        outcome = _run_episodes(pool, [e.spec for e in ok], order, config, video_root, progress)
    _write_results(config, entries, selection, outcome)
    if outcome.stopped:
        raise RolloutStopped(outcome.stopped)
    return config.out


def _open_results(config: RolloutConfig) -> Path:
    """Make the results folder, refuse one made with other episode settings; the run's video folder."""
    config.out.mkdir(parents=True, exist_ok=True)
    check_resume(config.out, config)
    video_root = config.videos_dir / config.out.resolve().name
    for stale in video_root.glob("*__running.mp4") if video_root.is_dir() else []:
        stale.unlink(missing_ok=True)
    return video_root


def _run_episodes(
    pool: WorkerPool,
    specs: list[PolicySpec],
    order: list[str],
    config: RolloutConfig,
    video_root: Path,
    progress: bool,
) -> _Outcome:
    """Run every planned episode not yet in ``episodes.jsonl``; the log ends sorted in ``order`` of policies."""
    out, outcome = config.out, _Outcome()
    log = rec.EpisodeLog(out / "episodes.jsonl")
    try:
        plan, planned = plan_episodes(specs, config, log.done, video_root)
        if len(planned) > len(plan):
            logger.info(
                "resuming %s: %d of %d episodes already done", out, len(planned) - len(plan), len(planned)
            )
        logger.info(
            "%d policies x %d cells x %d episodes = %d episodes to run (%d workers)",
            len(specs), len(config.cells), config.episodes, len(plan), min(config.workers, max(1, len(plan))),
        )  # fmt: skip
        _collect(pool.run(plan, progress), log, outcome, _FaultStreaks(config.max_server_faults))
        log.rewrite_sorted(order)
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
    results: Iterator[Result], log: rec.EpisodeLog, outcome: _Outcome, streaks: _FaultStreaks
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


def _write_results(
    config: RolloutConfig, entries: list[PolicyEntry], selection: Selection | None, outcome: _Outcome
) -> None:
    """summary.json from the records, then the report built from it."""
    from eval.results.report import build_report
    from eval.results.summary import build_summary

    summary = build_summary(
        records=outcome.records,
        entries=[e.to_dict() for e in entries],
        cells=[c.name for c in config.cells],
        config=config.to_dict(),
        selection=selection.to_dict() if selection is not None else None,
        environment=environment_info(),
        errors=[
            {"policy_id": e.policy_id, "cell": e.cell, "seed": e.seed, "error": e.error}
            for e in outcome.errors
        ],
        stopped=outcome.stopped,
    )
    rec.write_json_atomic(config.out / "summary.json", summary)
    build_report(config.out)
    if outcome.errors:
        logger.error(
            "%d episodes hit env/harness errors and were not recorded; rerun with --out %s",
            len(outcome.errors),
            config.out,
        )


# ----------------------------------------------------------------------------------------------
# Command line (the parser and the config it builds are in eval.rollout_cli)


def _dry_run(config: RolloutConfig) -> None:
    specs, selection = plan_specs(config)
    if selection is not None:
        print(f"run folder: {selection.run_dir}")
        for note in selection.notes:
            print(f"note: {note}")
    for spec in specs:
        extra = ""
        if spec.kind == "checkpoint":
            extra = f" {spec.profile} val_loss={spec.val_loss} ({spec.val_loss_source}) {spec.path}"
        elif spec.kind == "http":
            extra = f" {spec.url}"
        print(f"{spec.id:<24} {spec.kind:<11} {spec.role or '':<8}{extra}")
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
    except (RolloutStopped, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from eval.results.summary import format_table

    summary = json.loads((out / "summary.json").read_text())
    print(format_table(summary))
    print(f"\nresults: {out}/summary.json  report: {out}/report.html")
    return 1 if summary.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
