"""Simulated training episodes: scripted-expert rollouts saved in the real HDF5 episode format.

Run ``python -m train.generate --episodes 200 --out data/sim`` (``--help`` lists every option).
From code: ``generate_episodes(GenerateConfig(episodes=200, out="data/sim")) -> list[Path]``.

What one episode is
    The real protocol: 18 frames. Frame 0 is ``episode_start`` with a zero action; frames 1-17
    are the expert's 17 key presses. As the real collector grabs its image right after it
    publishes a key's command (before the 0.4 s of motion), frame ``k`` (k >= 1) holds the image
    taken *before* press ``k`` moves the base, with that press's action: obs_t with action_t.
    Frames 0 and 1 therefore show the same pose; here they are the same rendered frame (the
    simulator takes one exposure per pose). The image after the last press is not stored, as
    in the real files. Actions are ``[linear_x, linear_y, 0]`` float32 in data units (a key
    writes +-1.15); event types follow ``train.episodes.event_types_for_actions``
    (``stop_action`` for the expert's space bar). An episode that ends in a collision stops at
    the colliding press (fewer than 18 frames); it is kept only with ``keep_failures``.

Scenes
    Each episode is one scene of the registered envs (``mvla_sim.env_id(side, lighting)``) with
    domain randomization, at one obstacle distance. The ``mix`` weighs the four scenarios
    ``left``, ``left_evening``, ``right``, ``right_evening`` (named like the file-name suffixes).
    The default, ``balanced``, gives each a quarter: evening is the scarce real condition (12 of
    468 episodes), and simulated data is meant to fill that gap. ``real`` reproduces the real
    proportions (206 left, 12 left_evening, 250 right of 468). Distances share each scenario's
    weight equally. Scenes are assigned in a fixed interleaved order (episode ``i`` goes to the
    scenario furthest behind its target share), so every prefix of a run is balanced and the
    real "sorted file names" train/val split of a generated folder is balanced too.

The expert
    ``policies.scripted.expert.ScriptedExpert``: per episode it draws a guide among the real key sequences
    of its side (FACTS.md, in proportion to their real episode counts), presses it while it still
    ends in the goal zone with margin, and otherwise corrects with the teleoperators' own keys
    and pattern. Noise-free in a nominal scene it presses its guide exactly.

Noise (DART-style)
    With ``noise`` p, each key press but the last is, with probability p, replaced by a random
    key among the teleoperators' (W, Q, A, D, E: the keys of the real sequences); the expert
    then corrects from wherever that led. The file stores the *executed* action (what was
    "pressed", as teleoperation data records it), so the data holds the expert's recoveries.
    The expert's intended actions are kept in the ``sim_intended_actions`` attribute (T x 3) for
    anyone who prefers clean labels. An episode is named ``variant`` when at least one executed
    press differs from the intended one (a deviation from the guided sequence), else ``core``.

Key sequences
    ``generate_report.json`` (``totals.key_sequences``) and the command's output give the key
    sequences written per side beside the real table: how many episodes pressed each real
    sequence exactly, and how far the others (corrections, recoveries) are from the nearest one.

Determinism, workers, resuming
    Episode ``i`` draws everything from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``
    (env seed and expert seed), and its scenario and timestamp depend only on ``(seed, i)`` and the
    mix: the files are identical whatever ``workers`` is, and ``--episodes 200`` extends a run
    of 100 with the same first 100 episodes. Rerunning into the same ``out`` skips the episodes
    whose files exist; failed rollouts that were dropped are simulated again (and dropped again).
    A folder holds one configuration: a rerun whose settings differ (other than ``episodes`` and
    ``workers``) from ``out/generate_config.json`` is refused.

File names and attributes
    ``episode_{YYYYMMDD_HHMMSS}_1box_hori_{left|right}_{core|variant}_{distance}[_evening].h5``
    (the real pattern). The timestamps are synthetic: ``SYNTHETIC_EPOCH`` (1990-01-01) plus
    ``(seed % SEED_SLOTS) * SEED_SLOT_S + i * EPISODE_SPACING_S`` seconds, unique per episode,
    before any real recording (2025), so simulated files sort before real ones and never
    collide with them (seeds equal modulo ``SEED_SLOTS`` share timestamps: do not merge their
    folders). ``evening_suffix=False`` names evening episodes like day ones (the lighting then
    lives only in the attributes). Root attributes are the real nine (``time_period`` is
    ``"evening"`` or ``"day"`` from the lighting, ``collection_*`` from the synthetic timestamp)
    plus ``source="mvla_sim"`` and ``sim_*`` attributes: seeds, scene, success, collision,
    side passed, keys pressed and intended, the scene layout as JSON. ``read_episode`` returns them in
    ``Episode.attrs``. Every file also records its colour order (``channel_order``), which
    ``read_episode`` returns as ``Episode.channel_order``.

Colour order
    ``channel_order`` (``--channel-order``): ``bgr`` by default, like the team's collector (its camera
    publishes ``bgr8`` and the array is stored as it comes), so generated episodes mixed into the
    fork's loader come in the same order as the real ones (both read as RGB there: red and blue
    swapped alike); ``rgb`` stores the env's frames as they are. Either way the file says which.

File layout
    ``layout`` (``--layout``) picks which of the team's layouts is written (``train.episodes``):
    ``collector`` (default: the November 2025 collector's, read by the fork's
    ``MobileVLAH5Dataset``), ``v3`` (instruction in the ``task`` attribute) or ``v5``
    (``observations/images``, no event types: their current data). The content is the same;
    ``read_episode`` reads all three back into the same ``Episode``.

Outputs beside the episodes: ``generate_config.json`` (the resolved config) and
``generate_report.json`` (one record per episode index and the totals), both written atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mvla_sim.facts import CAMERA_NATIVE_SIZE, EPISODE_ACTIONS, OBSTACLE_DISTANCES, SIDES, real_key_sequences
from mvla_sim.make import SceneDescription, make_env
from policies.scripted.baselines import make_baseline
from train.atomic import write_json_atomic
from train.episodes import (
    CHANNEL_ORDERS,
    EPISODE_LAYOUTS,
    LAYOUT_COLLECTOR,
    REAL_CAMERA_CHANNEL_ORDER,
    SIM_SOURCE,
    EpisodeFormatError,
    EpisodeName,
    make_episode,
    read_episode,
    write_episode,
)
from train.stats import format_summary, key_of_action, summarize_episodes

logger = logging.getLogger(__name__)

SOURCE = SIM_SOURCE
"""Value of the ``source`` attribute of every generated episode."""

SCENARIOS: tuple[str, ...] = ("left", "left_evening", "right", "right_evening")
"""Mix keys: side, with ``_evening`` for the evening lighting (as the file-name suffix)."""

REAL_EPISODE_COUNTS: dict[str, int] = {"left": 206, "left_evening": 12, "right": 250, "right_evening": 0}
"""Episodes per scenario in the real data set (468 in all, all at the medium distance)."""

MIX_PRESETS: dict[str, dict[str, float]] = {
    "balanced": dict.fromkeys(SCENARIOS, 0.25),
    "real": {k: v / sum(REAL_EPISODE_COUNTS.values()) for k, v in REAL_EPISODE_COUNTS.items()},
}

SYNTHETIC_EPOCH = datetime(1990, 1, 1, 0, 0, 0)
"""Base of the synthetic timestamps: before every real recording."""

EPISODE_SPACING_S = 20
"""Seconds between the synthetic timestamps of consecutive episodes (a spacing, not a measured pace)."""

SEED_SLOT_S = 1_000_000
"""Seconds of timestamps reserved per seed (about 11.6 days)."""

SEED_SLOTS = 1000
"""Seeds share timestamps modulo this (so every timestamp stays before 2022)."""

MAX_EPISODES = SEED_SLOT_S // EPISODE_SPACING_S
"""Most episodes one run (one seed) can name without timestamp collisions: 50 000."""

CONFIG_FILE = "generate_config.json"
REPORT_FILE = "generate_report.json"

RESUME_FREE_FIELDS: tuple[str, ...] = ("episodes", "workers", "out")
"""Config fields that may differ when rerunning into an existing folder."""

BOXES, LAYOUT = "1box", "hori"

_ASPECT_TOLERANCE_PX = 1


class GenerateConfigError(ValueError):
    """A generation setting is invalid; the message quotes the bad value."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    """``"balanced"``, ``"real"`` or ``"left=0.44,left_evening=0.03,right=0.53"`` -> normalized weights.

    Weights are non-negative numbers (counts work too: ``left=206,right=250``); scenarios left
    out get 0; the result sums to 1 and has every key of ``SCENARIOS``.

    Raises:
        GenerateConfigError: quoting the bad part.
    """
    text = text.strip()
    if text in MIX_PRESETS:
        return dict(MIX_PRESETS[text])
    weights = dict.fromkeys(SCENARIOS, 0.0)
    seen: set[str] = set()
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise GenerateConfigError(
                f"mix {text!r}: {part!r} is not NAME=WEIGHT; use e.g. left=0.25,left_evening=0.25,... "
                f"or a preset {sorted(MIX_PRESETS)}"
            )
        if name not in weights:
            raise GenerateConfigError(
                f"mix {text!r}: unknown scenario {name!r}; choose among {list(SCENARIOS)}"
            )
        if name in seen:
            raise GenerateConfigError(f"mix {text!r}: scenario {name!r} given twice")
        seen.add(name)
        try:
            weight = float(value)
        except ValueError:
            raise GenerateConfigError(
                f"mix {text!r}: weight {value.strip()!r} of {name!r} is not a number"
            ) from None
        weights[name] = weight
    return _normalize_mix(weights, text)


def _normalize_mix(weights: dict[str, float], shown: object) -> dict[str, float]:
    unknown = sorted(set(weights) - set(SCENARIOS))
    if unknown:
        raise GenerateConfigError(
            f"mix {shown!r}: unknown scenario(s) {unknown}; choose among {list(SCENARIOS)}"
        )
    full = {name: float(weights.get(name, 0.0)) for name in SCENARIOS}
    bad = {k: v for k, v in full.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise GenerateConfigError(f"mix {shown!r}: weights must be finite and >= 0, got {bad}")
    total = sum(full.values())
    if total <= 0:
        raise GenerateConfigError(f"mix {shown!r}: at least one scenario needs a positive weight")
    return {k: v / total for k, v in full.items()}


def parse_image_size(text: str) -> tuple[int, int]:
    """``"256x144"`` -> (256, 144) as (width, height).

    Raises:
        GenerateConfigError: if it is not WIDTHxHEIGHT.
    """
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(width), int(height)
    except ValueError:
        raise GenerateConfigError(
            f"image size {text!r} is not WIDTHxHEIGHT, e.g. 256x144 or 1280x720"
        ) from None


def parse_distances(text: str) -> tuple[str, ...]:
    """``"close,medium"`` -> ("close", "medium") (validated by ``GenerateConfig``)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass
