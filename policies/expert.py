"""The scripted expert: a privileged controller that drives like the teleoperator.

It reads the simulator's ground truth through ``env.unwrapped.scene_state()`` (so it needs the
env, unlike learned policies) and chooses, at every key press, one of the teleoperator's eight
key directions (``mode="keys"``, the default, as in the real data) or a continuous direction
(``mode="continuous"``). Its plan mirrors the real ``core`` sequences: drive forward while there
is room, go diagonally (Q/E) or sideways (A/D) to clear the box on the instructed side, drive
forward past it, then come back diagonally to a stand-off point in front of the bottle and stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mvla_sim.facts import KEY_ACTION_VALUE, KEY_ACTIONS

_MOVE_KEYS = ("W", "Q", "A", "Z", "S", "C", "D", "E")


@dataclass(frozen=True)
class ExpertConfig:
    """Settings of the scripted expert.

    Attributes:
        mode: ``"keys"`` (the 8 teleoperation directions) or ``"continuous"``.
        lateral_margin_m: clearance kept beside the box, beyond the robot's half-width (m).
        longitudinal_margin_m: clearance kept in front of and behind the box (m).
        standoff_m: how far in front of the bottle the expert aims to stop (m).
        noise: probability, per key press, of replacing the chosen action by a random key press
            (noise injection for data generation, DART-style); the expert recovers afterwards.
    """

    mode: str = "keys"
    lateral_margin_m: float = 0.07
    longitudinal_margin_m: float = 0.05
    standoff_m: float = 0.85
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("keys", "continuous"):
            raise ValueError(f"mode={self.mode!r} is not valid; choose 'keys' or 'continuous'")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise={self.noise!r} must be a probability in [0, 1]")
        if self.lateral_margin_m < 0 or self.longitudinal_margin_m < 0:
            raise ValueError("margins must be non-negative metres")


class ScriptedExpert:
    """Privileged expert with the policy contract (``reset(instruction)``, ``act(obs)``)."""

    name = "expert"

    def __init__(self, env: Any, config: ExpertConfig | None = None, seed: int = 0) -> None:
        self.env = env.unwrapped
        self.config = config or ExpertConfig()
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.last_key: str | None = None

    def reset(self, instruction: str) -> None:
        self.last_key = None

    def settings(self) -> dict[str, Any]:
        return {"policy": "scripted_expert", "privileged": True, **self.config.__dict__, "seed": self._seed}

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        state = self.env.scene_state()
        direction = self._plan(state)
        if self.config.noise > 0 and self._rng.random() < self.config.noise:
            key = _MOVE_KEYS[int(self._rng.integers(len(_MOVE_KEYS)))]
            self.last_key = key
            return np.asarray(KEY_ACTIONS[key][:2], dtype=np.float32)
        if direction is None:
            self.last_key = " "
            return np.zeros(2, dtype=np.float32)
        yaw = state["robot_pose"][2]
        c, s = math.cos(-yaw), math.sin(-yaw)
        bx, by = c * direction[0] - s * direction[1], s * direction[0] + c * direction[1]
        if self.config.mode == "keys":
            self.last_key = _nearest_key(bx, by)
            return np.asarray(KEY_ACTIONS[self.last_key][:2], dtype=np.float32)
        self.last_key = None
        scale = KEY_ACTION_VALUE / max(abs(bx), abs(by))
        return np.asarray([bx * scale, by * scale], dtype=np.float32)

    def _plan(self, state: dict[str, Any]) -> tuple[float, float] | None:
        """World-frame direction to move in for this key press, or ``None`` to stop."""
        cfg = self.config
        lay = state["layout"]
        x, y, _ = state["robot_pose"]
        rhx, rhy = state["robot_half_extents"]
        step = state["step_length_m"]
        diag = step / math.sqrt(2.0)
        sign = 1.0 if lay["side"] == "left" else -1.0
        xmin, xmax, ymin, ymax = _box_aabb(lay)

        near = xmin - cfg.longitudinal_margin_m
        past_x = xmax + rhx + cfg.longitudinal_margin_m
        clear_y = ymax + rhy + cfg.lateral_margin_m if sign > 0 else ymin - rhy - cfg.lateral_margin_m
        lateral_needed = max(0.0, sign * (clear_y - y))

        if x + diag < past_x:
            if lateral_needed <= 0.0:
                return (1.0, 0.0)
            gap = near - (x + rhx)
            n_diag = math.ceil(lateral_needed / diag - 1e-9)
            if gap - step >= n_diag * diag:
                return (1.0, 0.0)
            if gap >= n_diag * diag:
                return (1.0, sign)
            return (0.0, sign)

        bottle_x, bottle_y = lay["bottle_xy"]
        tx = bottle_x - cfg.standoff_m
        ty = bottle_y + sign * 0.1
        dx, dy = tx - x, ty - y
        if x < past_x and sign * (y - clear_y) < 0:
            dy = 0.0
        if math.hypot(dx, dy) < step / 2:
            return None
        return (max(dx, 0.0), dy)


def _box_aabb(layout: dict[str, Any]) -> tuple[float, float, float, float]:
    cx, cy = layout["box_center"]
    hx, hy = layout["box_half_extents"]
    yaw = layout["box_yaw"]
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    ex, ey = c * hx + s * hy, s * hx + c * hy
    return cx - ex, cx + ex, cy - ey, cy + ey


def _nearest_key(dx: float, dy: float) -> str:
    angle = math.atan2(dy, dx)
    index = int(round(angle / (math.pi / 4))) % 8
    return _MOVE_KEYS[index]
