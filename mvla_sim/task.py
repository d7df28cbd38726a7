"""The navigation task: which side of the box the robot passed, the goal zone, success, SPL, and
the one taxonomy of episode outcomes (:data:`OUTCOMES`, :func:`episode_outcome`) that the env's
``info``, ``eval.rollout`` and ``eval.replay`` all use."""

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

    def near_goal(self, goal_radius: float, min_distance: float) -> bool:
        """In front of the bottle and within the goal distances, whether or not it is in view."""
        return self.in_front and min_distance <= self.distance_to_goal <= goal_radius

    def in_goal_zone(self, goal_radius: float, min_distance: float) -> bool:
        return self.bottle_in_view and self.near_goal(goal_radius, min_distance)


OUTCOMES: tuple[str, ...] = (
    "success",
    "collision",
    "box_not_passed",
    "wrong_side",
    "bottle_not_in_view",
    "goal_not_reached",
)
"""How an episode that ran to its end is judged, first match wins: ``success``; ``collision``
(touched the box, the bottle or a wall); ``box_not_passed`` (never crossed the box's centre
line); ``wrong_side`` (passed the box on the side the instruction did not name);
``bottle_not_in_view`` (in front of the bottle and within the goal distances, but the camera does
not see it); ``goal_not_reached`` (anything else: ended outside the goal zone)."""

TIMEOUT_OUTCOMES: tuple[str, ...] = ("box_not_passed", "goal_not_reached")
"""Failures that are time-outs: the horizon ran out before the goal (no collision, no wrong side)."""


def episode_outcome(
    *,
    success: bool,
    collided: bool,
    side_passed: str,
    instructed_side: str,
    near_goal: bool,
    bottle_in_view: bool,
) -> str:
    """The outcome (one of :data:`OUTCOMES`) of an episode that ended in this state."""
    if success:
        return "success"
    if collided:
        return "collision"
    if side_passed == "none":
        return "box_not_passed"
    if side_passed != instructed_side:
        return "wrong_side"
    if near_goal and not bottle_in_view:
        return "bottle_not_in_view"
    return "goal_not_reached"


def outcome_from_info(info: dict, instructed_side: str | None = None) -> str:
    """The outcome of a finished episode from its final ``info``: the env's own ``info["outcome"]``
    when present, else judged by :func:`episode_outcome` from the info's fields (for envs that
    report ``is_success``, ``collided``, ``side_passed``, ``near_goal`` and ``bottle_in_view``)."""
    if info.get("outcome"):
        return str(info["outcome"])
    return episode_outcome(
        success=bool(info.get("is_success")),
        collided=bool(info.get("collided")),
        side_passed=str(info.get("side_passed") or "none"),
        instructed_side=str(instructed_side or info.get("instructed_side")),
        near_goal=bool(info.get("near_goal")),
        bottle_in_view=bool(info.get("bottle_in_view", True)),
    )


def rectangle_corners(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """Corners (N, 4, 2), counter-clockwise, of rectangles with half extents (hx, hy) at poses (m, m, rad)."""
    x, y, yaw = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (x, y, yaw))
    local = np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]])
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    return np.stack(
        [x[:, None] + c * local[:, 0] - s * local[:, 1], y[:, None] + s * local[:, 0] + c * local[:, 1]],
        axis=-1,
    )


def _points_to_segments(points: np.ndarray, seg_a: np.ndarray, seg_b: np.ndarray) -> np.ndarray:
    """Distances (N, P, S) from points (N, P, 2) to segments (N, S, 2) - (N, S, 2)."""
    d = seg_b - seg_a
    rel = points[:, :, None, :] - seg_a[:, None, :, :]
    t = np.clip(np.sum(rel * d[:, None], axis=-1) / np.sum(d * d, axis=-1)[:, None], 0.0, 1.0)
    closest = seg_a[:, None] + t[..., None] * d[:, None]
    return np.linalg.norm(points[:, :, None, :] - closest, axis=-1)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Separating-axis test for convex quadrilaterals (N, 4, 2): True where they overlap."""
    overlap = np.ones(a.shape[0], dtype=bool)
    for poly in (a, b):
        for i in range(2):
            edge = poly[:, i + 1] - poly[:, i]
            axis = np.stack([-edge[:, 1], edge[:, 0]], axis=-1)
            pa, pb = np.einsum("npk,nk->np", a, axis), np.einsum("npk,nk->np", b, axis)
            overlap &= (pa.max(1) > pb.min(1)) & (pb.max(1) > pa.min(1))
    return overlap


def rectangle_clearance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gap (m, N) between convex quadrilaterals ``a`` and ``b`` (N, 4, 2); 0 where they overlap."""
    b = np.broadcast_to(b, a.shape)
    gaps = np.minimum(
        _points_to_segments(a, b, np.roll(b, -1, axis=1)).min(axis=(1, 2)),
        _points_to_segments(b, a, np.roll(a, -1, axis=1)).min(axis=(1, 2)),
    )
    return np.where(_overlap(a, b), 0.0, gaps)


def footprint_clearances(
    spec: SceneSpec, layout: Layout, x: np.ndarray, y: np.ndarray, yaw: np.ndarray
) -> dict[str, float]:
    """Smallest gap (m) between the robot's footprint at the given poses and the box, the bottle
    and the walls (side and end walls), over all the poses: the clearance a path kept.

    Exact for the footprints as drawn from above (rectangles and the bottle's circle); the box
    and bottle are taller than the robot's wheels, so the gap from above is the physical one.
    """
    rhx, rhy = spec.robot.half_extents_m[:2]
    robot = rectangle_corners(x, y, yaw, rhx, rhy)
    hx, hy = spec.box.half_extents_m[:2]
    box = rectangle_corners(*layout.box_center, layout.box_yaw, hx, hy)
    cor = spec.corridor
    bottle = np.asarray(layout.bottle_xy)
    rel = bottle - np.stack([np.atleast_1d(x), np.atleast_1d(y)], axis=-1)
    c, s = np.cos(np.atleast_1d(yaw)), np.sin(np.atleast_1d(yaw))
    local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], axis=-1)
    outside = np.maximum(np.abs(local) - np.array([rhx, rhy]), 0.0)
    return {
        "box": float(rectangle_clearance(robot, box).min()),
        "bottle": float(np.linalg.norm(outside, axis=-1).min() - spec.bottle.radius_m),
        "wall": float(
            min(
                cor.half_width_m - robot[..., 1].max(),
                robot[..., 1].min() + cor.half_width_m,
                cor.x_max_m - robot[..., 0].max(),
                robot[..., 0].min() - cor.x_min_m,
            )
        ),
    }
