"""The scripted expert: a privileged controller that drives like the teleoperators.

It reads the simulator's ground truth through ``env.unwrapped.scene_state()`` (so it needs the
env, unlike learned policies) and presses the teleoperators' keys. Like them it follows a *guide*:
one of the real key sequences of its scene (``mvla_sim.facts.REAL_KEY_SEQUENCES``), drawn per
episode in proportion to the real episode counts by default. Before each key press it checks,
with the drive's key steps and the scene's geometry, that the rest of its plan still ends in the
goal zone with every margin at least ``margin_m``; when it does not (a shifted box, a slower base,
a key pressed by mistake), it re-plans with the teleoperators' own pattern (forward, strafe
toward the instructed side, diagonals, forward, a final diagonal) and the same keys, choosing
the plan that stays closest to its guide, key for key. So:

- noise-free, in the nominal scene, it presses its guide sequence exactly (a real sequence);
- in randomized scenes it presses the guide while it still works, else the nearest correction;
- after an injected random key (``noise``) it recovers from wherever that key led.

How often it succeeds and how often it presses a real sequence, noise-free and at
``train.generate``'s default noise, is measured in the README's calibration section.

Margins are measured as in ``scripts/fit_calibration.py``: clearances to the box, the bottle and
the walls along the path, and at the end the distance left inside the goal radius and how far
the bottle could move before leaving the camera's view.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from mvla_sim.facts import (
    EPISODE_ACTIONS,
    KEY_ACTION_VALUE,
    KEY_ACTIONS,
    MOVE_KEYS,
    STOP_CHAR,
    key_char_of_action,
    key_of_char,
    real_key_sequences,
    side_of_instruction,
)

GUIDES: tuple[str, ...] = ("weighted", "most_common")
"""Ways to choose the guide sequence: drawn in proportion to the real episode counts, or the most
frequent real sequence of the scene; a 17-key string names one directly."""

KEYS: str = "".join(MOVE_KEYS) + STOP_CHAR
"""Planner key alphabet: the eight movement keys, then ``_`` for the space bar (stop)."""

SAMPLES_PER_PRESS = 4
"""Points per key press at which a plan's clearances are checked (4 cm apart at most)."""

REPLAN_TOLERANCE_M = 1e-6

TELEOP_KEYS: str = "".join(sorted({k for s in real_key_sequences() for k in s.keys}, key=MOVE_KEYS.index))
"""The keys the teleoperators pressed in the real sequences: W, Q, A, D, E (never a backward key)."""

NOISE_KEYS: dict[str, str] = {"teleop": TELEOP_KEYS, "all": "".join(MOVE_KEYS)}
"""Key pools of the injected noise: the teleoperators' keys (default) or all eight movement keys."""


@dataclass(frozen=True)
class ExpertConfig:
    """Settings of the scripted expert.

    Attributes:
        mode: ``"keys"`` (the 8 teleoperation directions, as in the real data) or
            ``"continuous"`` (the same plan, but each action heads for the plan's waypoint two
            presses ahead, cutting corners at any angle; keys are kept where that is not safe).
        guide: ``"weighted"`` (default: a real sequence of the scene drawn per episode in
            proportion to its real episode count), ``"most_common"``, or a 17-key string.
        margin_m: the margin (m) every plan must keep: clearance to box, bottle and walls, and
            room inside the goal zone and the field of view at the end. At most the calibrated
            scene's smallest margin (0.10 m), so that the real sequences are followed there.
        noise: probability, per key press, of replacing the chosen action by a random key
            (noise injection for data generation, DART-style); the expert recovers afterwards.
            The final press is never replaced: nothing could show a recovery from it.
        noise_keys: the keys noise presses: ``"teleop"`` (default: the keys the teleoperators
            pressed, W Q A D E, so generated data holds no key the real data lacks) or ``"all"``
            (the eight movement keys, backward ones included).
    """

    mode: str = "keys"
    guide: str = "weighted"
    margin_m: float = 0.08
    noise: float = 0.0
    noise_keys: str = "teleop"

    def __post_init__(self) -> None:
        if self.mode not in ("keys", "continuous"):
            raise ValueError(f"mode={self.mode!r} is not valid; choose 'keys' or 'continuous'")
        if self.guide not in GUIDES and (
            len(self.guide) != EPISODE_ACTIONS or any(k not in KEY_ACTIONS for k in self.guide)
        ):
            raise ValueError(
                f"guide={self.guide!r} is not valid; choose one of {list(GUIDES)} or a string of "
                f"{EPISODE_ACTIONS} keys among {''.join(MOVE_KEYS)}"
            )
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise={self.noise!r} must be a probability in [0, 1]")
        if self.noise_keys not in NOISE_KEYS:
            raise ValueError(f"noise_keys={self.noise_keys!r} is not valid; choose one of {list(NOISE_KEYS)}")
        if not 0.0 <= self.margin_m <= 0.5:
            raise ValueError(f"margin_m={self.margin_m!r} must be within [0, 0.5] metres")