class GenerateConfig:
    """Settings of one generation run (saved as ``generate_config.json`` beside the episodes).

    Attributes:
        episodes: number of episode indices to roll out (0 .. episodes - 1); with
            ``keep_failures=False`` the expert's failures are dropped, so fewer files may result.
        out: folder of the episode files (created if needed).
        mix: weights of the scenarios ``left``, ``left_evening``, ``right``, ``right_evening``;
            a preset name (``"balanced"``, ``"real"``), a ``"name=weight,..."`` string or a dict.
            Normalized to sum 1.
        distances: obstacle distances to use (``close``, ``medium``, ``far``), equally weighted;
            a tuple or a comma-separated string. The real data is all ``medium``.
        image_size: (width, height) in pixels, 16:9 within a pixel; ``"WxH"`` strings accepted.
            256x144 is quick; 1280x720 is the real camera's size (about 20x slower, 34 MB per episode).
        seed: run seed (>= 0); episode ``i`` depends only on ``(seed, i)``.
        noise: probability per key press of a random movement key instead of the expert's
            (DART-style noise injection); the executed key is recorded.
        mode: the expert's actions: ``"keys"`` (the 8 teleoperation directions, as in the real
            data) or ``"continuous"`` (any direction, largest component 1.15).
        keep_failures: keep episodes in which the expert failed (collision, wrong side, not in
            the goal zone); by default they are dropped and counted.
        workers: processes simulating in parallel; the files do not depend on it.
        evening_suffix: add the real ``_evening`` suffix to evening episodes' file names.
        layout: the team's file layout to write (``train.episodes.EPISODE_LAYOUTS``):
            ``"collector"`` (November 2025, what the fork's ``MobileVLAH5Dataset`` reads), ``"v3"``
            (instruction in the ``task`` attribute) or ``"v5"`` (``observations/images``).
    """

    episodes: int
    out: Path
    mix: dict[str, float] | str = field(default_factory=lambda: dict(MIX_PRESETS["balanced"]))
    distances: tuple[str, ...] | str = ("medium",)
    image_size: tuple[int, int] | str = (256, 144)
    seed: int = 0
    noise: float = 0.1
    mode: str = "keys"
    keep_failures: bool = False
    workers: int = 1
    evening_suffix: bool = True
    layout: str = LAYOUT_COLLECTOR
    channel_order: str = REAL_CAMERA_CHANNEL_ORDER

    def __post_init__(self) -> None:
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int | np.integer):
            raise GenerateConfigError(f"episodes={self.episodes!r} must be a whole number")
        self.episodes = int(self.episodes)
        if not 1 <= self.episodes <= MAX_EPISODES:
            raise GenerateConfigError(f"episodes={self.episodes!r} must be between 1 and {MAX_EPISODES}")
        self.out = Path(self.out)

        self.mix = (
            parse_mix(self.mix) if isinstance(self.mix, str) else _normalize_mix(dict(self.mix), self.mix)
        )

        distances = (
            parse_distances(self.distances) if isinstance(self.distances, str) else tuple(self.distances)
        )
        if not distances:
            raise GenerateConfigError(f"distances={self.distances!r} names no distance; use e.g. 'medium'")
        unknown = [d for d in distances if d not in OBSTACLE_DISTANCES]
        if unknown:
            raise GenerateConfigError(
                f"distances={self.distances!r}: unknown distance(s) {unknown}; choose among {list(OBSTACLE_DISTANCES)}"
            )
        if len(set(distances)) != len(distances):
            raise GenerateConfigError(f"distances={self.distances!r} repeats a distance")
        self.distances = distances

        size = parse_image_size(self.image_size) if isinstance(self.image_size, str) else self.image_size
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise GenerateConfigError(
                f"image_size={self.image_size!r} must be (width, height), e.g. (256, 144)"
            ) from None
        max_w, max_h = CAMERA_NATIVE_SIZE
        if not (16 <= width <= max_w and 9 <= height <= max_h):
            raise GenerateConfigError(
                f"image_size={self.image_size!r} must be between 16x9 and {max_w}x{max_h} pixels"
            )
        if abs(width * 9 - height * 16) > 16 * _ASPECT_TOLERANCE_PX:
            raise GenerateConfigError(
                f"image_size={self.image_size!r} is not 16:9 like the real {max_w}x{max_h} camera; "
                f"for width {width} use height {round(width * 9 / 16)}"
            )
        self.image_size = (width, height)

        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise GenerateConfigError(f"seed={self.seed!r} must be a whole number >= 0")
        self.seed = int(self.seed)
        try:
            noise = float(self.noise)
        except (TypeError, ValueError):
            raise GenerateConfigError(f"noise={self.noise!r} must be a probability in [0, 1]") from None
        if not 0.0 <= noise <= 1.0:
            raise GenerateConfigError(f"noise={self.noise!r} must be a probability in [0, 1]")
        self.noise = noise
        if self.mode not in ("keys", "continuous"):
            raise GenerateConfigError(f"mode={self.mode!r} is not valid; choose 'keys' or 'continuous'")
        if (
            isinstance(self.workers, bool)
            or not isinstance(self.workers, int | np.integer)
            or self.workers < 1
        ):
            raise GenerateConfigError(f"workers={self.workers!r} must be a whole number >= 1")
        self.workers = int(self.workers)
        if self.channel_order not in CHANNEL_ORDERS:
            raise GenerateConfigError(
                f"channel_order={self.channel_order!r} is not valid; choose among {list(CHANNEL_ORDERS)}"
            )
        if self.layout not in EPISODE_LAYOUTS:
            raise GenerateConfigError(
                f"layout={self.layout!r} is not valid; choose among {list(EPISODE_LAYOUTS)}"
            )
        for name in ("keep_failures", "evening_suffix"):
            if not isinstance(getattr(self, name), bool):
                raise GenerateConfigError(f"{name}={getattr(self, name)!r} must be True or False")

    def to_json(self) -> dict[str, Any]:
        """The resolved config as JSON-ready data."""
        data = asdict(self)
        data["out"] = str(self.out)
        data["distances"] = list(self.distances)
        data["image_size"] = list(self.image_size)
        return data


