"""``MobileVLAEnv``: the corridor navigation task of the real Mobile VLA robot as a Gymnasium env."""

from __future__ import annotations

import io
import math
import os
import string
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces
from pybullet_utils import bullet_client

from mvla_sim.appearance import Appearance, load_appearance
from mvla_sim.camera import RENDERERS, Camera, camera_pose
from mvla_sim.facts import (
    ACTION_HIGH,
    ACTION_LOW,
    EPISODE_ACTIONS,
    INSTRUCTIONS,
    KEY_ACTIONS,
    KEY_PRESS_DURATION_S,
    LIGHTINGS,
    MOVE_KEYS,
    OBSTACLE_DISTANCES,
    SIDES,
)
from mvla_sim.robot import DRIVE_MODELS, OmniBase, body_velocity
from mvla_sim.scene import DEFAULT_SCENE, Layout, load_scene_spec, sample_layout
from mvla_sim.task import (
    GoalCheck,
    SideTracker,
    episode_outcome,
    footprint_clearances,
    shortest_path_length,
    spl,
)
from mvla_sim.topdown import TopDownMap, side_by_side
from mvla_sim.world import CorridorWorld

INSTRUCTION_CHARSET = frozenset(string.ascii_letters + string.digits + " .,'-")
DEFAULT_IMAGE_SIZE = (256, 144)
RENDER_HEIGHT = 360
VIEW_TARGET_HEIGHT = 0.6
"""The bottle counts as in view when this fraction of its height (its label) is in the view."""


ENV_OPTIONS: tuple[str, ...] = (
    "side",
    "lighting",
    "obstacle_distance",
    "randomize",
    "randomization",
    "image_size",
    "drive_model",
    "throttle_percent",
    "max_steps",
    "terminate_on_success",
    "renderer",
    "lens_distortion",
    "render_mode",
    "scene_spec",
    "appearance",
)
"""The keyword arguments of :class:`MobileVLAEnv`."""