class ScriptedExpert:
    """Privileged expert with the policy contract (``reset(instruction)``, ``act(obs)``)."""

    name = "expert"

    def __init__(self, env: Any, config: ExpertConfig | None = None, seed: int = 0) -> None:
        self.env = env.unwrapped
        self.config = config or ExpertConfig()
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.guide: str | None = None
        self.last_key: str | None = None
        self._plan: Plan | None = None

    def reset(self, instruction: str) -> None:
        """Start an episode: choose the guide sequence of the instructed side."""
        side = side_of_instruction(instruction)
        choices = real_key_sequences(side)
        if self.config.guide == "weighted":
            counts = np.array([s.episodes for s in choices], dtype=float)
            self.guide = choices[int(self._rng.choice(len(choices), p=counts / counts.sum()))].keys
        elif self.config.guide == "most_common":
            self.guide = max(choices, key=lambda s: s.episodes).keys
        else:
            self.guide = self.config.guide
        self.last_key = None
        self._plan = None

    def settings(self) -> dict[str, Any]:
        return {"policy": "scripted_expert", "privileged": True, **self.config.__dict__, "seed": self._seed}

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        state = self.env.scene_state()
        if self.guide is None:
            self.reset(obs["instruction"])
        noisy = self.config.noise > 0 and self._rng.random() < self.config.noise
        if noisy and state["steps_left"] > 1:
            pool = NOISE_KEYS[self.config.noise_keys]
            key = pool[int(self._rng.integers(len(pool)))]
            self.last_key = key
            return np.asarray(KEY_ACTIONS[key][:2], dtype=np.float32)
        plan = self._current_plan(state)
        key = plan.keys[0]
        self.last_key = key_of_char(key)
        if self.config.mode == "continuous" and len(plan.keys) >= 2 and STOP_CHAR not in plan.keys[:2]:
            action = self._corner_cut(state, plan)
            if action is not None:
                self.last_key = None
                return action
        return np.asarray(KEY_ACTIONS[self.last_key][:2], dtype=np.float32)

    # -- planning --------------------------------------------------------------------------------
    def _current_plan(self, state: dict[str, Any]) -> Plan:
        x, y, _ = state["robot_pose"]
        plan = self._plan
        if (
            plan is not None
            and len(plan.keys) == state["steps_left"]
            and math.hypot(plan.start[0] - x, plan.start[1] - y) <= REPLAN_TOLERANCE_M
        ):
            self._plan = plan.advance()
            return plan
        plan = make_plan(state, self.guide or "", self.config.margin_m)
        self._plan = plan.advance()
        return plan

    def _corner_cut(self, state: dict[str, Any], plan: Plan) -> np.ndarray | None:
        x, y, yaw = state["robot_pose"]
        tx, ty = plan.waypoints[2]
        dx, dy = tx - x, ty - y
        c, s = math.cos(-yaw), math.sin(-yaw)
        bx, by = c * dx - s * dy, s * dx + c * dy
        if math.hypot(bx, by) < 1e-9:
            return None
        action = np.asarray([bx, by]) * (KEY_ACTION_VALUE / max(abs(bx), abs(by)))
        return action.astype(np.float32)


@dataclass(frozen=True)
class Plan:
    """A key plan from ``start`` (m): its keys, waypoints after each press, and its margin (m)."""

    keys: str
    start: tuple[float, float]
    waypoints: tuple[tuple[float, float], ...]
    margin_m: float

    def advance(self) -> Plan | None:
        """The plan after its first key is pressed as planned."""
        if len(self.keys) <= 1:
            return None
        return Plan(self.keys[1:], self.waypoints[1], self.waypoints[1:], self.margin_m)


@lru_cache(maxsize=64)
def candidate_plans(length: int, side: str, stops: int) -> np.ndarray:
    """Key plans of ``length`` presses in the teleoperators' pattern, as indices into ``KEYS``.

    The pattern of every real sequence: forward (W), a strafe toward the instructed side (A/D,
    up to 2), diagonals toward it (Q/E), another strafe (up to 1),
    forward, then a final run of diagonals toward or away from that side; ``stops`` space-bar
    presses end it (beyond the real protocol's 17 presses).
    """
    strafe, toward, away = ("A", "Q", "E") if side == "left" else ("D", "E", "Q")
    moves = length - stops
    plans = set()
    for first_strafe, second_strafe, tail_key in itertools.product((0, 1, 2), (0, 1), (toward, away)):
        free = moves - first_strafe - second_strafe
        if free < 0:
            continue
        for w1 in range(free + 1):
            for diag in range(free + 1 - w1):
                for tail in range(free + 1 - w1 - diag):
                    w2 = free - w1 - diag - tail
                    plans.add(
                        "W" * w1
                        + strafe * first_strafe
                        + toward * diag
                        + strafe * second_strafe
                        + "W" * w2
                        + tail_key * tail
                        + STOP_CHAR * stops
                    )
    index = {k: i for i, k in enumerate(KEYS)}
    return np.array([[index[k] for k in p] for p in sorted(plans)], dtype=np.int8).reshape(-1, length)


