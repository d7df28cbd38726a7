"""The robot's forward camera: pose, projection, lighting and sensor model (exposure, noise, lens).

The sensor model's numbers come from the appearance (``mvla_sim.appearance``): exposure, white
balance and noise per lighting, then vignetting, blur, gamma, saturation, lens and JPEG.

Rendering uses PyBullet's CPU TinyRenderer by default (headless, bit-for-bit deterministic);
the EGL hardware renderer is optional where its plugin loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from mvla_sim.appearance import CameraResponse, jpeg_round_trip, tone, vignette_gain
from mvla_sim.scene import LightingSpec, RobotSpec

RENDERERS: tuple[str, ...] = ("tiny", "egl")


@dataclass(frozen=True)
class CameraPose:
    eye: tuple[float, float, float]
    forward: tuple[float, float, float]
    up: tuple[float, float, float]


def camera_pose(x: float, y: float, yaw: float, pitch_deg: float, robot: RobotSpec) -> CameraPose:
    """Camera pose for a base pose (m, m, rad) and a pitch (deg, negative looks down)."""
    pitch = math.radians(pitch_deg)
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    off = robot.camera_forward_offset_m
    eye = (x + cy * off, y + sy * off, robot.camera_height_m)
    forward = (cy * cp, sy * cp, sp)
    up = (-cy * sp, -sy * sp, cp)
    return CameraPose(eye, forward, up)


def vertical_fov_deg(hfov_deg: float, width: int, height: int) -> float:
    return math.degrees(2 * math.atan(math.tan(math.radians(hfov_deg) / 2) * height / width))


def barrel_map(width: int, height: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel indices for a mild barrel distortion that keeps the image corners fixed."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    norm = math.hypot(cx, cy)
    u, v = (xs - cx) / norm, (ys - cy) / norm
    r2 = u * u + v * v
    scale = (1 + strength * r2) / (1 + strength)
    src_x = np.clip(np.rint(cx + u * scale * norm), 0, width - 1).astype(np.intp)
    src_y = np.clip(np.rint(cy + v * scale * norm), 0, height - 1).astype(np.intp)
    return src_y, src_x


class Camera:
    """Renders the view of the base-mounted camera and applies the sensor model."""

    def __init__(
        self,
        client,
        robot: RobotSpec,
        width: int,
        height: int,
        renderer: str = "tiny",
        lens_distortion: float = 0.0,
        response: CameraResponse | None = None,
    ) -> None:
        if renderer not in RENDERERS:
            raise ValueError(f"renderer={renderer!r} is not valid; choose one of {list(RENDERERS)}")
        self.client = client
        self.robot = robot
        self.width, self.height = width, height
        self.renderer = renderer
        self.vfov_deg = vertical_fov_deg(robot.camera_hfov_deg, width, height)
        self.projection = client.computeProjectionMatrixFOV(
            self.vfov_deg, width / height, robot.camera_near_m, robot.camera_far_m
        )
        self._flag = p.ER_TINY_RENDERER
        if renderer == "egl":
            self._load_egl()
        self.set_lens(lens_distortion)
        self.set_response(response or CameraResponse())
        # Unit Gaussian noise, drawn once; each frame takes a window at an offset drawn from the
        # env's seeded generator (cheap, and reproducible like everything else).
        self._noise_bank = np.random.default_rng(0).standard_normal(4 * width * height * 3, dtype=np.float32)

    def set_lens(self, lens_distortion: float) -> None:
        """Barrel distortion strength (0 is a pinhole) from the next frame on."""
        self.lens_distortion = float(lens_distortion)
        self._barrel = (
            barrel_map(self.width, self.height, self.lens_distortion) if self.lens_distortion > 0 else None
        )

    def set_response(self, response: CameraResponse) -> None:
        """Use ``response`` (vignetting, blur, gamma, saturation, JPEG) from the next frame on."""
        self.response = response
        self._vignette = (
            vignette_gain(self.width, self.height, response.vignetting) if response.vignetting > 0 else None
        )

    def _load_egl(self) -> None:
        import pkgutil

        egl = pkgutil.get_loader("eglRenderer")
        plugin = -1
        if egl is not None:
            plugin = self.client.loadPlugin(egl.get_filename(), "_eglRendererPlugin")
        if plugin < 0:
            raise RuntimeError(
                "renderer='egl' requested but PyBullet's EGL plugin did not load "
                "(no GPU/EGL driver here); use renderer='tiny' (the CPU default)"
            )
        self._flag = p.ER_BULLET_HARDWARE_OPENGL

    def render_raw(
        self,
        pose: CameraPose,
        light: LightingSpec,
        light_direction: tuple,
        light_scale: float,
    ) -> np.ndarray:
        """The renderer's RGB image (uint8 H x W x 3) before the sensor model."""
        c = self.client
        target = [e + f for e, f in zip(pose.eye, pose.forward, strict=True)]
        view = c.computeViewMatrix(list(pose.eye), target, list(pose.up))
        color = [min(1.0, v * light_scale) for v in light.light_color]
        _, _, rgba, _, _ = c.getCameraImage(
            self.width,
            self.height,
            view,
            self.projection,
            lightDirection=list(light_direction),
            lightColor=color,
            lightAmbientCoeff=light.ambient,
            lightDiffuseCoeff=light.diffuse,
            lightSpecularCoeff=light.specular,
            shadow=int(light.shadow),
            renderer=self._flag,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[:, :, :3]

    def sensor(
        self,
        raw: np.ndarray,
        light: LightingSpec,
        light_scale: float,
        color_scale: tuple,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Exposure, white balance, colour jitter, the camera response (vignetting, blur, gamma,
        saturation), Gaussian sensor noise, the lens distortion and the JPEG round trip."""
        gain = np.asarray(light.white_balance_rgb) * np.asarray(color_scale) * light.exposure * light_scale
        img = raw.astype(np.float32)
        img *= gain.astype(np.float32)
        img = tone(img, self.response, self._vignette)
        if light.sensor_noise_std > 0:
            start = int(rng.integers(0, self._noise_bank.size - img.size))
            noise = self._noise_bank[start : start + img.size].reshape(img.shape)
            img += noise * np.float32(light.sensor_noise_std)
        np.clip(img, 0, 255, out=img)
        out = img.astype(np.uint8)
        if self._barrel is not None:
            out = out[self._barrel[0], self._barrel[1]]
        return jpeg_round_trip(out, self.response.jpeg_quality)

    def point_in_view(self, pose: CameraPose, point: np.ndarray, margin_deg: float) -> bool:
        """Whether a world point projects inside the field of view, ``margin_deg`` away from its edges."""
        f = np.asarray(pose.forward)
        up = np.asarray(pose.up)
        left = np.cross(up, f)
        d = np.asarray(point) - np.asarray(pose.eye)
        depth = float(d @ f)
        if depth <= self.robot.camera_near_m:
            return False
        h_angle = math.degrees(math.atan2(float(d @ left), depth))
        v_angle = math.degrees(math.atan2(float(d @ up), depth))
        return (
            abs(h_angle) <= self.robot.camera_hfov_deg / 2 - margin_deg
            and abs(v_angle) <= self.vfov_deg / 2 - margin_deg
        )