class MobileVLAEnv(gym.Env):
    """
    ## Description

    The real Mobile VLA task in a simulated corridor: an omni-wheel (holonomic) base must drive
    around a grey parcel box lying across the corridor, on the side named by the instruction
    (left or right), and stop in front of a dark beverage bottle with a green cap that stands
    behind the box. The scene recreates the real one (by default a speckled terrazzo floor, white
    walls with a black baseboard, a cable on the floor) and its evening lighting. Every number
    lives in the scene spec ``assets/scenes/corridor_1box.json`` together with its reason; the look
    (textures, colours, lights, camera response) in an appearance (``assets/appearance/``).

    ## Action Space

    ``Box(-1.15, 1.15, (2,), float32)``: the data's ``[linear_x, linear_y]`` (a 3-vector with
    ``angular_z`` is accepted). One step is one real key press: the base drives for 0.4 s, stops,
    then the frame is taken. Values outside the range are clipped; a wrong shape or a non-finite
    value raises ``ValueError``.

    | Num | Action   | Unit        | Sign               | Teleop key |
    |-----|----------|-------------|--------------------|------------|
    | 0   | linear_x | data (±1.15) | + forward         | W / S      |
    | 1   | linear_y | data (±1.15) | + strafe left     | A / D      |
    | (2) | angular_z | data (±1.15) | + counter-clockwise | R / T (unused in the data) |

    Drive models: ``throttle`` (default, the real motor driver: only the direction
    ``atan2(linear_y, linear_x)`` counts and the base moves at the calibrated speed of that
    direction at 50 % throttle: forward (W/S) 0.391 m/s, strafe (A/D) 0.334 m/s, diagonal (Q/E/Z/C)
    0.320 m/s, interpolated in between, i.e. 0.156 / 0.134 / 0.128 m per key press) and
    ``velocity`` (proportional: ``linear_x / 1.15`` of the forward speed, ``linear_y / 1.15`` of the
    strafe speed). Both first apply the real robot client's rule, whatever produced the action: it
    stops unless ``|linear_x|`` or ``|linear_y|`` exceeds 0.1, and drives toward the heading rounded
    toward zero to whole degrees, so (0.12, 0) is a whole W press and (0.1, 0.05) does nothing. The speeds, like the scene's dimensions, are
    fitted to the teleoperators' real key sequences (see Calibration below).

    ## Observation Space

    ``Dict``:

    | Key         | Space                           | Meaning |
    |-------------|---------------------------------|---------|
    | image       | ``Box(0, 255, (H, W, 3), uint8)`` | RGB frame of the forward camera, 16:9 like the real 1280x720 CSI camera (default 256x144) |
    | instruction | ``Text(256)``                   | the exact instruction string of the real data |

    ## Rewards

    Sparse: 1.0 on the final step of a successful episode, else 0.0. The task is evaluated by
    ``info["is_success"]``, not by return.

    ## Starting State

    The base starts on the corridor's centre line facing +x, with the box ``obstacle_distance``
    ahead (close 0.984 m, medium 1.234 m, far 1.384 m to its centre) and the bottle 1.684 m behind
    the box. ``randomize=True`` (default) draws the start pose, box and bottle poses, camera
    pitch, drive speed, light and colours from ``self.np_random`` within the ``randomization``
    setting: ``"default"`` stays within the real set-up's repeatability (start and box +-3 cm,
    start yaw +-1 deg, box yaw +-3 deg, bottle +-5 cm, pitch +-2 deg, speed +-3 %); ``"hard"``
    goes beyond it (+-5 cm / +-3 deg, box +-8 x 6 cm / +-5 deg, bottle +-8 cm, pitch +-3 deg, speed
    +-10 %). The same seed gives the same frames, bit for bit. ``reset(options={"nominal": True})``
    (or ``{"randomization": "none" | "default" | "hard"}``) changes the setting for that episode
    alone, e.g. to replay a real episode from the nominal layout.

    ## Episode End

    - Termination: the base touches the box, the bottle or a wall (``info["collided"]``).
    - Termination (only with ``terminate_on_success=True``): the success rule holds.
    - Truncation: ``max_steps`` actions (default 17, the real protocol: 18 frames). The ids are
      registered with ``max_episode_steps=17``; ``mvla_sim.make_env(..., max_steps=N)`` sets both.

    ## Success rule

    ``info["is_success"]`` is judged when the episode ends (on the final step; ``False`` before):
    no collision; the box passed on the instructed side (the side on which the base's centre
    crossed the box's centre line, ``info["side_passed"]``); and the base in the goal zone: its
    centre within 1.484 m of the bottle (and at least 0.15 m), in front of it, with the bottle
    inside the camera's field of view (3 deg margin) and not occluded. ``info["spl"]`` weights
    success by the shortest path around the instructed side (taut-string approximation);
    ``info["min_clearance_m"]`` is the smallest gap kept to the box, the bottle or a wall
    (``info["min_clearance_to"]``). When the episode ends, ``info["outcome"]`` says how it is
    judged, one of ``mvla_sim.task.OUTCOMES`` (``success``, ``collision``, ``box_not_passed``,
    ``wrong_side``, ``bottle_not_in_view``, ``goal_not_reached``; ``None`` before the end).

    ## Calibration

    The teleoperators' nine accepted key sequences (``mvla_sim.facts.REAL_KEY_SEQUENCES``), each
    a real demonstration that ended in front of the bottle, replayed open-loop from the nominal
    start, all succeed in their own scene, by day and in the evening, and pass the box on the
    wrong side of the mirrored scene; 17 forward presses collide with the box. The drive speeds,
    corridor width, box and bottle placement and size, goal radius (and the start offset, field
    of view and pitch, which kept their priors) were fitted by ``scripts/fit_calibration.py`` so
    that every such constraint holds with at least 0.10 m to spare (clearances; room inside the
    goal radius and the field of view; the start and every pose level with the box outside the
    goal zone). The goal radius is large because the real sequences end 1.1-1.4 m from the
    bottle and up to 0.95 m to its side. ``python -m eval.replay`` prints the table.

    ## Arguments

    | Argument | Default | Meaning |
    |----------|---------|---------|
    | side | from the id | ``"left"`` or ``"right"``: the side on which to pass the box |
    | lighting | from the id | ``"day"`` or ``"evening"`` |
    | obstacle_distance | ``"medium"`` | ``"close"``, ``"medium"`` or ``"far"`` |
    | randomize | ``True`` | domain randomization of poses, light, colours, camera pitch, speed |
    | randomization | ``"default"`` | ``"default"`` (the real set-up's repeatability), ``"hard"`` (wider) or ``"none"`` (nominal) |
    | image_size | ``(256, 144)`` | observation (width, height) in pixels |
    | drive_model | ``"throttle"`` | ``"throttle"`` or ``"velocity"`` |
    | throttle_percent | ``50.0`` | throttle of the real driver, 10-100 % |
    | max_steps | ``17`` | actions before truncation; through ``gym.make`` pass ``max_episode_steps`` too (the id's TimeLimit is 17), or use ``mvla_sim.make_env(..., max_steps=N)`` |
    | terminate_on_success | ``False`` | end the episode as soon as the success rule holds |
    | renderer | ``"tiny"`` | ``"tiny"`` (CPU TinyRenderer) or ``"egl"`` (GPU, where it loads) |
    | lens_distortion | the appearance's | barrel distortion (0 pinhole; 0.1-0.3 mild) overriding the appearance's |
    | render_mode | ``None`` | ``"rgb_array"``: camera view beside a top-down map with the path |
    | scene_spec | bundled | path of a scene spec JSON |
    | appearance | ``"default"`` | what the renderer shows: a JSON path, a bundled name (``"default"``, ``"v0_tiles"``) or a dict (``mvla_sim.appearance``); geometry stays the scene spec's |

    ```python
    >>> import gymnasium as gym
    >>> import mvla_sim
    >>> env = gym.make("MobileVLA-1BoxLeft-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs["image"].shape, obs["instruction"][-11:]
    ((144, 256, 3), 'on the left')
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> env.close()

    ```

    ## Version History

    - v0: initial release; calibrated to every real key sequence (speeds per key direction,
      fitted scene, ``randomization`` settings, ``min_clearance_m``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2.5}

    def __init__(
        self,
        side: str = "left",
        lighting: str = "day",
        *,
        obstacle_distance: str = "medium",
        randomize: bool = True,
        randomization: str = "default",
        image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
        drive_model: str = "throttle",
        throttle_percent: float = 50.0,
        max_steps: int = EPISODE_ACTIONS,
        terminate_on_success: bool = False,
        renderer: str = "tiny",
        lens_distortion: float | None = None,
        render_mode: str | None = None,
        scene_spec: str | Path = DEFAULT_SCENE,
        appearance: str | Path | dict | Appearance | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(
                f"unknown MobileVLAEnv option(s) {sorted(unknown)}; valid options are {', '.join(ENV_OPTIONS)}"
            )
        width, height = check_env_options(
            side=side,
            lighting=lighting,
            obstacle_distance=obstacle_distance,
            drive_model=drive_model,
            renderer=renderer,
            image_size=image_size,
            throttle_percent=throttle_percent,
            max_steps=max_steps,
            lens_distortion=lens_distortion,
        )
        _check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))

        self.appearance = load_appearance(appearance)  # its lights replace the spec's; geometry stays
        self.spec_scene = replace(load_scene_spec(scene_spec), lighting=self.appearance.lighting)
        _check_choice("randomization", randomization, ("none", *self.spec_scene.randomization))
        self.side, self.lighting, self.obstacle_distance = side, lighting, obstacle_distance
        self.randomize = bool(randomize) and randomization != "none"
        self.randomization = randomization if self.randomize else "none"
        self.drive_model = drive_model
        self.throttle_percent = float(throttle_percent)
        self.max_steps = int(max_steps)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode = render_mode
        self.instruction = INSTRUCTIONS[side]
        self.variant = f"{side}-{lighting}-{obstacle_distance}"

        self.observation_space, self.action_space = _spaces(width, height)
        self._build_world(width, height, renderer, lens_distortion)
        self.layout: Layout | None = None
        self._seed: int | None = None

    def _build_world(self, width: int, height: int, renderer: str, lens_distortion: float | None) -> None:
        """This env's own PyBullet client with the corridor, the robot, the camera (and the map);
        ``lens_distortion`` None takes the appearance's."""
        lens = self.appearance.camera.lens_distortion if lens_distortion is None else float(lens_distortion)
        with _quiet_stdout():  # PyBullet's C code prints "argv[0]=" on every DIRECT connect
            self._client = bullet_client.BulletClient(connection_mode=p.DIRECT)
        self._client.configureDebugVisualizer(p.COV_ENABLE_GUI, 0)
        self.world = CorridorWorld(self._client, self.spec_scene, self.appearance)
        self.robot = OmniBase(self._client, self.spec_scene.robot, self.spec_scene.drive)
        self.camera = Camera(
            self._client,
            self.spec_scene.robot,
            width,
            height,
            renderer,
            lens,
            self.appearance.camera,
        )
        self._map = TopDownMap(self.spec_scene, RENDER_HEIGHT) if self.render_mode == "rgb_array" else None

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._seed = seed
        randomization = self._reset_randomization(options)
        self.layout = sample_layout(
            self.spec_scene,
            self.side,
            self.lighting,
            self.obstacle_distance,
            self.np_random,
            randomization if randomization != "none" else False,
        )
        self.world.place(self.layout)
        self.robot.reset(*self.layout.start_xy, self.layout.start_yaw)
        self._tracker = SideTracker()
        self._tracker.update(self.layout, *self.layout.start_xy)
        self._path = [tuple(self.layout.start_xy)]
        self._path_length = 0.0
        self._steps = 0
        self._actions: list[tuple[float, float]] = []
        self._collided = False
        self._clearance = {"box": math.inf, "bottle": math.inf, "wall": math.inf}
        self._update_clearance([(*self.layout.start_xy, self.layout.start_yaw)])
        self._shortest = shortest_path_length(self.spec_scene, self.layout)
        self._obs_image = self._render_camera()
        info = self._info(done=False)
        info["layout"] = self.layout.to_info(self.spec_scene)
        return self._obs(), info

    def step(self, action):
        if self.layout is None:
            raise RuntimeError("call reset() before step()")
        command = self._validate_action(action)
        motion = self.robot.drive_for(
            command,
            KEY_PRESS_DURATION_S,
            self.world.bodies.obstacles,
            self.drive_model,
            self.throttle_percent,
            self.layout.speed_scale,
        )
        for x, y in motion.waypoints:
            self._tracker.update(self.layout, x, y)
        yaw = self.robot.pose.yaw
        self._update_clearance([(x, y, yaw) for x, y in motion.waypoints])
        if motion.collided:
            bodies = self.world.bodies
            hit = {bodies.box: "box", bodies.bottle: "bottle"}.get(motion.collided_with, "wall")
            self._clearance[hit] = 0.0
        self._actions.append((float(command[0]), float(command[1])))
        self._path_length += motion.distance_m
        self._path.append((self.robot.pose.x, self.robot.pose.y))
        self._steps += 1
        self._collided = motion.collided
        self._obs_image = self._render_camera()
        goal = self._goal_check()
        success_now = self._success(goal)
        terminated = self._collided or (self.terminate_on_success and success_now)
        truncated = not terminated and self._steps >= self.max_steps
        done = terminated or truncated
        info = self._info(done=done, goal=goal, success=success_now and done)
        reward = 1.0 if info["is_success"] else 0.0
        return self._obs(), reward, terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self.layout is None:
            raise RuntimeError("call reset() before render()")
        pose = (self.robot.pose.x, self.robot.pose.y, self.robot.pose.yaw)
        return side_by_side(self._obs_image, self._map.draw(self.layout, self._path, pose))

    def close(self):
        if getattr(self, "_client", None) is not None:
            try:
                self._client.disconnect()
            except p.error:
                pass
            self._client = None
        super().close()

    # -- appearance: what the renderer shows (for fitting it to real frames) ----------------------
    def set_appearance(self, appearance: str | Path | dict | Appearance) -> None:
        """Render with ``appearance`` from the next frame on: colours, lights and camera response.

        Textures, texture repeats and tape marks are built into the world: an appearance that
        changes them needs a new env (``ValueError`` says so). The lens becomes the appearance's
        (also over an explicit ``lens_distortion``). The current episode's layout keeps its
        sampled light direction and jitter.
        """
        new = load_appearance(appearance)
        self.world.apply_colors(new)
        self.appearance = new
        self.spec_scene = replace(self.spec_scene, lighting=new.lighting)
        self.camera.set_response(new.camera)
        self.camera.set_lens(new.camera.lens_distortion)

    def view_from(self, x: float, y: float, yaw: float) -> np.ndarray:
        """The camera frame from base pose (x m, y m, yaw rad) in this episode's layout; the
        episode's robot, path and outcome are left as they were."""
        if self.layout is None:
            raise RuntimeError("call reset() before view_from()")
        lay, light = self.layout, self.spec_scene.lighting[self.lighting]
        pose = camera_pose(x, y, yaw, lay.camera_pitch_deg, self.spec_scene.robot)
        raw = self.camera.render_raw(pose, light, lay.light_direction, lay.light_scale)
        return self.camera.sensor(raw, light, lay.light_scale, lay.color_scale, self.np_random)

    # -- privileged state, for the scripted expert and for evaluation ----------------------------
    def scene_state(self) -> dict[str, Any]:
        """Ground-truth state (privileged): layout, robot pose (m, rad), steps taken and remaining."""
        if self.layout is None:
            raise RuntimeError("call reset() before scene_state()")
        return {
            "layout": self.layout.to_info(self.spec_scene),
            "robot_pose": [self.robot.pose.x, self.robot.pose.y, self.robot.pose.yaw],
            "robot_half_extents": list(self.spec_scene.robot.half_extents_m[:2]),
            "key_steps_m": self.key_steps_m(),
            "camera": {
                "hfov_deg": self.spec_scene.robot.camera_hfov_deg,
                "vfov_deg": self.camera.vfov_deg,
                "height_m": self.spec_scene.robot.camera_height_m,
                "forward_offset_m": self.spec_scene.robot.camera_forward_offset_m,
                "pitch_deg": self.layout.camera_pitch_deg,
            },
            "success": {
                "goal_radius_m": self.spec_scene.success.goal_radius_m,
                "min_goal_distance_m": self.spec_scene.success.min_goal_distance_m,
                "view_margin_deg": self.spec_scene.success.view_margin_deg,
                "view_target_height_m": self.spec_scene.bottle.height_m * VIEW_TARGET_HEIGHT,
            },
            "action_history": [list(a) for a in self._actions],
            "steps_taken": self._steps,
            "steps_left": self.max_steps - self._steps,
            "side_passed": self._tracker.side_passed,
        }

    def key_steps_m(self) -> dict[str, tuple[float, float]]:
        """Body-frame displacement (m) of one press of each movement key in this episode.

        What the drive model does with each key for 0.4 s, including this episode's speed scale
        (privileged: a teleoperator learns it by driving).
        """
        if self.layout is None:
            raise RuntimeError("call reset() before key_steps_m()")
        steps = {}
        for key in MOVE_KEYS:
            vx, vy, _ = body_velocity(
                np.asarray(KEY_ACTIONS[key]),
                self.drive_model,
                self.spec_scene.drive,
                self.throttle_percent,
                self.layout.speed_scale,
            )
            steps[key] = (vx * KEY_PRESS_DURATION_S, vy * KEY_PRESS_DURATION_S)
        return steps

    # -- internals -------------------------------------------------------------------------------
    def _reset_randomization(self, options: dict[str, Any] | None) -> str:
        """This episode's randomization: the env's, or ``options["randomization"]`` for one reset
        (``"none"`` gives the nominal layout; ``options={"nominal": True}`` says the same)."""
        options = dict(options or {})
        unknown = sorted(set(options) - {"randomization", "nominal"})
        if unknown:
            raise ValueError(
                f"reset(options=...) got unknown key(s) {unknown}; valid keys are 'randomization' "
                "('none', 'default', 'hard') and 'nominal' (True: the nominal layout)"
            )
        if options.get("nominal"):
            return "none"
        level = options.get("randomization", self.randomization)
        _check_choice("options['randomization']", level, ("none", *self.spec_scene.randomization))
        return level

    def _validate_action(self, action) -> np.ndarray:
        arr = np.asarray(action, dtype=np.float64)
        if arr.shape not in ((2,), (3,)):
            raise ValueError(
                f"action must have shape (2,) [linear_x, linear_y] or (3,) [linear_x, linear_y, angular_z], "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action must be finite, got {arr.tolist()} (NaN or inf)")
        arr = np.clip(arr, ACTION_LOW, ACTION_HIGH)
        return arr if arr.shape == (3,) else np.append(arr, 0.0)

    def _render_camera(self) -> np.ndarray:
        return self.view_from(self.robot.pose.x, self.robot.pose.y, self.robot.pose.yaw)

    def _update_clearance(self, poses: list[tuple[float, float, float]]) -> None:
        if not poses:
            return
        x, y, yaw = (np.asarray(v) for v in zip(*poses, strict=True))
        for name, gap in footprint_clearances(self.spec_scene, self.layout, x, y, yaw).items():
            self._clearance[name] = min(self._clearance[name], gap)

    def _goal_check(self) -> GoalCheck:
        lay, s = self.layout, self.spec_scene
        bx, by = lay.bottle_xy
        rx, ry = self.robot.pose.x, self.robot.pose.y
        pose = camera_pose(rx, ry, self.robot.pose.yaw, lay.camera_pitch_deg, s.robot)
        target = np.array([bx, by, s.bottle.height_m * VIEW_TARGET_HEIGHT])
        in_view = self.camera.point_in_view(pose, target, s.success.view_margin_deg)
        if in_view:
            hit = self._client.rayTest(list(pose.eye), target.tolist())[0][0]
            in_view = hit == self.world.bodies.bottle
        dx = bx - rx
        c, sn = math.cos(lay.box_yaw), math.sin(lay.box_yaw)
        return GoalCheck(
            distance_to_goal=float(math.hypot(dx, by - ry)),
            in_front=bool(c * dx + sn * (by - ry) > s.bottle.radius_m),
            bottle_in_view=bool(in_view),
        )

    def _success(self, goal: GoalCheck) -> bool:
        sc = self.spec_scene.success
        return (
            not self._collided
            and self._tracker.side_passed == self.side
            and goal.in_goal_zone(sc.goal_radius_m, sc.min_goal_distance_m)
        )

    def _info(self, done: bool, goal: GoalCheck | None = None, success: bool = False) -> dict[str, Any]:
        goal = goal or self._goal_check()
        sc = self.spec_scene.success
        near_goal = goal.near_goal(sc.goal_radius_m, sc.min_goal_distance_m)
        outcome = None
        if done:
            outcome = episode_outcome(
                success=success,
                collided=self._collided,
                side_passed=self._tracker.side_passed,
                instructed_side=self.side,
                near_goal=near_goal,
                bottle_in_view=goal.bottle_in_view,
            )
        return {
            "is_success": bool(success),
            "outcome": outcome,
            "in_goal_zone": near_goal and goal.bottle_in_view,
            "near_goal": near_goal,
            "collided": self._collided,
            "side_passed": self._tracker.side_passed,
            "instructed_side": self.side,
            "distance_to_goal": goal.distance_to_goal,
            "path_length": self._path_length,
            "shortest_path_length": self._shortest,
            "spl": spl(success, self._shortest, self._path_length),
            "bottle_in_view": goal.bottle_in_view,
            "min_clearance_m": min(self._clearance.values()),
            "min_clearance_to": min(self._clearance, key=self._clearance.get),
            "robot_xy": [self.robot.pose.x, self.robot.pose.y],
            "robot_yaw": self.robot.pose.yaw,
            "steps": self._steps,
            "scene": self.variant,
            "lighting": self.lighting,
            "obstacle_distance": self.obstacle_distance,
            "seed": self._seed,
            "randomization": self.randomization,
            "renderer": self.camera.renderer,
            "appearance": self.appearance.name,
            "drive_model": self.drive_model,
        }

    def _obs(self) -> dict[str, Any]:
        return {"image": self._obs_image, "instruction": self.instruction}


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence C-level writes to the process's stdout (file descriptor 1) for a moment."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        yield
        return
    sys.stdout.flush()
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _spaces(width: int, height: int) -> tuple[spaces.Dict, spaces.Box]:
    """The observation space (the camera frame and the instruction) and the action space."""
    observation = spaces.Dict(
        {
            "image": spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8),
            "instruction": spaces.Text(max_length=256, min_length=1, charset=INSTRUCTION_CHARSET),
        }
    )
    return observation, spaces.Box(ACTION_LOW, ACTION_HIGH, shape=(2,), dtype=np.float32)