def make_plan(state: dict[str, Any], guide: str, margin_m: float) -> Plan:
    """The plan for the rest of the episode (see the module docstring for how it is chosen)."""
    lay = state["layout"]
    side = lay["side"]
    taken, left = state["steps_taken"], state["steps_left"]
    history = "".join(key_char_of_action(a) for a in state["action_history"])
    if left <= 0:
        raise RuntimeError("the episode has no key press left to plan")
    protocol_left = max(EPISODE_ACTIONS - taken, 0)
    if protocol_left > 0:
        length, stops = min(left, protocol_left), 0
        plans = candidate_plans(length, side, stops)
    else:  # beyond the real protocol: short corrections, then stop
        length = min(left, 6)
        plans = np.concatenate([candidate_plans(length, side, n) for n in range(length + 1)])
    margins, waypoints = evaluate_plans(state, plans)

    full = np.array([[KEYS.index(k) if k in KEYS else -1 for k in history]] * len(plans), dtype=np.int16)
    full = np.concatenate([full, plans.astype(np.int16)], axis=1)
    guide_idx = np.array([KEYS.index(k) for k in guide], dtype=np.int16)
    n = min(full.shape[1], len(guide_idx))
    distance = np.sum(full[:, :n] != guide_idx[:n], axis=1) + np.sum(
        full[:, n:] != KEYS.index(STOP_CHAR), axis=1
    )

    feasible = margins > 0
    good = margins >= margin_m
    if good.any():
        order = np.lexsort((-margins, np.where(good, distance, 10**6)))
    elif feasible.any():
        order = np.argsort(-np.where(feasible, margins, -np.inf), kind="stable")
    else:
        order = np.argsort(-margins, kind="stable")
    best = int(order[0])
    keys = "".join(KEYS[i] for i in plans[best])
    if length < left:
        keys += STOP_CHAR * (left - length)
        pad = [tuple(waypoints[best, -1])] * (left - length)
    else:
        pad = []
    points = [tuple(map(float, p)) for p in waypoints[best]] + pad
    return Plan(keys, points[0], tuple(points), float(margins[best]))


