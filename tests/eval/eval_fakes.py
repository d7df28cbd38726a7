"""Small stand-ins for the env and policies, so eval tests run fast and without ``mvla_sim``.

``FakeCorridorEnv`` follows the env contract of DESIGN.md (obs, info keys, layout, ValueError on
non-finite actions, render) with a 2-D point robot; everything is a pure function of the seed.
Factories are importable as ``eval_fakes:<name>`` by spawned worker processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mvla_sim.facts import CORE_KEY_SEQUENCES, INSTRUCTIONS, KEY_ACTIONS

STEP_M = 0.12
ROBOT_RADIUS_M = 0.08


class FakeCorridorEnv:
    """A point robot in a corridor with one box; success = goal zone reached on the right side."""

    def __init__(
        self,
        side: str,
        lighting: str,
        distance: str,
        image_size: tuple[int, int] = (32, 18),
        max_steps: int = 17,
    ):
        self.side, self.lighting, self.distance = side, lighting, distance
        self.image_size = image_size
        self.max_steps = max_steps
        self.scene = f"{side}-{lighting}-{distance}"
        self.closed = False

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.xy = np.array([0.0, rng.uniform(-0.08, 0.08)])
        self.layout = {
            "corridor_half_width": 0.9,
            "corridor_length": 2.4,
            "box_center": [0.75 + rng.uniform(-0.1, 0.1), rng.uniform(-0.05, 0.05)],
            "box_half_extents": [0.1, 0.15],
            "bottle_xy": [1.9, 0.0],
            "bottle_radius": 0.04,
            "goal_radius": 0.7,
            "goal_xy": [1.6, 0.0],
            "start_xy": self.xy.tolist(),
            "side": self.side,
        }
        self.t = 0
        self.path = 0.0
        self.collided = False
        self.side_passed = "none"
        self.tint = rng.integers(0, 255, size=3)
        return self._obs(), self._info(final=False) | {"layout": self.layout}

    def _obs(self) -> dict[str, Any]:
        w, h = self.image_size
        img = np.zeros((h, w, 3), np.uint8)
        img[...] = self.tint
        img[:, : max(1, int((self.xy[0] / 2.4) * w))] = 40 if self.lighting == "evening" else 200
        return {"image": img, "instruction": INSTRUCTIONS[self.side]}

    def _goal_distance(self) -> float:
        return float(np.hypot(*(self.xy - np.array(self.layout["goal_xy"]))))

    def _info(self, final: bool) -> dict[str, Any]:
        d = self._goal_distance()
        success = (
            final and not self.collided and self.side_passed == self.side and d <= self.layout["goal_radius"]
        )
        return {
            "is_success": bool(success),
            "collided": self.collided,
            "side_passed": self.side_passed,
            "distance_to_goal": d,
            "path_length": self.path,
            "spl": (1.6 / max(1.6, self.path)) if success else 0.0,
            "bottle_in_view": True,
            "robot_xy": self.xy.tolist(),
            "scene": self.scene,
            "seed": self.seed,
            "renderer": "fake",
        }

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64).ravel()
        if a.shape not in ((2,), (3,)) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be 2 finite numbers, got {a.tolist()}")
        direction = a[:2]
        norm = np.hypot(*direction)
        move = (direction / norm * STEP_M) if norm > 0.15 else np.zeros(2)
        self.xy = self.xy + move
        self.path += float(np.hypot(*move))
        self.t += 1
        box_c, box_h = np.array(self.layout["box_center"]), np.array(self.layout["box_half_extents"])
        if (
            np.all(np.abs(self.xy - box_c) <= box_h + ROBOT_RADIUS_M)
            or abs(self.xy[1]) > 0.9 - ROBOT_RADIUS_M
        ):
            self.collided = True
        if self.side_passed == "none" and self.xy[0] > box_c[0]:
            self.side_passed = "left" if self.xy[1] > box_c[1] else "right"
        terminated = self.collided
        truncated = not terminated and self.t >= self.max_steps
        return self._obs(), 0.0, terminated, truncated, self._info(final=terminated or truncated)

    def render(self) -> np.ndarray:
        w, h = self.image_size
        frame = np.zeros((h, 2 * w + 1, 3), np.uint8)  # odd width on purpose: the writer pads
        frame[:, :w] = self._obs()["image"]
        px = int(np.clip(self.xy[0] / 2.4 * (w - 1), 0, w - 1)) + w + 1
        py = int(np.clip((0.9 - self.xy[1]) / 1.8 * (h - 1), 0, h - 1))
        frame[py, px] = (255, 0, 0)
        return frame

    def close(self) -> None:
        self.closed = True


def make_fake_env(cell: Any, config: Any) -> FakeCorridorEnv:
    size = tuple(config.scene.image_size) if config.scene.image_size else (32, 18)
    return FakeCorridorEnv(cell.side, cell.lighting, cell.distance, size, config.scene.max_steps or 17)


class _Base:
    name = "fake"

    def reset(self, instruction: str) -> None:
        self.side = "left" if "left" in instruction else "right"
        self.t = 0

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name}


class CorePolicy(_Base):
    """Replays the real ``core`` key sequence of the instructed side, with seeded noise."""

    name = "core"

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        keys = CORE_KEY_SEQUENCES[self.side]
        key = keys[min(self.t, len(keys) - 1)]
        if self.rng.random() < 0.2:
            key = "QE"[self.rng.integers(2)]
        self.t += 1
        return np.asarray(KEY_ACTIONS[key][:2], np.float32)


class NanPolicy(_Base):
    name = "nan"

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        self.t += 1
        return np.array([np.nan, 0.0], np.float32) if self.t == 3 else np.array([1.15, 0.0], np.float32)


class RaisingPolicy(_Base):
    name = "raising"

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        raise RuntimeError("model exploded")


def core_policy(env: Any, seed: int) -> CorePolicy:
    return CorePolicy(seed)


def nan_policy(env: Any, seed: int) -> NanPolicy:
    return NanPolicy()


def raising_policy(env: Any, seed: int) -> RaisingPolicy:
    return RaisingPolicy()
