"""What one generation run is: :class:`GenerateConfig`, its validation and its parsers.

Also the scenario names, the real data's mix and the synthetic-timestamp constants that every
other room of ``train.generate`` reads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mvla_sim.facts import CAMERA_NATIVE_SIZE, OBSTACLE_DISTANCES
from train.episodes import CHANNEL_ORDERS, EPISODE_LAYOUTS, LAYOUT_COLLECTOR, REAL_CAMERA_CHANNEL_ORDER

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

_ASPECT_TOLERANCE_PX = 1


EXPERT_MODES: tuple[str, ...] = ("keys", "continuous")


class GenerateConfigError(ValueError):
    """A generation setting is invalid; the message quotes the bad value."""


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
    return normalize_mix(weights, text)


def normalize_mix(weights: dict[str, float], shown: object) -> dict[str, float]:
    """``weights`` over every scenario of ``SCENARIOS``, summing to 1 (``shown`` quotes the input in errors)."""
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
        channel_order: colour order of the stored images, recorded in every file: ``"bgr"``
            (default, as the team's collector stores the camera's ``bgr8``, so sim and real episodes
            mixed in the fork's loader come in the same order) or ``"rgb"`` (the env's frames as they are).
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
        self.episodes = _whole_number("episodes", self.episodes)
        if not 1 <= self.episodes <= MAX_EPISODES:
            raise GenerateConfigError(f"episodes={self.episodes!r} must be between 1 and {MAX_EPISODES}")
        self.out = Path(self.out)
        self.mix = (
            parse_mix(self.mix) if isinstance(self.mix, str) else normalize_mix(dict(self.mix), self.mix)
        )
        self.distances = _resolve_distances(self.distances)
        self.image_size = _resolve_image_size(self.image_size)
        self.seed = _whole_number("seed", self.seed, 0)
        try:
            noise = float(self.noise)
        except (TypeError, ValueError):
            raise GenerateConfigError(f"noise={self.noise!r} must be a probability in [0, 1]") from None
        if not 0.0 <= noise <= 1.0:
            raise GenerateConfigError(f"noise={self.noise!r} must be a probability in [0, 1]")
        self.noise = noise
        if self.mode not in EXPERT_MODES:
            raise GenerateConfigError(f"mode={self.mode!r} is not valid; choose 'keys' or 'continuous'")
        self.workers = _whole_number("workers", self.workers, 1)
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


def _whole_number(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int, refusing bools, floats and values under ``minimum``."""
    at_least = "" if minimum is None else f" >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise GenerateConfigError(f"{name}={value!r} must be a whole number{at_least}")
    if minimum is not None and value < minimum:
        raise GenerateConfigError(f"{name}={value!r} must be a whole number{at_least}")
    return int(value)


def _resolve_distances(value: tuple[str, ...] | str) -> tuple[str, ...]:
    distances = parse_distances(value) if isinstance(value, str) else tuple(value)
    if not distances:
        raise GenerateConfigError(f"distances={value!r} names no distance; use e.g. 'medium'")
    unknown = [d for d in distances if d not in OBSTACLE_DISTANCES]
    if unknown:
        raise GenerateConfigError(
            f"distances={value!r}: unknown distance(s) {unknown}; choose among {list(OBSTACLE_DISTANCES)}"
        )
    if len(set(distances)) != len(distances):
        raise GenerateConfigError(f"distances={value!r} repeats a distance")
    return distances


def _resolve_image_size(value: tuple[int, int] | str) -> tuple[int, int]:
    size = parse_image_size(value) if isinstance(value, str) else value
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise GenerateConfigError(f"image_size={value!r} must be (width, height), e.g. (256, 144)") from None
    max_w, max_h = CAMERA_NATIVE_SIZE
    if not (16 <= width <= max_w and 9 <= height <= max_h):
        raise GenerateConfigError(f"image_size={value!r} must be between 16x9 and {max_w}x{max_h} pixels")
    if abs(width * 9 - height * 16) > 16 * _ASPECT_TOLERANCE_PX:
        raise GenerateConfigError(
            f"image_size={value!r} is not 16:9 like the real {max_w}x{max_h} camera; "
            f"for width {width} use height {round(width * 9 / 16)}"
        )
    return width, height