# --------------------------------------------------------------------------------------------
# Per-episode plan: scenario, seeds, timestamp
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodePlan:
    """What episode ``index`` of a run is, before simulating it."""

    index: int
    side: str
    lighting: str
    distance: str
    env_seed: int
    expert_seed: int
    timestamp: datetime

    @property
    def scenario(self) -> str:
        return self.side + ("_evening" if self.lighting == "evening" else "")

    def name(self, kind: str, evening_suffix: bool) -> EpisodeName:
        evening = self.lighting == "evening" and evening_suffix
        return EpisodeName(self.timestamp, BOXES, LAYOUT, self.side, kind, self.distance, evening)


def scenario_schedule(
    mix: dict[str, float], distances: Sequence[str], count: int
) -> list[tuple[str, str, str]]:
    """(side, lighting, distance) of episodes 0 .. count - 1.

    Interleaved and deterministic: episode ``i`` goes to the combination whose count is furthest
    below its target share ``weight * (i + 1)`` (ties to the first in ``SCENARIOS`` x
    ``distances`` order), so every prefix is within one episode of the mix and episode ``i``'s
    scenario does not depend on ``count``.
    """
    mix = _normalize_mix(mix, mix)
    combos = [(scenario, distance) for scenario in SCENARIOS for distance in distances]
    weights = np.array([mix[scenario] / len(distances) for scenario, _ in combos])
    counts = np.zeros(len(combos))
    schedule = []
    for i in range(count):
        j = int(np.argmax(weights * (i + 1) - counts))
        counts[j] += 1
        scenario, distance = combos[j]
        side, _, evening = scenario.partition("_")
        schedule.append((side, "evening" if evening else "day", distance))
    return schedule


