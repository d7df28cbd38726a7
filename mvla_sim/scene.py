"""Scene specs (``assets/scenes/*.json``) as typed dataclasses, and per-episode layout sampling."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mvla_sim.facts import LIGHTINGS, OBSTACLE_DISTANCES, SIDES

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
SCENES_DIR = ASSETS_DIR / "scenes"
TEXTURES_DIR = ASSETS_DIR / "textures"
DEFAULT_SCENE = SCENES_DIR / "corridor_1box.json"


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names - {"why"})
    if unknown:
        raise ValueError(f"scene spec {where}: unknown keys {unknown}; valid keys are {sorted(names)}")
    missing = sorted(f.name for f in fields(cls) if f.name not in data and f.default is f.default_factory)
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"scene spec {where}: {exc} (missing: {missing})") from None


@dataclass(frozen=True)
class CorridorSpec:
    half_width_m: float
    x_min_m: float
    x_max_m: float
    wall_height_m: float
    tile_size_m: float
    baseboard_height_m: float


@dataclass(frozen=True)
class CableSpec:
    points_xy_m: tuple
    radius_m: float
    color_rgb: tuple


@dataclass(frozen=True)
class BoxSpec:
    half_extents_m: tuple
    color_rgb: tuple


@dataclass(frozen=True)
class BottleSpec:
    radius_m: float
    height_m: float
    cap_radius_m: float
    cap_height_m: float
    color_rgb: tuple
    cap_color_rgb: tuple
    gap_behind_box_m: float


@dataclass(frozen=True)
class RobotSpec:
    half_extents_m: tuple
    camera_height_m: float
    camera_forward_offset_m: float
    camera_pitch_deg: float
    camera_hfov_deg: float
    camera_near_m: float
    camera_far_m: float


@dataclass(frozen=True)
class StartSpec:
    """The robot's nominal start: on the box's near side, ``lateral_offset_m`` left of the centre line."""

    lateral_offset_m: float


@dataclass(frozen=True)
class DriveSpec:
    """The drive: speeds per key direction at ``throttle_percent`` (m/s) and yaw rate (the dead zone
    is the robot client's, :data:`mvla_sim.facts.CLIENT_DEAD_ZONE`)."""

    forward_speed_mps: float
    strafe_speed_mps: float
    diagonal_speed_mps: float
    throttle_percent: float
    yaw_rate_radps: float
    substep_m: float

    def speed_mps(self, heading_rad: float) -> float:
        """Base speed (m/s) at ``throttle_percent`` for a body-frame heading atan2(linear_y, linear_x).

        The three fitted key-direction speeds are exact at the keys' headings: forward/backward
        (W/S, 0 and 180 deg), diagonal (Q/E/Z/C, +-45 and +-135 deg) and strafe (A/D, +-90 deg);
        headings in between interpolate linearly in angle. Backward runs like forward.
        """
        phi = abs(math.atan2(math.sin(heading_rad), math.cos(heading_rad)))
        phi = min(phi, math.pi - phi)
        quarter = math.pi / 4
        if phi <= quarter:
            t = phi / quarter
            return (1 - t) * self.forward_speed_mps + t * self.diagonal_speed_mps
        t = (phi - quarter) / quarter
        return (1 - t) * self.diagonal_speed_mps + t * self.strafe_speed_mps


@dataclass(frozen=True)
class SuccessSpec:
    goal_radius_m: float
    min_goal_distance_m: float
    view_margin_deg: float


@dataclass(frozen=True)
class LightingSpec:
    light_direction: tuple
    light_color: tuple
    ambient: float
    diffuse: float
    specular: float
    exposure: float
    white_balance_rgb: tuple
    sensor_noise_std: float
    shadow: bool


@dataclass(frozen=True)
class RandomizationSpec:
    """One randomization setting: symmetric ranges (+/- value) or [low, high] for scales."""

    start_xy_m: tuple
    start_yaw_deg: float
    box_xy_m: tuple
    box_yaw_deg: float
    bottle_xy_m: tuple
    camera_pitch_deg: float
    speed_scale: tuple
    light_scale: tuple
    light_direction_deg: float
    color_jitter: float
    texture_tint: float


RANDOMIZATIONS: tuple[str, ...] = ("default", "hard")
"""Named randomization settings of a scene spec: ``default`` stays within the real set-up's
repeatability, ``hard`` goes beyond it."""


@dataclass(frozen=True)
class SceneSpec:
    """A whole scene spec; see ``assets/scenes/corridor_1box.json`` for each number's reason."""

    name: str
    corridor: CorridorSpec
    cable: CableSpec
    box: BoxSpec
    bottle: BottleSpec
    obstacle_distance_m: dict[str, float]
    robot: RobotSpec
    start: StartSpec
    drive: DriveSpec
    success: SuccessSpec
    lighting: dict[str, LightingSpec]
    randomization: dict[str, RandomizationSpec]
    description: str = ""
    calibration: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> SceneSpec:
        parts = {
            "corridor": CorridorSpec,
            "cable": CableSpec,
            "box": BoxSpec,
            "bottle": BottleSpec,
            "robot": RobotSpec,
            "start": StartSpec,
            "drive": DriveSpec,
            "success": SuccessSpec,
        }
        required = [*parts, "name", "obstacle_distance_m", "lighting", "randomization"]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"scene spec {source}: missing sections {missing}")
        built = {k: _build(c, data[k], f"{source}:{k}") for k, c in parts.items()}
        distances = {k: float(v) for k, v in data["obstacle_distance_m"].items() if k != "why"}
        if sorted(distances) != sorted(OBSTACLE_DISTANCES):
            raise ValueError(
                f"scene spec {source}: obstacle_distance_m must define {list(OBSTACLE_DISTANCES)}, got {sorted(distances)}"
            )
        lighting = {k: _build(LightingSpec, v, f"{source}:lighting.{k}") for k, v in data["lighting"].items()}
        if sorted(lighting) != sorted(LIGHTINGS):
            raise ValueError(
                f"scene spec {source}: lighting must define {list(LIGHTINGS)}, got {sorted(lighting)}"
            )
        randomization = {
            k: _build(RandomizationSpec, v, f"{source}:randomization.{k}")
            for k, v in data["randomization"].items()
            if k != "why"
        }
        if sorted(randomization) != sorted(RANDOMIZATIONS):
            raise ValueError(
                f"scene spec {source}: randomization must define {list(RANDOMIZATIONS)}, got {sorted(randomization)}"
            )
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            obstacle_distance_m=distances,
            lighting=lighting,
            randomization=randomization,
            calibration=dict(data.get("calibration", {})),
            source=source,
            **built,
        )


