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

This module orchestrates; the jobs live in their own modules: the config and its command line
(:mod:`eval.config`), policy specs and the factory (:mod:`eval.runner.policy_factory`), the episode
runner (:mod:`eval.runner.episode`), the worker pool (:mod:`eval.runner.workers`), provenance and resume
(:mod:`eval.runner.provenance`), records (:mod:`eval.results.records`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import sys
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.config import (
    HTTP_OPTION_NAMES,
    RolloutConfig,
    UsageError,
    build_parser,
    config_from_args,
    episode_seed,
)
from eval.results import records as rec
from eval.results.records import EpisodeRecord
from eval.results.video import video_name
from eval.runner.backends import make_pool
from eval.runner.episode import EpisodeTask, HarnessError, is_server_fault
from eval.runner.policy_factory import PolicySpec, build_policy, checkpoint_specs, other_spec
from eval.runner.provenance import check_resume, environment_info
from eval.runner.workers import configure_torch, make_env, passive_openmp
from eval.select import SelectionError, resolve_checkpoints
from policies.messages import one_line

logger = logging.getLogger("eval.rollout")


class RolloutInterrupted(Exception):
    """Ctrl-C during a rollout; finished episodes are already on disk."""


class RolloutStopped(Exception):
    """A server failed too many episodes in a row; finished episodes and the summary are on disk."""


@dataclass
class PolicyEntry:
    """A policy of this evaluation: its spec and what loading (or checking) it reported."""

    spec: PolicySpec
    status: str = "ok"
    reason: str | None = None
    settings: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "status": self.status,
            "reason": self.reason,
            "settings": self.settings,
        }


def plan_specs(config: RolloutConfig) -> tuple[list[PolicySpec], Any]:
    """The policies to evaluate: each selected checkpoint under each profile, then the others.

    Returns (specs, selection); selection is None without checkpoints.
    """
    specs: list[PolicySpec] = []
    selection = None
    if config.ckpt:
        selection = resolve_checkpoints(config.ckpt, config.runs, runs_explicit=config.runs_explicit)
        for choice in selection.choices:
            specs += checkpoint_specs(choice, config.profiles, config.checkpoint_options())
    for name in config.baselines:
        spec = other_spec(name, config.http_options())
        if spec.id in {s.id for s in specs}:
            raise UsageError(f"policy id {spec.id!r} appears twice; list each policy once")
        specs.append(spec)
    if not specs:
        raise UsageError("nothing to evaluate: give --ckpt (e.g. top3), --policy NAME or --baselines NAMES")
    if not any(s.kind == "checkpoint" for s in specs):
        unused = sorted(set(config.checkpoint_options()))
        if unused:
            raise UsageError(
                f"--policy-option {','.join(unused)}: not a server option and no checkpoint is evaluated; "
                f"server options are {', '.join(HTTP_OPTION_NAMES)}"
            )
    return specs, selection


def plan_episodes(
    specs: list[PolicySpec],
    config: RolloutConfig,
    done: Container[tuple[str, str, int]],
    video_root: Path,
) -> tuple[list[EpisodeTask], set[tuple[str, str, int]]]:
    """The episode tasks still to run, and the keys of every planned episode (done or not).

    Every policy gets the same (cell, seed) list; the first ``config.videos`` episodes of each
    cell are recorded.
    """
    tasks: list[EpisodeTask] = []
    planned: set[tuple[str, str, int]] = set()
    for spec in specs:
        for cell in config.cells:
            for index in range(config.episodes):
                seed = episode_seed(config.seed, cell.name, index)
                key = (spec.id, cell.name, seed)
                planned.add(key)
                if key in done:
                    continue
                video = None
                if index < config.videos:
                    video = str(video_root / video_name(spec.id, cell.name, seed, "pending"))
                tasks.append(EpisodeTask(spec, cell, index, seed, video))
    return tasks, planned


def check_servers(entries: list[PolicyEntry]) -> None:
    """Pre-flight every server URL (``/health``, then an authenticated ``/reset``), nothing started.

    Raises:
        UsageError: the first server that fails (one line: unreachable, model not loaded, wrong key).
    """
    from policies.http.client import PreflightError, supports_sessions

    for entry in entries:
        if entry.spec.kind != "http":
            continue
        try:
            policy = build_policy(entry.spec, None, 0)
        except ValueError as exc:
            raise UsageError(f"{entry.spec.id}: {exc}") from exc
        try:
            policy.check()
            if "sessions" not in entry.spec.options and supports_sessions(policy.health):
                entry.spec = dataclasses.replace(entry.spec, options={**entry.spec.options, "sessions": True})
                policy.sessions = True  # episodes in parallel, one session each
            entry.settings = rec.to_jsonable(policy.settings())
        except PreflightError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            policy.close()
        logger.info("server %s: %s", entry.spec.id, json.dumps(policy.health))