def check_env_options(
    *,
    side: str,
    lighting: str,
    obstacle_distance: str,
    drive_model: str,
    renderer: str,
    image_size: Any,
    throttle_percent: float,
    max_steps: int,
    lens_distortion: float | None,
) -> tuple[int, int]:
    """Check the env's options (``ValueError`` naming the bad one and the valid values); returns
    the image size as ``(width, height)``. The env and :class:`mvla_sim.make.SceneDescription`
    (and so every command line that builds envs) check with this one function."""
    _check_choice("side", side, SIDES)
    _check_choice("lighting", lighting, LIGHTINGS)
    _check_choice("obstacle_distance", obstacle_distance, OBSTACLE_DISTANCES)
    _check_choice("drive_model", drive_model, DRIVE_MODELS)
    _check_choice("renderer", renderer, RENDERERS)
    if not 10.0 <= float(throttle_percent) <= 100.0:
        raise ValueError(
            f"throttle_percent={throttle_percent!r} must be within 10-100 (the real driver's range)"
        )
    if int(max_steps) < 1:
        raise ValueError(f"max_steps={max_steps!r} must be a positive number of actions")
    if lens_distortion is not None and not 0.0 <= float(lens_distortion) <= 1.0:
        raise ValueError(f"lens_distortion={lens_distortion!r} must be within [0, 1] (0.1-0.2 is mild)")
    return _check_image_size(image_size)


def _check_choice(name: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {list(valid)}")


def _check_image_size(image_size: Any) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size={image_size!r} must be (width, height) in pixels, e.g. (256, 144)"
        ) from None
    if width < 16 or height < 9 or width > 1280 or height > 720:
        raise ValueError(f"image_size={image_size!r} must be between (16, 9) and (1280, 720) pixels")
    return width, height