@lru_cache(maxsize=8)
def load_scene_spec(path: str | Path = DEFAULT_SCENE) -> SceneSpec:
    """Load and validate a scene spec JSON file (cached per path)."""
    path = Path(path)
    if not path.is_file():
        available = sorted(p.name for p in SCENES_DIR.glob("*.json"))
        raise FileNotFoundError(f"scene spec {path} not found; specs shipped in {SCENES_DIR}: {available}")
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    return SceneSpec.from_dict(data, source=str(path))


@dataclass(frozen=True)
class Layout:
    """One episode's sampled world: poses in metres/radians, in the corridor frame (x fwd, y left)."""

    side: str
    lighting: str
    obstacle_distance: str
    randomization: str
    start_xy: tuple[float, float]
    start_yaw: float
    box_center: tuple[float, float]
    box_yaw: float
    bottle_xy: tuple[float, float]
    camera_pitch_deg: float
    speed_scale: float
    light_scale: float
    light_direction: tuple[float, float, float]
    color_scale: tuple[float, float, float]
    tint: tuple[float, float, float]

    def to_info(self, spec: SceneSpec) -> dict[str, Any]:
        """The layout as plain JSON-able data (``info["layout"]``), for maps and reports."""
        return {
            "side": self.side,
            "lighting": self.lighting,
            "obstacle_distance": self.obstacle_distance,
            "randomization": self.randomization,
            "corridor_half_width": spec.corridor.half_width_m,
            "corridor_length": spec.corridor.x_max_m - spec.corridor.x_min_m,
            "corridor_x_min": spec.corridor.x_min_m,
            "box_center": [float(v) for v in self.box_center],
            "box_half_extents": [float(v) for v in spec.box.half_extents_m[:2]],
            "box_yaw": float(self.box_yaw),
            "bottle_xy": [float(v) for v in self.bottle_xy],
            "bottle_radius": spec.bottle.radius_m,
            "goal_radius": spec.success.goal_radius_m,
            "start_xy": [float(v) for v in self.start_xy],
            "start_yaw": float(self.start_yaw),
            "camera_pitch_deg": float(self.camera_pitch_deg),
            "speed_scale": float(self.speed_scale),
        }


