"""Which episode is which, before simulating it: scene, seeds and synthetic timestamp per index.

Episode ``i`` of a run depends only on ``(seed, i)`` and the mix (the module docstring of
``train.generate``): the scene schedule is interleaved so every prefix keeps the mix, and the
env's domain randomization and the expert's noise are seeded from ``SeedSequence(seed, (i,))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from train.episodes import EpisodeName
from train.generate.config import (
    EPISODE_SPACING_S,
    SCENARIOS,
    SEED_SLOT_S,
    SEED_SLOTS,
    SYNTHETIC_EPOCH,
    GenerateConfig,
    normalize_mix,
)

BOXES, LAYOUT = "1box", "hori"
"""The scene's fields in the real file names (one box, horizontal)."""


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
    mix = normalize_mix(mix, mix)
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
