"""Writing a generated episode as a real-format HDF5 file, and reading a written one's record back.

:func:`write_generated_episode` is the one place that turns a :class:`~train.generate.rollout.Rollout`
into a file: the real nine root attributes (``train.episodes.make_episode``) plus ``source`` and the
``sim_*`` attributes of :func:`sim_attrs`, written atomically by ``train.episodes.write_episode``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from train.episodes import SIM_SOURCE, EpisodeFormatError, make_episode, read_episode, write_episode
from train.generate.config import GenerateConfig
from train.generate.plan import EpisodePlan
from train.generate.rollout import Rollout

SOURCE = SIM_SOURCE
"""Value of the ``source`` attribute of every generated episode."""


def write_generated_episode(
    config: GenerateConfig, plan: EpisodePlan, rollout: Rollout, record: dict[str, Any]
) -> Path:
    """Write ``rollout`` as ``plan``'s episode file in ``config.out`` (in ``config.layout``); returns its path."""
    name = plan.name(rollout.kind, config.evening_suffix)
    episode = make_episode(
        rollout.images[..., ::-1] if config.channel_order == "bgr" else rollout.images,  # the env's are RGB
        rollout.actions,
        rollout.instruction,
        name,
        time_period=plan.lighting,
        extra_attrs=sim_attrs(config, plan, rollout, record),
        channel_order=config.channel_order,
    )
    return write_episode(config.out / name.filename, episode, layout=config.layout)


def sim_attrs(
    config: GenerateConfig, plan: EpisodePlan, rollout: Rollout, record: dict[str, Any]
) -> dict[str, Any]:
    """``source`` and the ``sim_*`` root attributes: seeds, scene, outcome, keys, intended actions, layout."""
    width, height = config.image_size  # type: ignore[misc]
    intended = rollout.intended
    return {
        "source": SOURCE,
        "sim_index": plan.index,
        "sim_run_seed": config.seed,
        "sim_env_seed": plan.env_seed,
        "sim_expert_seed": plan.expert_seed,
        "sim_scene": f"{plan.side}-{plan.lighting}-{plan.distance}",
        "sim_side": plan.side,
        "sim_lighting": plan.lighting,
        "sim_obstacle_distance": plan.distance,
        "sim_image_size": f"{width}x{height}",
        "sim_success": record["success"],
        "sim_collided": record["collided"],
        "sim_side_passed": record["side_passed"],
        "sim_distance_to_goal_m": record["distance_to_goal_m"],
        "sim_expert": "scripted_expert",
        "sim_expert_mode": config.mode,
        "sim_noise": config.noise,
        "sim_noisy_presses": record["noisy_presses"],
        "sim_keys": record["keys"],
        "sim_intended_keys": record["intended_keys"],
        "sim_intended_actions": np.concatenate([intended, np.zeros((len(intended), 1), np.float32)], axis=1),
        "sim_layout": json.dumps(rollout.layout, sort_keys=True),
    }


def record_of_existing(plan: EpisodePlan, path: Path) -> dict[str, Any]:
    """The record of an episode file written by an earlier run (from its ``sim_*`` attributes).

    Raises:
        EpisodeFormatError: the file is unreadable (the message says to delete it).
    """
    record: dict[str, Any] = {
        "index": plan.index,
        "file": path.name,
        "status": "existing",
        "scenario": plan.scenario,
        "distance": plan.distance,
        "env_seed": plan.env_seed,
        "expert_seed": plan.expert_seed,
    }
    try:
        attrs = read_episode(path, load_images=False).attrs
    except EpisodeFormatError as exc:
        raise EpisodeFormatError(f"{exc}; delete the file to regenerate it") from exc
    record.update(
        success=bool(attrs.get("sim_success", True)),
        collided=bool(attrs.get("sim_collided", False)),
        side_passed=attrs.get("sim_side_passed", "unknown"),
        distance_to_goal_m=attrs.get("sim_distance_to_goal_m"),
        kind="variant" if "_variant_" in path.name else "core",
        noisy_presses=attrs.get("sim_noisy_presses"),
        frames=attrs.get("num_frames"),
        keys=attrs.get("sim_keys"),
        intended_keys=attrs.get("sim_intended_keys"),
    )
    return record