def evaluate_plans(state: dict[str, Any], plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest margin (m) of each plan (N,), negative when it fails, and its waypoints (N, L+1, 2).

    The margin of a plan is the smallest of: its clearance to the box, the bottle and the walls
    along the path; and at its end the room left inside the goal radius, from the bottle's
    minimum distance, in front of the bottle, and inside the field of view (horizontal and
    vertical, as the distance the bottle could move before leaving it). A plan that crosses the
    box's centre line on the wrong side (or never) scores -1.
    """
    waypoints, dense = _plan_points(state, plans)
    px, py = dense[..., 0], dense[..., 1]
    box_gap, (u, v) = _box_gap(state, px, py)
    margins = np.minimum.reduce(
        [box_gap, *_wall_and_bottle_gaps(state, px, py), *_end_margins(state, waypoints)]
    )
    lay = state["layout"]
    sign = 1.0 if lay["side"] == "left" else -1.0
    passed = state["side_passed"]
    if passed == "none":
        crossed = u >= 0.0
        first = np.argmax(crossed, axis=1)
        at_cross = v[np.arange(len(plans)), first]
        side_ok = crossed.any(axis=1) & (sign * at_cross > 0)
    else:
        side_ok = np.full(len(plans), passed == lay["side"])
    return np.where(side_ok, margins, np.minimum(margins, -1.0)), waypoints


def _plan_points(state: dict[str, Any], plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each plan's waypoints after every press (N, L+1, 2) and its path sampled densely (N, M, 2)."""
    x0, y0, yaw = state["robot_pose"]
    c, s = math.cos(yaw), math.sin(yaw)
    steps = np.zeros((len(KEYS), 2))
    for i, key in enumerate(KEYS[:-1]):
        bx, by = state["key_steps_m"][key]
        steps[i] = (c * bx - s * by, s * bx + c * by)
    disp = steps[plans]  # (N, L, 2)
    waypoints = np.concatenate(
        [np.broadcast_to([x0, y0], (len(plans), 1, 2)), np.array([x0, y0]) + np.cumsum(disp, axis=1)], axis=1
    )
    t = np.linspace(0.0, 1.0, SAMPLES_PER_PRESS, endpoint=False)
    dense = (waypoints[:, :-1, None, :] + disp[:, :, None, :] * t[None, None, :, None]).reshape(
        len(plans), -1, 2
    )
    return waypoints, np.concatenate([dense, waypoints[:, -1:]], axis=1)


def _box_gap(
    state: dict[str, Any], px: np.ndarray, py: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Clearance (m) of each path to the box (the robot's footprint as its bounding box in the
    box's frame), and the path points in the box's frame (u along, v across)."""
    lay = state["layout"]
    _, _, yaw = state["robot_pose"]
    rhx, rhy = state["robot_half_extents"]
    cx, cy = lay["box_center"]
    byaw = lay["box_yaw"]
    cb, sb = math.cos(byaw), math.sin(byaw)
    u, v = cb * (px - cx) + sb * (py - cy), -sb * (px - cx) + cb * (py - cy)
    rel = yaw - byaw
    hx, hy = lay["box_half_extents"]
    ex = hx + rhx * abs(math.cos(rel)) + rhy * abs(math.sin(rel))
    ey = hy + rhx * abs(math.sin(rel)) + rhy * abs(math.cos(rel))
    return _rect_gap(np.abs(u) - ex, np.abs(v) - ey).min(axis=1), (u, v)


def _robot_half_widths(state: dict[str, Any]) -> tuple[float, float]:
    """Half extents (m) of the robot's footprint along the world's x and y."""
    _, _, yaw = state["robot_pose"]
    rhx, rhy = state["robot_half_extents"]
    c, s = math.cos(yaw), math.sin(yaw)
    return rhx * abs(c) + rhy * abs(s), rhx * abs(s) + rhy * abs(c)


def _wall_and_bottle_gaps(state: dict[str, Any], px: np.ndarray, py: np.ndarray) -> list[np.ndarray]:
    """Clearance (m) of each path to the corridor walls and to the bottle."""
    lay = state["layout"]
    wx, wy = _robot_half_widths(state)
    wall_gap = lay["corridor_half_width"] - wy - np.abs(py).max(axis=1)
    ox, oy = lay["bottle_xy"]
    bottle_gap = (_rect_gap(np.abs(ox - px) - wx, np.abs(oy - py) - wy) - lay["bottle_radius"]).min(axis=1)
    return [wall_gap, bottle_gap]


def _end_margins(state: dict[str, Any], waypoints: np.ndarray) -> list[np.ndarray]:
    """At each plan's end (m): room inside the goal radius, beyond the minimum distance, in front of
    the bottle, and inside the camera's horizontal and vertical field of view."""
    lay, succ, cam = state["layout"], state["success"], state["camera"]
    _, _, yaw = state["robot_pose"]
    c, s = math.cos(yaw), math.sin(yaw)
    cb, sb = math.cos(lay["box_yaw"]), math.sin(lay["box_yaw"])
    ox, oy = lay["bottle_xy"]
    xe, ye = waypoints[:, -1, 0], waypoints[:, -1, 1]
    dist = np.hypot(ox - xe, oy - ye)
    goal = succ["goal_radius_m"] - dist
    near = dist - succ["min_goal_distance_m"]
    front = cb * (ox - xe) + sb * (oy - ye) - lay["bottle_radius"]
    pitch = math.radians(cam["pitch_deg"])
    margin = math.radians(succ["view_margin_deg"])
    eye_x, eye_y = xe + c * cam["forward_offset_m"], ye + s * cam["forward_offset_m"]
    rx, ry, rz = ox - eye_x, oy - eye_y, succ["view_target_height_m"] - cam["height_m"]
    depth = (rx * c + ry * s) * math.cos(pitch) + rz * math.sin(pitch)
    lateral = -rx * s + ry * c
    vertical = -(rx * c + ry * s) * math.sin(pitch) + rz * math.cos(pitch)
    view_h = depth * math.tan(math.radians(cam["hfov_deg"]) / 2 - margin) - np.abs(lateral)
    view_v = depth * math.tan(math.radians(cam["vfov_deg"]) / 2 - margin) - np.abs(vertical)
    return [goal, near, front, view_h, view_v]


def _rect_gap(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Signed distance from per-axis gaps to an axis-aligned rectangle (negative inside)."""
    outside = np.hypot(np.maximum(dx, 0.0), np.maximum(dy, 0.0))
    return np.where((dx > 0) | (dy > 0), outside, np.maximum(dx, dy))
