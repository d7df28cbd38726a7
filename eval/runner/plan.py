"""The plan of an evaluation: which policies (specs) meet which seeded episodes.

:func:`plan_specs` turns the config's selectors into policy specs: each selected checkpoint
under each profile, then the baselines, factories and server URLs. :func:`episode_seed` and
:func:`plan_episodes` give every policy the same (cell, seed) list, so comparisons are paired and
results do not depend on who runs the episodes (one process, a pool, a batch, a cluster).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from pathlib import Path

from eval.config import HTTP_OPTION_NAMES, RolloutConfig, UsageError
from eval.results.video import video_name
from eval.runner.episode import EpisodeTask
from eval.runner.policy_factory import PolicySpec, checkpoint_specs, other_spec
from eval.select import Selection, resolve_checkpoints

EpisodeKey = tuple[str, str, int]
"""(policy id, cell name, seed): one episode of an evaluation."""


def episode_seed(base_seed: int, cell: str, index: int) -> int:
    """Seed of episode ``index`` of ``cell``: a hash of (base seed, cell, index), in [0, 2**31).

    It does not depend on the policy, so every policy meets the same episodes (paired comparison).
    """
    digest = hashlib.sha256(f"mvla-eval/{int(base_seed)}/{cell}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def plan_specs(config: RolloutConfig) -> tuple[list[PolicySpec], Selection | None]:
    """The policies to evaluate: each selected checkpoint under each profile, then the others.

    Returns (specs, selection); selection is None without checkpoints.

    Raises:
        SelectionError, UsageError: no checkpoint found, a policy listed twice, nothing to
            evaluate, or checkpoint options without a checkpoint (one line).
    """
    specs: list[PolicySpec] = []
    selection = None
    if config.ckpt:
        selection = resolve_checkpoints(config.ckpt, config.runs, runs_explicit=config.runs_explicit)
    for choice in selection.choices if selection else []:
        specs += checkpoint_specs(choice, config.profiles, config.options.checkpoint)
    for name in config.baselines:
        spec = other_spec(name, config.options.http)
        if spec.id in {s.id for s in specs}:
            raise UsageError(f"policy id {spec.id!r} appears twice; list each policy once")
        specs.append(spec)
    if not specs:
        raise UsageError("nothing to evaluate: give --ckpt (e.g. top3), --policy NAME or --baselines NAMES")
    unused = sorted(config.options.checkpoint)
    if unused and not any(s.kind == "checkpoint" for s in specs):
        raise UsageError(
            f"--policy-option {','.join(unused)}: not a server option and no checkpoint is evaluated; "
            f"server options are {', '.join(HTTP_OPTION_NAMES)}"
        )
    return specs, selection


def plan_episodes(
    specs: list[PolicySpec],
    config: RolloutConfig,
    done: Container[EpisodeKey],
    video_root: Path,
) -> tuple[list[EpisodeTask], set[EpisodeKey]]:
    """The episode tasks still to run, and the keys of every planned episode (done or not).

    Every policy gets the same (cell, seed) list; the first ``config.videos`` episodes of each
    cell are recorded.
    """
    tasks: list[EpisodeTask] = []
    planned: set[EpisodeKey] = set()
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


__all__ = ["EpisodeKey", "episode_seed", "plan_episodes", "plan_specs"]