def episode_timestamp(seed: int, index: int) -> datetime:
    """The synthetic, unique timestamp of episode ``index`` of a run with ``seed``."""
    return SYNTHETIC_EPOCH + timedelta(seconds=(seed % SEED_SLOTS) * SEED_SLOT_S + index * EPISODE_SPACING_S)


def episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """(env seed, expert seed) of episode ``index``: from ``SeedSequence(seed, spawn_key=(index,))``."""
    env_seed, expert_seed = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(2)
    return int(env_seed), int(expert_seed)


def plan_episodes(config: GenerateConfig) -> list[EpisodePlan]:
    """The plans of episodes 0 .. ``config.episodes`` - 1."""
    schedule = scenario_schedule(config.mix, config.distances, config.episodes)  # type: ignore[arg-type]
    plans = []
    for i, (side, lighting, distance) in enumerate(schedule):
        env_seed, expert_seed = episode_seeds(config.seed, i)
        plans.append(
            EpisodePlan(i, side, lighting, distance, env_seed, expert_seed, episode_timestamp(config.seed, i))
        )
    return plans


def existing_episode(config: GenerateConfig, plan: EpisodePlan) -> Path | None:
    """The file of ``plan`` in ``config.out`` if one exists (``core`` or ``variant``)."""
    for kind in ("core", "variant"):
        path = config.out / plan.name(kind, config.evening_suffix).filename
        if path.is_file():
            return path
    return None


