"""Closed-loop evaluation: ``python -m eval.rollout --ckpt top3``.

Rolls out checkpoints (under one or more VLA profiles), baselines and policies served over HTTP
on one fixed, seeded list of episodes over the scene grid (side x lighting x obstacle distance),
in parallel worker processes, and writes:

- ``<out>/episodes.jsonl``  one record per episode, appended as episodes finish (resumable);
- ``<out>/summary.json``    success rates with Wilson 95 % intervals, SPL, collisions, side
  errors, latency, rank agreement val_loss vs success, paired tests, profiles side by side,
  the recommendation, the instruction probes' verdicts (:mod:`eval.probes`);
- ``<out>/report.md``, ``<out>/report.html`` and ``<out>/plots/*.png`` built from summary.json;
- ``videos/<run>/<policy>__<scene>__seed<seed>__<outcome>.mp4``.

Each episode is a pure function of (policy spec, scene cell, seed): results do not depend on
the number of workers or on the order in which episodes finish.

This module orchestrates; the jobs live in their own modules: the typed config (:mod:`eval.config`)
and the command line that builds it (:mod:`eval.rollout_cli`), the plan of policies and seeded
episodes (:mod:`eval.runner.plan`), the checks before any episode (:mod:`eval.runner.preflight`), the
episodes recorded as they finish (:mod:`eval.runner.collect`), policy specs and the factory (:mod:`eval.runner.policy_factory`), the episode runner
(:mod:`eval.runner.episode`), the worker pool (:mod:`eval.runner.workers`), provenance and resume
(:mod:`eval.runner.provenance`), records, summary and report (:mod:`eval.results`), instruction
probes (:mod:`eval.probes`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack, closing
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eval.config import RolloutConfig, UsageError
from eval.probes import format_probes, summarize_probes
from eval.results import records as rec
from eval.rollout_cli import build_parser, config_from_args
from eval.runner.backends import make_pool
from eval.runner.collect import RolloutInterrupted, RunOutcome, record_episodes
from eval.runner.plan import plan_specs
from eval.runner.preflight import PolicyEntry, check_scene, check_servers, probe_policies
from eval.runner.provenance import environment_info, open_results
from eval.runner.workers import passive_openmp, torch_threads
from eval.select import Selection, SelectionError, resolve_checkpoints

logger = logging.getLogger("eval.rollout")


class RolloutStopped(Exception):
    """A server failed too many episodes in a row; finished episodes and the summary are on disk."""


def run_rollout(config: RolloutConfig, *, progress: bool = True) -> Path:
    """Run (or resume) an evaluation; returns the results folder holding summary.json.

    Raises:
        SelectionError, UsageError: bad input, scene settings the env refuses, or a server failing
            its pre-flight check (one line); nothing is written then.
        RolloutInterrupted: on Ctrl-C (finished episodes are saved; rerun with the same --out).
        RolloutStopped: a server failed ``config.max_server_faults`` episodes in a row (finished
            episodes and summary.json are saved; rerun with the same --out to resume).
    """
    selection = select_checkpoints(config)
    selection_info = selection.to_dict() if selection is not None else None
    specs = plan_specs(config, selection)
    entries = [PolicyEntry(spec) for spec in specs]
    torch_needed = any(s.kind == "checkpoint" for s in specs)
    with ExitStack() as stack:
        env = stack.enter_context(closing(check_scene(config)))  # the env's own rules judge the scene
        check_servers(entries)  # before anything is written or started
        open_results(config)
        stack.enter_context(torch_threads(config.torch_threads, torch_needed))
        warm = next((s for s in specs if s.kind == "checkpoint"), None)
        max_tasks = len(specs) * (1 + len(config.probes)) * len(config.cells) * config.episodes
        pool = stack.enter_context(make_pool(config, torch_needed, max_tasks, warm))  # workers start up now
        ok = probe_policies(entries, env, config.seed)  # ... while the main process checks the policies
        order = [e.spec.id for e in entries]
        outcome = record_episodes(pool, [e.spec for e in ok], order, config, progress)
    _write_results(config, entries, selection_info, outcome)
    if outcome.stopped:
        raise RolloutStopped(outcome.stopped)
    return config.out


def select_checkpoints(config: RolloutConfig) -> Selection | None:
    """The checkpoints that ``config.ckpt`` selects (None when only other policies run).

    Raises:
        SelectionError: no such checkpoint, or no run holding checkpoints (one line).
    """
    return (
        resolve_checkpoints(config.ckpt, config.runs, runs_explicit=config.runs_explicit)
        if config.ckpt
        else None
    )


def _write_results(
    config: RolloutConfig, entries: list[PolicyEntry], selection: dict[str, Any] | None, outcome: RunOutcome
) -> None:
    """summary.json from the records, then the report built from it."""
    from eval.results.report import build_report
    from eval.results.summary import build_summary

    summary = build_summary(
        records=[r for r in outcome.records if not r.get("probe")],
        entries=[e.to_dict() for e in entries],
        cells=[c.name for c in config.cells],
        config=config.to_dict(),
        selection=selection,
        environment=environment_info(),
        errors=[asdict(e) for e in outcome.errors],
        stopped=outcome.stopped,
    )
    if config.real is not None:
        from eval.realgap.closed_loop import real_open_loop

        summary["real_open_loop"] = real_open_loop(config, summary)
    if config.probes:
        summary["instruction_probes"] = summarize_probes(outcome.records, config.probes)
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
    selection = select_checkpoints(config)
    specs = plan_specs(config, selection)
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
    if config.probes:
        print(f"+ instruction probes {','.join(config.probes)}: {n * len(config.probes)} more episodes")


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
    if summary.get("instruction_probes"):
        print("\n" + format_probes(summary))
    print(f"\nresults: {out}/summary.json  report: {out}/report.html")
    return 1 if summary.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
