"""Top-down map of the corridor with the robot's path, and the side-by-side frame for videos."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from mvla_sim.scene import Layout, SceneSpec

_FLOOR = (205, 205, 200)
_GRID = (185, 185, 180)
_WALL = (40, 40, 45)
_BOX = (150, 120, 80)
_BOTTLE = (30, 120, 40)
_GOAL = (120, 200, 120)
_PATH = (30, 90, 200)
_ROBOT = (200, 50, 50)


class TopDownMap:
    """Draws the corridor seen from above, forward (x) pointing up and left (+y) to the left."""

    def __init__(self, spec: SceneSpec, height_px: int) -> None:
        self.spec = spec
        cor = spec.corridor
        self.margin = 8
        self.scale = (height_px - 2 * self.margin) / (cor.x_max_m - cor.x_min_m)
        width = int(round(2 * cor.half_width_m * self.scale)) + 2 * self.margin
        self.size = (width + width % 2, height_px)

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        cor = self.spec.corridor
        return (
            self.margin + (cor.half_width_m - y) * self.scale,
            self.margin + (cor.x_max_m - x) * self.scale,
        )

    def draw(
        self, layout: Layout, path: list[tuple[float, float]], pose: tuple[float, float, float]
    ) -> np.ndarray:
        s, cor = self.spec, self.spec.corridor
        img = Image.new("RGB", self.size, (255, 255, 255))
        d = ImageDraw.Draw(img)
        d.rectangle(
            [*self.to_px(cor.x_max_m, cor.half_width_m), *self.to_px(cor.x_min_m, -cor.half_width_m)],
            fill=_FLOOR,
            outline=_WALL,
            width=2,
        )
        t = cor.tile_size_m
        for gx in np.arange(math.ceil(cor.x_min_m / t) * t, cor.x_max_m, t):
            d.line([self.to_px(gx, cor.half_width_m), self.to_px(gx, -cor.half_width_m)], fill=_GRID)
        for gy in np.arange(-cor.half_width_m + t, cor.half_width_m, t):
            d.line([self.to_px(cor.x_min_m, gy), self.to_px(cor.x_max_m, gy)], fill=_GRID)
        bx, by = layout.bottle_xy
        r = s.success.goal_radius_m
        gx0, gy0 = self.to_px(bx + r, by + r)
        gx1, gy1 = self.to_px(bx - r, by - r)
        d.pieslice([gx0, gy0, gx1, gy1], start=90, end=270, outline=_GOAL, fill=None, width=2)
        d.polygon(self._rect(layout.box_center, s.box.half_extents_m[:2], layout.box_yaw), fill=_BOX)
        cx, cy = self.to_px(bx, by)
        br = max(3.0, s.bottle.radius_m * self.scale)
        d.ellipse([cx - br, cy - br, cx + br, cy + br], fill=_BOTTLE)
        if len(path) > 1:
            d.line([self.to_px(x, y) for x, y in path], fill=_PATH, width=2)
        d.polygon(self._rect(pose[:2], s.robot.half_extents_m[:2], pose[2]), outline=_ROBOT, width=2)
        hx, hy = self.to_px(pose[0] + 0.25 * math.cos(pose[2]), pose[1] + 0.25 * math.sin(pose[2]))
        d.line([self.to_px(pose[0], pose[1]), (hx, hy)], fill=_ROBOT, width=2)
        return np.asarray(img)

    def _rect(self, center, half, yaw) -> list[tuple[float, float]]:
        c, s = math.cos(yaw), math.sin(yaw)
        pts = []
        for u, v in ((half[0], half[1]), (-half[0], half[1]), (-half[0], -half[1]), (half[0], -half[1])):
            pts.append(self.to_px(center[0] + c * u - s * v, center[1] + s * u + c * v))
        return pts


def side_by_side(camera: np.ndarray, top_down: np.ndarray) -> np.ndarray:
    """Camera view (scaled to the map's height, nearest neighbour) beside the map; even sizes."""
    h = top_down.shape[0]
    scale = h / camera.shape[0]
    w = int(round(camera.shape[1] * scale))
    w += w % 2
    cam = np.asarray(Image.fromarray(camera).resize((w, h), Image.NEAREST))
    return np.concatenate([cam, top_down], axis=1)
