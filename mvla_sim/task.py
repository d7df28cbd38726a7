"""The navigation task: which side of the box the robot passed, the goal zone, success and SPL."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mvla_sim.scene import Layout, SceneSpec


def to_box_frame(layout: Layout, x: float, y: float) -> tuple[float, float]:
    """A corridor-frame point in the box's frame (x along the corridor through the box, y left)."""
    bx, by = layout.box_center
    c, s = math.cos(-layout.box_yaw), math.sin(-layout.box_yaw)
    dx, dy = x - bx, y - by
    return c * dx - s * dy, s * dx + c * dy


@dataclass
class SideTracker:
    """Records the side on which the robot's centre crossed the box's centre line (x = box x)."""

    side_passed: str = "none"
    _prev: tuple[float, float] | None = field(default=None, repr=False)

    def update(self, layout: Layout, x: float, y: float) -> None:
        bx, by = to_box_frame(layout, x, y)
        if self._prev is not None and self.side_passed == "none" and self._prev[0] < 0.0 <= bx:
            px, py = self._prev
            t = -px / (bx - px)
            y_cross = py + t * (by - py)
            self.side_passed = "left" if y_cross > 0 else "right"
        self._prev = (bx, by)


def shortest_path_length(spec: SceneSpec, layout: Layout) -> float:
    """Length (m) of the taut-string path from the start around the box's instructed side to the goal zone.

    The box is inflated by the robot's half-diagonal; the path goes start -> near corner -> far
    corner (both on the instructed side) -> the nearest point of the goal disc. An approximation
    of the geodesic that is exact for the nominal scene's convex geometry and used only for SPL.
    """
    rhx, rhy = spec.robot.half_extents_m[:2]
    pad = math.hypot(rhx, rhy)
    hx, hy = spec.box.half_extents_m[:2]
    sign = 1.0 if layout.side == "left" else -1.0
    c, s = math.cos(layout.box_yaw), math.sin(layout.box_yaw)
    bx, by = layout.box_center

    def corner(u: float) -> np.ndarray:
        v = sign * (hy + pad)
        return np.array([bx + c * u - s * v, by + s * u + c * v])

    start = np.asarray(layout.start_xy)
    near, far = corner(-(hx + pad)), corner(hx + pad)
    bottle = np.asarray(layout.bottle_xy)
    to_goal = float(np.linalg.norm(bottle - far)) - spec.success.goal_radius_m
    return float(np.linalg.norm(near - start) + np.linalg.norm(far - near) + max(0.0, to_goal))


def spl(success: bool, shortest_m: float, path_m: float) -> float:
    """Success weighted by path length (Anderson et al. 2018): S * l / max(p, l)."""
    if not success:
        return 0.0
    return float(shortest_m / max(path_m, shortest_m))


@dataclass(frozen=True)
class GoalCheck:
    distance_to_goal: float
    in_front: bool
    bottle_in_view: bool

    def in_goal_zone(self, goal_radius: float, min_distance: float) -> bool:
        return self.in_front and self.bottle_in_view and min_distance <= self.distance_to_goal <= goal_radius