def sample_layout(
    spec: SceneSpec,
    side: str,
    lighting: str,
    obstacle_distance: str,
    rng: np.random.Generator,
    randomize: bool | str,
) -> Layout:
    """Draw an episode layout.

    ``randomize``: ``False`` gives the nominal scene (no draws are used); ``True`` or
    ``"default"`` draws within the spec's ``default`` ranges (the real set-up's repeatability);
    ``"hard"`` within its wider ``hard`` ranges.
    """
    if side not in SIDES:
        raise ValueError(f"side={side!r} is not valid; choose one of {list(SIDES)}")
    level = "default" if randomize is True else (randomize or "none")
    if level != "none" and level not in spec.randomization:
        raise ValueError(
            f"randomization={randomize!r} is not valid; choose one of {list(spec.randomization)} or False"
        )
    nominal = nominal_layout(spec, side, lighting, obstacle_distance)
    if level == "none":
        return nominal
    return _jittered(nominal, level, spec.randomization[level], rng)


def nominal_layout(spec: SceneSpec, side: str, lighting: str, obstacle_distance: str) -> Layout:
    """The layout of the marks on the floor: robot, box and bottle on the centre line, nothing drawn."""
    box_x = spec.obstacle_distance_m[obstacle_distance]
    return Layout(
        side=side,
        lighting=lighting,
        obstacle_distance=obstacle_distance,
        randomization="none",
        start_xy=(0.0, spec.start.lateral_offset_m),
        start_yaw=0.0,
        box_center=(box_x, 0.0),
        box_yaw=0.0,
        bottle_xy=(box_x + spec.bottle.gap_behind_box_m, 0.0),
        camera_pitch_deg=spec.robot.camera_pitch_deg,
        speed_scale=1.0,
        light_scale=1.0,
        light_direction=tuple(float(v) for v in spec.lighting[lighting].light_direction),
        color_scale=(1.0, 1.0, 1.0),
        tint=(1.0, 1.0, 1.0),
    )


def _jittered(nominal: Layout, level: str, r: RandomizationSpec, rng: np.random.Generator) -> Layout:
    """``nominal`` with every randomized quantity drawn from ``r``'s ranges (in a fixed draw order)."""

    def sym(half: float, n: int | None = None) -> Any:
        return rng.uniform(-half, half, size=n)

    start = np.array(nominal.start_xy) + sym(1.0, 2) * np.array(r.start_xy_m)
    box = np.array(nominal.box_center) + sym(1.0, 2) * np.array(r.box_xy_m)
    bottle = np.array(nominal.bottle_xy) + sym(1.0, 2) * np.array(r.bottle_xy_m)
    az = np.deg2rad(sym(r.light_direction_deg))
    rot = np.array([[np.cos(az), -np.sin(az), 0.0], [np.sin(az), np.cos(az), 0.0], [0.0, 0.0, 1.0]])
    direction = rot @ np.array(nominal.light_direction, dtype=float)
    return dataclasses.replace(
        nominal,
        randomization=level,
        start_xy=(float(start[0]), float(start[1])),
        start_yaw=float(np.deg2rad(sym(r.start_yaw_deg))),
        box_center=(float(box[0]), float(box[1])),
        box_yaw=float(np.deg2rad(sym(r.box_yaw_deg))),
        bottle_xy=(float(bottle[0]), float(bottle[1])),
        camera_pitch_deg=float(nominal.camera_pitch_deg + sym(r.camera_pitch_deg)),
        speed_scale=float(rng.uniform(*r.speed_scale)),
        light_scale=float(rng.uniform(*r.light_scale)),
        light_direction=tuple(float(v) for v in direction),
        color_scale=tuple(float(v) for v in 1.0 + sym(r.color_jitter, 3)),
        tint=tuple(float(v) for v in 1.0 + sym(r.texture_tint, 3)),
    )