# --------------------------------------------------------------------------------------------
# Rollout (runs in worker processes)
# --------------------------------------------------------------------------------------------

_ENVS: dict[tuple[str, str, str, tuple[int, int]], Any] = {}
"""Envs of this process, one per scene and image size (reset with a seed fully determines them)."""


def _env(side: str, lighting: str, distance: str, image_size: tuple[int, int]) -> Any:
    key = (side, lighting, distance, image_size)
    if key not in _ENVS:
        _ENVS[key] = make_env(
            SceneDescription(side=side, lighting=lighting, obstacle_distance=distance, image_size=image_size)
        )
    return _ENVS[key]


def _close_envs() -> None:
    while _ENVS:
        _, env = _ENVS.popitem()
        env.close()


def _key_char(action: np.ndarray) -> str:
    key = key_of_action(action)
    return {"space": "_", "other": "?"}.get(key, key)


def simulate_episode(config: GenerateConfig, plan: EpisodePlan) -> dict[str, Any]:
    """Roll the expert out for ``plan``; write the file unless it is a dropped failure.

    Returns the episode's record (see ``generate_report.json``).
    """
    env = _env(plan.side, plan.lighting, plan.distance, config.image_size)  # type: ignore[arg-type]
    expert = make_baseline("expert", env, seed=plan.expert_seed, mode=config.mode, noise=config.noise)
    intent = make_baseline("expert", env, seed=plan.expert_seed, mode=config.mode, noise=0.0)
    obs, info = env.reset(seed=plan.env_seed)
    layout = info["layout"]
    expert.reset(obs["instruction"])
    intent.reset(obs["instruction"])
    instruction = obs["instruction"]

    zero = np.zeros(2, dtype=np.float32)
    images, actions, intended = [obs["image"]], [zero], [zero]
    for _ in range(EPISODE_ACTIONS):
        wanted = np.asarray(intent.act(obs), dtype=np.float32)
        action = np.asarray(expert.act(obs), dtype=np.float32)
        images.append(obs["image"])
        actions.append(action)
        intended.append(wanted)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break

    actions_arr = np.stack(actions)
    intended_arr = np.stack(intended)
    noisy = int(np.sum(np.any(actions_arr != intended_arr, axis=1)))
    kind = "variant" if noisy else "core"
    success = bool(info["is_success"])
    name = plan.name(kind, config.evening_suffix)
    record: dict[str, Any] = {
        "index": plan.index,
        "file": None,
        "status": "dropped",
        "scenario": plan.scenario,
        "distance": plan.distance,
        "env_seed": plan.env_seed,
        "expert_seed": plan.expert_seed,
        "success": success,
        "collided": bool(info["collided"]),
        "side_passed": info["side_passed"] or "none",
        "distance_to_goal_m": float(info["distance_to_goal"]),
        "kind": kind,
        "noisy_presses": noisy,
        "frames": len(images),
        "keys": "".join(_key_char(a) for a in actions_arr[1:]),
        "intended_keys": "".join(_key_char(a) for a in intended_arr[1:]),
    }
    if not success and not config.keep_failures:
        return record

    width, height = config.image_size  # type: ignore[misc]
    extra = {
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
        "sim_success": success,
        "sim_collided": record["collided"],
        "sim_side_passed": record["side_passed"],
        "sim_distance_to_goal_m": record["distance_to_goal_m"],
        "sim_expert": "scripted_expert",
        "sim_expert_mode": config.mode,
        "sim_noise": config.noise,
        "sim_noisy_presses": noisy,
        "sim_keys": record["keys"],
        "sim_intended_keys": record["intended_keys"],
        "sim_intended_actions": np.concatenate(
            [intended_arr, np.zeros((len(intended_arr), 1), np.float32)], axis=1
        ),
        "sim_layout": json.dumps(layout, sort_keys=True),
    }
    frames = np.stack(images)  # the env's RGB frames
    episode = make_episode(
        frames[..., ::-1] if config.channel_order == "bgr" else frames,
        actions_arr,
        instruction,
        name,
        time_period=plan.lighting,
        extra_attrs=extra,
        channel_order=config.channel_order,
    )
    path = write_episode(config.out / name.filename, episode, layout=config.layout)
    record.update(file=path.name, status="written")
    return record


