"""The omni-wheel (holonomic) base: its collision body, its drive models and its kinematic motion.

The base is moved kinematically along the commanded path in small sub-steps, and PyBullet's
collision detection is queried at each sub-step: the motion is exact, deterministic and cheap,
and a collision stops the base at the last free pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from mvla_sim.facts import CLIENT_DEAD_ZONE, KEY_ACTION_VALUE, client_command
from mvla_sim.scene import DriveSpec, RobotSpec

DRIVE_MODELS: tuple[str, ...] = ("throttle", "velocity")


@dataclass
class Pose2D:
    """Base pose in the corridor frame: x forward (m), y left (m), yaw counter-clockwise (rad)."""

    x: float
    y: float
    yaw: float

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.yaw])


@dataclass(frozen=True)
class MotionResult:
    """What one key press did: the path travelled, and whether (and with what) it collided."""

    distance_m: float
    collided: bool
    collided_with: int | None
    waypoints: list[tuple[float, float]]


def body_velocity(
    action: np.ndarray, drive_model: str, drive: DriveSpec, throttle_percent: float, speed_scale: float
) -> tuple[float, float, float]:
    """Map an action [linear_x, linear_y, angular_z] (data units) to body velocities (m/s, m/s, rad/s).

    Every action first passes the real robot client (:func:`mvla_sim.facts.client_command`): it
    stops unless ``|linear_x|`` or ``|linear_y|`` exceeds 0.1, else keeps only the direction,
    rounded toward zero to whole degrees. ``throttle`` (the real motor driver) then drives that
    direction at its calibrated speed (forward, diagonal and strafe speeds of the scene spec,
    interpolated in between), scaled by the throttle; ``velocity`` (proportional, not the real
    driver) drives ``linear_x / 1.15`` of the forward speed and ``linear_y / 1.15`` of the strafe
    speed. ``angular_z`` (never sent by the real client) turns at the spec's yaw rate when its
    magnitude exceeds the same dead zone.
    """
    lx, ly, az = (float(v) for v in action)
    scale = throttle_percent / drive.throttle_percent * speed_scale
    direction = client_command(lx, ly)
    wz = math.copysign(drive.yaw_rate_radps, az) if abs(az) > CLIENT_DEAD_ZONE else 0.0
    if drive_model not in DRIVE_MODELS:
        raise ValueError(f"drive_model={drive_model!r} is not valid; choose one of {list(DRIVE_MODELS)}")
    if direction is None:
        return 0.0, 0.0, wz
    if drive_model == "throttle":
        speed = drive.speed_mps(math.atan2(direction[1], direction[0])) * scale
        return speed * direction[0], speed * direction[1], wz
    return (
        lx / KEY_ACTION_VALUE * drive.forward_speed_mps * scale,
        ly / KEY_ACTION_VALUE * drive.strafe_speed_mps * scale,
        wz,
    )


class OmniBase:
    """The robot: a box collision body moved kinematically; owns its pose, nothing about the task."""

    def __init__(self, client, robot: RobotSpec, drive: DriveSpec) -> None:
        self.client = client
        self.spec = robot
        self.drive = drive
        half = list(robot.half_extents_m)
        collision = client.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        visual = client.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=[0.15, 0.15, 0.17, 1.0])
        self.body = client.createMultiBody(0, collision, visual, basePosition=[0, 0, half[2] + 0.02])
        self.pose = Pose2D(0.0, 0.0, 0.0)
        self._reach = math.hypot(*robot.half_extents_m[:2]) + 0.01

    def reset(self, x: float, y: float, yaw: float) -> None:
        self.pose = Pose2D(x, y, yaw)
        self._sync()

    def _sync(self) -> None:
        z = self.spec.half_extents_m[2] + 0.02
        q = (0.0, 0.0, math.sin(self.pose.yaw / 2), math.cos(self.pose.yaw / 2))
        self.client.resetBasePositionAndOrientation(self.body, [self.pose.x, self.pose.y, z], q)

    def _contact(self, obstacles: list[tuple[int, np.ndarray, np.ndarray]]) -> int | None:
        reach = self._reach
        x, y = self.pose.x, self.pose.y
        for body, lo, hi in obstacles:
            if x + reach < lo[0] or x - reach > hi[0] or y + reach < lo[1] or y - reach > hi[1]:
                continue
            if self.client.getClosestPoints(self.body, body, 0.0):
                return body
        return None

    def drive_for(
        self,
        action: np.ndarray,
        duration_s: float,
        obstacles: list[int],
        drive_model: str,
        throttle_percent: float,
        speed_scale: float,
    ) -> MotionResult:
        """Drive with ``action`` for ``duration_s`` then stop; stop early at the first contact."""
        vx, vy, wz = body_velocity(action, drive_model, self.drive, throttle_percent, speed_scale)
        speed = math.hypot(vx, vy)
        turn_arc = abs(wz) * duration_s * max(self.spec.half_extents_m[:2])
        travel = speed * duration_s
        n = max(1, math.ceil(max(travel, turn_arc) / self.drive.substep_m))
        dt = duration_s / n
        waypoints: list[tuple[float, float]] = []
        moved = 0.0
        if travel == 0.0 and wz == 0.0:
            return MotionResult(0.0, False, None, waypoints)
        boxes = [(b, *(np.asarray(v) for v in self.client.getAABB(b))) for b in obstacles]
        for _ in range(n):
            prev = Pose2D(self.pose.x, self.pose.y, self.pose.yaw)
            c, s = math.cos(self.pose.yaw), math.sin(self.pose.yaw)
            self.pose = Pose2D(
                self.pose.x + (c * vx - s * vy) * dt,
                self.pose.y + (s * vx + c * vy) * dt,
                self.pose.yaw + wz * dt,
            )
            self._sync()
            hit = self._contact(boxes)
            if hit is not None:
                self.pose = prev
                self._sync()
                return MotionResult(moved, True, hit, waypoints)
            moved += speed * dt
            waypoints.append((self.pose.x, self.pose.y))
        return MotionResult(moved, False, None, waypoints)