def _probe(entry: PolicyEntry, config: RolloutConfig, env: Callable[[], Any]) -> None:
    """Build a policy once in the main process: catches broken checkpoints, reads settings()."""
    spec = entry.spec
    try:
        policy = build_policy(spec, env() if spec.kind in ("baseline", "factory") else None, config.seed)
    except Exception as exc:  # noqa: BLE001 - CheckpointError and anything else: report it
        entry.status, entry.reason = "load_failed", one_line(exc)
        logger.error("%s: could not load %s: %s", spec.id, spec.path or "", entry.reason)
        return
    try:
        entry.settings = rec.to_jsonable(policy.settings())
    except Exception as exc:  # noqa: BLE001
        entry.settings = {"error": f"settings() raised {one_line(exc)}"}


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


def run_rollout(config: RolloutConfig, *, progress: bool = True) -> Path:
    """Run (or resume) an evaluation; returns the results folder holding summary.json.

    Raises:
        SelectionError, UsageError: bad input, or a server failing its pre-flight check (one line).
        RolloutInterrupted: on Ctrl-C (finished episodes are saved; rerun with the same --out).
        RolloutStopped: a server failed ``config.max_server_faults`` episodes in a row (finished
            episodes and summary.json are saved; rerun with the same --out to resume).
    """
    from eval.results.report import build_report
    from eval.results.summary import build_summary

    specs, selection = plan_specs(config)
    entries = [PolicyEntry(spec) for spec in specs]
    check_servers(entries)  # before anything is written or started
    out = config.out or Path("results") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    config.out = out
    out.mkdir(parents=True, exist_ok=True)
    check_resume(out, config)
    video_root = config.videos_dir / out.resolve().name
    for stale in video_root.glob("*__running.mp4") if video_root.is_dir() else []:
        stale.unlink(missing_ok=True)

    cells = config.cells
    probe_env: dict[str, Any] = {}

    def first_env() -> Any:
        if "env" not in probe_env:
            probe_env["env"] = make_env(cells[0], config)
        return probe_env["env"]

    torch_needed = any(s.kind == "checkpoint" for s in specs)
    previous_threads = None
    if torch_needed:
        import torch

        previous_threads = torch.get_num_threads()
    configure_torch(config.torch_threads, torch_needed)

    max_tasks = len(specs) * len(cells) * config.episodes
    warm = next((s for s in specs if s.kind == "checkpoint"), None)
    pool = make_pool(config, torch_needed, max_tasks, warm)  # workers start up during the checks below
    try:
        for entry in entries:
            if entry.spec.kind != "http":
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
            f"could not load {failed.spec.path or failed.spec.id}: {failed.reason}; "
            f"pass another checkpoint (--ckpt PATH) or retrain"
            if len(entries) == 1
            else f"none of the {len(entries)} policies could be loaded ({failed.reason}); see the log above"
        )

    log = rec.EpisodeLog(out / "episodes.jsonl")
    errors: list[HarnessError] = []
    streaks = _FaultStreaks(config.max_server_faults)
    stopped: str | None = None
    try:
        plan, planned_keys = plan_episodes([e.spec for e in ok], config, log.done, video_root)
        done_before = len(planned_keys) - len(plan)
        if done_before:
            logger.info("resuming %s: %d of %d episodes already done", out, done_before, len(planned_keys))
        logger.info(
            "%d policies x %d cells x %d episodes = %d episodes to run (%d workers)",
            len(ok), len(cells), config.episodes, len(plan), pool.workers,
        )  # fmt: skip
        results = pool.run(plan, progress)
        try:
            for result in results:
                if isinstance(result, HarnessError):
                    errors.append(result)
                    logger.error(
                        "%s %s seed %s: %s", result.policy_id, result.cell, result.seed, result.error
                    )
                    continue
                ready, stopped = streaks.add(result)
                for record in ready:
                    log.append(record)
                if stopped:
                    break
        finally:
            results.close()  # cancels the episodes not started yet
        if not stopped:
            for record in streaks.flush():
                log.append(record)
        log.rewrite_sorted([e.spec.id for e in entries])
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

    if stopped:
        stopped += (
            f"; {len(log.records)} finished episodes are saved in {out / 'episodes.jsonl'}, the failed ones were "
            f"not recorded; fix the server and rerun the same command with --out {out} to resume"
        )
    records = [r for r in log.records if rec.record_key(r) in planned_keys]
    summary = build_summary(
        records=records,
        entries=[e.to_dict() for e in entries],
        cells=[c.name for c in cells],
        config=config.to_dict(),
        selection=selection.to_dict() if selection is not None else None,
        environment=environment_info(),
        errors=[{"policy_id": e.policy_id, "cell": e.cell, "seed": e.seed, "error": e.error} for e in errors],
        stopped=stopped,
    )
    rec.write_json_atomic(out / "summary.json", summary)
    build_report(out)
    if errors:
        logger.error(
            "%d episodes hit env/harness errors and were not recorded; rerun with --out %s", len(errors), out
        )
    if stopped:
        raise RolloutStopped(stopped)
    return out


# ----------------------------------------------------------------------------------------------
# Command line (the parser and the config it builds are in eval.config)


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
    passive_openmp()  # before anything imports torch
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
