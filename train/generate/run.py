"""The run: plan every episode index, keep the files already there, simulate the rest (in worker
processes when asked), write each kept rollout, and record the config and the report.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mvla_sim.files import atomic_write_json
from train.episodes import LAYOUT_COLLECTOR
from train.generate.config import GenerateConfig, GenerateConfigError
from train.generate.key_report import key_sequence_distribution
from train.generate.plan import EpisodePlan, existing_episode, plan_episodes
from train.generate.rollout import close_envs, episode_record, roll_out
from train.generate.writer import record_of_existing, write_generated_episode

logger = logging.getLogger("train.generate")

CONFIG_FILE = "generate_config.json"
REPORT_FILE = "generate_report.json"

RESUME_FREE_FIELDS: tuple[str, ...] = ("episodes", "workers", "out")
"""Config fields that may differ when rerunning into an existing folder."""


def simulate_episode(config: GenerateConfig, plan: EpisodePlan) -> dict[str, Any]:
    """Roll the expert out for ``plan``; write the file unless it is a dropped failure.

    Returns the episode's record (see ``generate_report.json``). Runs in worker processes.
    """
    rollout = roll_out(config, plan)
    record = episode_record(plan, rollout)
    if not rollout.success and not config.keep_failures:
        return record
    path = write_generated_episode(config, plan, rollout, record)
    record.update(file=path.name, status="written")
    return record


@dataclass
class GenerateResult:
    """What a run produced: the episode files (index order) and one record per episode index."""

    config: GenerateConfig
    paths: list[Path]
    records: list[dict[str, Any]]

    @property
    def totals(self) -> dict[str, Any]:
        statuses = [r["status"] for r in self.records]
        successes = sum(bool(r["success"]) for r in self.records)
        n = len(self.records)
        return {
            "episodes_requested": n,
            "files": len(self.paths),
            "written": statuses.count("written"),
            "existing": statuses.count("existing"),
            "dropped_failures": statuses.count("dropped"),
            "expert_successes": successes,
            "expert_success_rate": successes / n if n else 0.0,
            "variant": sum(r["kind"] == "variant" for r in self.records if r["file"]),
            "key_sequences": key_sequence_distribution(self.records),
        }

    def summary_line(self) -> str:
        t = self.totals
        kept = "kept" if self.config.keep_failures else "dropped"
        return (
            f"expert success {t['expert_successes']}/{t['episodes_requested']} "
            f"({100 * t['expert_success_rate']:.1f} %); failures {kept}: "
            f"{t['episodes_requested'] - t['expert_successes']}; files {t['files']} "
            f"({t['written']} written, {t['existing']} already there, {t['variant']} variant) in {self.config.out}"
        )


def _check_folder_config(config: GenerateConfig) -> None:
    path = config.out / CONFIG_FILE
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GenerateConfigError(f"{path}: unreadable ({exc}); delete it or choose another --out") from None
    previous.setdefault("layout", LAYOUT_COLLECTOR)  # folders written before layouts existed
    previous.setdefault("channel_order", "rgb")  # ... and before generated frames were stored BGR
    current = config.to_json()
    differs = {
        k: (previous.get(k), v)
        for k, v in current.items()
        if k not in RESUME_FREE_FIELDS and previous.get(k) != v
    }
    if differs:
        shown = ", ".join(f"{k}: {old!r} there vs {new!r} now" for k, (old, new) in sorted(differs.items()))
        raise GenerateConfigError(
            f"{config.out} holds episodes generated with other settings ({shown}); use another --out "
            "or the same settings to resume"
        )


def run_generation(config: GenerateConfig, *, progress: bool = True) -> GenerateResult:
    """Generate the run's missing episodes, write ``generate_config.json`` and ``generate_report.json``.

    Raises:
        GenerateConfigError: if ``config.out`` was generated with other settings.
        EpisodeFormatError: if an existing episode file of this run is unreadable.
    """
    config.out.mkdir(parents=True, exist_ok=True)
    _check_folder_config(config)
    atomic_write_json(config.out / CONFIG_FILE, config.to_json())

    plans = plan_episodes(config)
    records: dict[int, dict[str, Any]] = {}
    todo: list[EpisodePlan] = []
    for plan in plans:
        path = existing_episode(config, plan)
        if path is None:
            todo.append(plan)
        else:
            records[plan.index] = record_of_existing(plan, path)
    if records:
        logger.info(
            "%s: %d of %d episodes already there; generating the other %d",
            config.out,
            len(records),
            len(plans),
            len(todo),
        )
    bar = tqdm(total=len(plans), initial=len(records), desc="episodes", unit="ep", disable=not progress)
    try:
        _simulate(config, todo, records, bar)
    finally:
        bar.close()

    ordered = [records[plan.index] for plan in plans]
    paths = [config.out / r["file"] for r in ordered if r["file"]]
    result = GenerateResult(config, paths, ordered)
    atomic_write_json(
        config.out / REPORT_FILE, {"config": config.to_json(), "totals": result.totals, "episodes": ordered}
    )
    return result


def _simulate(
    config: GenerateConfig, todo: list[EpisodePlan], records: dict[int, dict[str, Any]], bar: Any
) -> None:
    """Simulate ``todo`` into ``records``: here, or in ``config.workers`` spawned processes."""
    workers = min(config.workers, len(todo))
    if workers <= 1:
        try:
            for plan in todo:
                records[plan.index] = simulate_episode(config, plan)
                bar.update()
        finally:
            close_envs()
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(simulate_episode, config, plan): plan for plan in todo}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    record = future.result()
                    records[record["index"]] = record
                    bar.update()
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def generate_episodes(config: GenerateConfig, *, progress: bool = False) -> list[Path]:
    """Generate (or complete) the run of ``config`` and return its episode files in index order.

    Episodes whose files exist in ``config.out`` are kept as they are; dropped failures are not
    in the list. See the module docstring for what is written.
    """
    return run_generation(config, progress=progress).paths