def _record_of_existing(plan: EpisodePlan, path: Path) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# Key sequences written, beside the real ones
# --------------------------------------------------------------------------------------------


def key_sequence_distribution(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The key sequences of the written episodes, per side, beside the real table of FACTS.md.

    For each real sequence: its real episode count and share of its side, and how many written
    episodes pressed exactly it. The other written sequences (corrections in randomized scenes,
    recoveries after noise) are counted with their distance to the nearest real sequence of
    their side (keys that differ, position by position) and the most common of them listed.
    """
    out: dict[str, Any] = {}
    for side in SIDES:
        real = real_key_sequences(side)
        real_total = sum(s.episodes for s in real)
        written = [r["keys"] for r in records if r.get("file") and r["scenario"].split("_")[0] == side]
        counts = Counter(k for k in written if k)
        rows = [
            {
                "keys": s.keys,
                "name": s.name,
                "real_episodes": s.episodes,
                "real_share": s.episodes / real_total,
                "sim_episodes": counts.get(s.keys, 0),
                "sim_share": counts.get(s.keys, 0) / len(written) if written else 0.0,
            }
            for s in real
        ]
        real_keys = {s.keys for s in real}
        others = {k: c for k, c in counts.items() if k not in real_keys}
        distances = [min(_key_distance(k, s.keys) for s in real) for k, c in others.items() for _ in range(c)]
        out[side] = {
            "written": len(written),
            "real": rows,
            "other": {
                "sim_episodes": sum(others.values()),
                "sim_share": sum(others.values()) / len(written) if written else 0.0,
                "median_keys_from_nearest_real": float(np.median(distances)) if distances else None,
                "most_common": [
                    {
                        "keys": k,
                        "count": c,
                        "keys_from_nearest_real": min(_key_distance(k, s.keys) for s in real),
                    }
                    for k, c in sorted(others.items(), key=lambda kc: (-kc[1], kc[0]))[:5]
                ],
            },
        }
    return out


def _key_distance(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def format_key_sequence_distribution(distribution: dict[str, Any]) -> str:
    """The distribution as a plain-text table, the real one beside it."""
    lines = ["Key sequences written, beside the teleoperators' real ones (FACTS.md):"]
    lines.append(f"{'side':<6}{'sequence':<22}{'real':>6}{'real %':>8}{'sim':>6}{'sim %':>7}")
    for side, d in distribution.items():
        for r in d["real"]:
            name = r["name"].split(" ", 1)[1]
            lines.append(
                f"{side:<6}{name:<22}{r['real_episodes']:>6}{100 * r['real_share']:>7.1f}%"
                f"{r['sim_episodes']:>6}{100 * r['sim_share']:>6.1f}%"
            )
        o = d["other"]
        median = o["median_keys_from_nearest_real"]
        note = "" if median is None else f"  (median {median:g} keys from the nearest real one)"
        lines.append(
            f"{side:<6}{'other':<22}{'':>6}{'':>8}{o['sim_episodes']:>6}{100 * o['sim_share']:>6.1f}%{note}"
        )
        for m in o["most_common"][:3]:
            lines.append(
                f"{'':<6}  {m['keys']:<20}{'':>14}{m['count']:>6}   ({m['keys_from_nearest_real']} keys off)"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


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
    write_json_atomic(config.out / CONFIG_FILE, config.to_json())

    plans = plan_episodes(config)
    records: dict[int, dict[str, Any]] = {}
    todo: list[EpisodePlan] = []
    for plan in plans:
        path = existing_episode(config, plan)
        if path is None:
            todo.append(plan)
        else:
            records[plan.index] = _record_of_existing(plan, path)
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
        workers = min(config.workers, len(todo))
        if workers <= 1:
            try:
                for plan in todo:
                    records[plan.index] = simulate_episode(config, plan)
                    bar.update()
            finally:
                _close_envs()
        elif todo:
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
    finally:
        bar.close()

    ordered = [records[plan.index] for plan in plans]
    paths = [config.out / r["file"] for r in ordered if r["file"]]
    result = GenerateResult(config, paths, ordered)
    write_json_atomic(
        config.out / REPORT_FILE, {"config": config.to_json(), "totals": result.totals, "episodes": ordered}
    )
    return result


def generate_episodes(config: GenerateConfig, *, progress: bool = False) -> list[Path]:
    """Generate (or complete) the run of ``config`` and return its episode files in index order.

    Episodes whose files exist in ``config.out`` are kept as they are; dropped failures are not
    in the list. See the module docstring for what is written.
    """
    return run_generation(config, progress=progress).paths


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    defaults = GenerateConfig(episodes=1, out=Path("."))
    parser = argparse.ArgumentParser(
        prog="python -m train.generate",
        description=(
            "Generate simulated training episodes: the scripted expert drives the simulated robot\n"
            "around the box in randomized corridor scenes, and every rollout is saved as one .h5\n"
            "file in the real robot's episode format (18 frames: episode_start + 17 key presses).\n"
            "Rerun the same command to resume an interrupted run: existing episodes are kept."
        ),
        epilog=(
            "examples:\n"
            "  python -m train.generate --episodes 200 --out data/sim\n"
            "  python -m train.generate --episodes 468 --out data/sim_real_mix --mix real --workers 2\n"
            "  python -m train.generate --episodes 40 --out data/sim_720p --image-size 1280x720 "
            "--distances close,medium,far\n\n"
            f"Besides the episodes, OUT gets {CONFIG_FILE} (the settings) and {REPORT_FILE} "
            "(one record per episode)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--episodes", type=int, required=True, metavar="N", help="number of rollouts (episode indices)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the .h5 episode files"
    )
    parser.add_argument(
        "--mix",
        default="balanced",
        metavar="MIX",
        help=(
            "share of each scenario, left / left_evening / right / right_evening: 'balanced' (default, "
            "a quarter each, so the scarce evening scenes get as much data as day ones), 'real' (the "
            "real data's 206/12/250 of 468) or weights like left=0.44,left_evening=0.03,right=0.53"
        ),
    )
    parser.add_argument(
        "--distances",
        default=",".join(defaults.distances),
        metavar="LIST",
        help=f"obstacle distances, comma-separated among {','.join(OBSTACLE_DISTANCES)} (default medium, as all real data)",
    )
    parser.add_argument(
        "--image-size",
        default="x".join(str(v) for v in defaults.image_size),
        metavar="WxH",
        help="frame size, 16:9 (default 256x144, quick; 1280x720 is the real camera's, about 20x slower and 25x larger)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="run seed; episode i depends only on (seed, i) (default 0)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=defaults.noise,
        metavar="P",
        help=(
            f"probability per key press of a random movement key instead of the expert's (default {defaults.noise}); "
            "the pressed key is recorded, so the data shows the expert correcting; 0 gives clean 'core' episodes"
        ),
    )
    parser.add_argument(
        "--mode",
        choices=("keys", "continuous"),
        default=defaults.mode,
        help="expert actions: the 8 teleoperation key directions (default, as the real data) or any direction",
    )
    parser.add_argument(
        "--keep-failures",
        action="store_true",
        help="also save episodes in which the expert failed (default: drop them and report how many)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        metavar="N",
        help=f"parallel processes (default 1; this machine has {os.cpu_count()} cores); results do not depend on it",
    )
    parser.add_argument(
        "--evening-suffix",
        action=argparse.BooleanOptionalAction,
        default=defaults.evening_suffix,
        help="end evening episodes' file names with '_evening' as the real files do (default); "
        "--no-evening-suffix names them like day episodes (lighting kept in the attributes)",
    )
    parser.add_argument(
        "--layout",
        choices=EPISODE_LAYOUTS,
        default=defaults.layout,
        help="the team's episode file layout to write: collector (default, November 2025: what the fork's "
        "MobileVLAH5Dataset reads), v3 (instruction in attrs['task']) or v5 (observations/images, "
        "their current data)",
    )
    parser.add_argument(
        "--channel-order",
        choices=CHANNEL_ORDERS,
        default=defaults.channel_order,
        help="colour order of the stored images: bgr (default, like the team's collector, so sim and real "
        "episodes mix in the fork's loader) or rgb (the env's frames as they are); recorded in every file",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no statistics table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m train.generate``: generate episodes, then print their statistics and a summary line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = GenerateConfig(
            episodes=args.episodes,
            out=args.out,
            mix=args.mix,
            distances=args.distances,
            image_size=args.image_size,
            seed=args.seed,
            noise=args.noise,
            mode=args.mode,
            keep_failures=args.keep_failures,
            workers=args.workers,
            evening_suffix=args.evening_suffix,
            layout=args.layout,
            channel_order=args.channel_order,
        )
        result = run_generation(config, progress=not args.quiet)
    except (GenerateConfigError, EpisodeFormatError) as exc:
        parser.exit(2, f"error: {exc}\n")
    except OSError as exc:
        parser.exit(1, f"error: {exc}\n")
    if result.paths and not args.quiet:
        sys.stdout.write(format_summary(summarize_episodes(result.paths)) + "\n\n")
        sys.stdout.write(format_key_sequence_distribution(result.totals["key_sequences"]) + "\n\n")
    sys.stdout.write(result.summary_line() + "\n")
    return 0 if result.paths else 1


if __name__ == "__main__":
    sys.exit(main())
