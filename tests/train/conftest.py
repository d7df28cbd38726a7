"""Synthetic episodes in the real format, with small 36 x 64 frames."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mvla_sim.facts import CORE_KEY_SEQUENCES, INSTRUCTIONS, key_sequence_actions
from train.episodes import Episode, EpisodeName, make_episode, write_episode

FRAME_H, FRAME_W = 36, 64
BASE_TIME = datetime(2025, 11, 14, 10, 0, 0)


def synthetic_episode(
    num_frames: int = 18,
    side: str = "left",
    *,
    evening: bool = False,
    distance: str = "medium",
    kind: str = "core",
    index: int = 0,
    seed: int = 0,
) -> Episode:
    """A ``core`` episode: frame 0 episode_start with a zero action, then the side's core keys
    (repeated if needed), random frames; ``index`` sets the timestamp (one second apart)."""
    rng = np.random.default_rng(seed + 1000 * index)
    keys = (CORE_KEY_SEQUENCES[side] * 3)[: num_frames - 1]
    actions = np.array([(0.0, 0.0, 0.0), *key_sequence_actions(keys)], dtype=np.float32)
    images = rng.integers(0, 256, size=(num_frames, FRAME_H, FRAME_W, 3), dtype=np.uint8)
    name = EpisodeName(BASE_TIME + timedelta(seconds=index), "1box", "hori", side, kind, distance, evening)
    return make_episode(images, actions, INSTRUCTIONS[side], name)


@pytest.fixture
def episode_factory() -> Callable[..., Episode]:
    return synthetic_episode


@pytest.fixture
def write_synthetic() -> Callable[..., Path]:
    """``write_synthetic(folder, **synthetic_episode kwargs) -> path`` named after the episode."""

    def _write(folder: Path, **kwargs: object) -> Path:
        episode = synthetic_episode(**kwargs)  # type: ignore[arg-type]
        folder.mkdir(parents=True, exist_ok=True)
        return write_episode(folder / f"{episode.attrs['episode_name']}.h5", episode)

    return _write
