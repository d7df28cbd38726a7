"""The static corridor world in PyBullet: floor, walls, baseboards, cable, parcel box and bottle.

Every call goes through the env's own ``BulletClient``, so several envs live in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from mvla_sim.scene import TEXTURES_DIR, Layout, SceneSpec


@dataclass
class WorldBodies:
    """PyBullet body ids of the scene; ``obstacles`` are the bodies the robot can collide with."""

    floor: int
    walls: list[int]
    box: int
    bottle: int
    cap: int
    cable: list[int]

    @property
    def obstacles(self) -> list[int]:
        return [self.box, self.bottle, *self.walls]


def _quat_yaw(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2)))


def _box_mesh(half: tuple) -> dict:
    """A box as a textured mesh: each side face shows the whole texture (tape band, label) upright."""
    hx, hy, hz = half
    faces = [  # (origin corner, u edge, v edge): outward normal = u x v
        ((-hx, hy, -hz), (0, -2 * hy, 0), (0, 0, 2 * hz)),  # front (-x), seen by the robot
        ((hx, -hy, -hz), (0, 2 * hy, 0), (0, 0, 2 * hz)),  # back (+x)
        ((-hx, -hy, -hz), (2 * hx, 0, 0), (0, 0, 2 * hz)),  # right (-y)
        ((hx, hy, -hz), (-2 * hx, 0, 0), (0, 0, 2 * hz)),  # left (+y)
        ((-hx, hy, hz), (0, -2 * hy, 0), (2 * hx, 0, 0)),  # top (+z)
    ]
    vertices, indices, uvs, normals = [], [], [], []
    for origin, u, v in faces:
        o, u, v = np.array(origin, float), np.array(u, float), np.array(v, float)
        n = np.cross(u, v)
        n /= np.linalg.norm(n)
        base = len(vertices)
        vertices += [o.tolist(), (o + u).tolist(), (o + u + v).tolist(), (o + v).tolist()]
        uvs += [[0, 1], [1, 1], [1, 0], [0, 0]]
        normals += [n.tolist()] * 4
        indices += [base, base + 1, base + 2, base, base + 2, base + 3]
    return {"vertices": vertices, "indices": indices, "uvs": uvs, "normals": normals}


class CorridorWorld:
    """Builds the corridor once per client; ``place`` moves the box and bottle for a new episode."""

    def __init__(self, client, spec: SceneSpec) -> None:
        self.client = client
        self.spec = spec
        self._textures = {
            name: client.loadTexture(str(TEXTURES_DIR / f"{name}.png"))
            for name in ("floor_tile", "wall", "cardboard", "bottle_label")
        }
        self.bodies = self._build()

    def _textured_quad(self, corners: np.ndarray, uv_repeat: tuple[float, float], texture: str) -> int:
        c = self.client
        u, v = uv_repeat
        normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
        normal = normal / np.linalg.norm(normal)
        visual = c.createVisualShape(
            p.GEOM_MESH,
            vertices=corners.tolist(),
            indices=[0, 1, 2, 0, 2, 3],
            uvs=[[0, 0], [u, 0], [u, v], [0, v]],
            normals=[normal.tolist()] * 4,
        )
        body = c.createMultiBody(baseMass=0, baseVisualShapeIndex=visual)
        c.changeVisualShape(body, -1, textureUniqueId=self._textures[texture])
        return body

    def _box(self, half: tuple, pos: tuple, rgb: tuple, collide: bool = True) -> int:
        c = self.client
        visual = c.createVisualShape(p.GEOM_BOX, halfExtents=list(half), rgbaColor=[*rgb, 1.0])
        collision = c.createCollisionShape(p.GEOM_BOX, halfExtents=list(half)) if collide else -1
        return c.createMultiBody(
            baseMass=0, baseCollisionShapeIndex=collision, baseVisualShapeIndex=visual, basePosition=list(pos)
        )

    def _build(self) -> WorldBodies:
        c, s = self.client, self.spec
        cor = s.corridor
        hw, x0, x1, h = cor.half_width_m, cor.x_min_m, cor.x_max_m, cor.wall_height_m
        tiles = ((x1 - x0) / cor.tile_size_m, 2 * hw / cor.tile_size_m)
        floor = self._textured_quad(
            np.array([[x0, -hw, 0], [x1, -hw, 0], [x1, hw, 0], [x0, hw, 0]], dtype=float), tiles, "floor_tile"
        )
        wall_uv = ((x1 - x0) / 1.0, h / 1.0)
        left = self._textured_quad(
            np.array([[x1, hw, 0], [x0, hw, 0], [x0, hw, h], [x1, hw, h]]), wall_uv, "wall"
        )
        right = self._textured_quad(
            np.array([[x0, -hw, 0], [x1, -hw, 0], [x1, -hw, h], [x0, -hw, h]]), wall_uv, "wall"
        )
        end = self._textured_quad(
            np.array([[x1, -hw, 0], [x1, hw, 0], [x1, hw, h], [x1, -hw, h]]), (2 * hw, h), "wall"
        )
        ceiling = self._textured_quad(
            np.array([[x0, hw, h], [x1, hw, h], [x1, -hw, h], [x0, -hw, h]]), (1, 1), "wall"
        )
        for quad in (left, right, end, ceiling):
            c.changeVisualShape(quad, -1, rgbaColor=[1, 1, 1, 1])
        # Thick invisible-to-camera collision slabs behind each wall plane (walls are obstacles).
        t = 0.05
        length = x1 - x0
        walls = [
            self._box((length / 2, t, h / 2), ((x0 + x1) / 2, hw + t, h / 2), (0.9, 0.9, 0.9)),
            self._box((length / 2, t, h / 2), ((x0 + x1) / 2, -hw - t, h / 2), (0.9, 0.9, 0.9)),
            self._box((t, hw, h / 2), (x1 + t, 0.0, h / 2), (0.9, 0.9, 0.9)),
            self._box((t, hw, h / 2), (x0 - t, 0.0, h / 2), (0.9, 0.9, 0.9)),
        ]
        bb, bt = cor.baseboard_height_m, 0.012
        black = (0.04, 0.04, 0.045)
        self._box((length / 2, bt, bb / 2), ((x0 + x1) / 2, hw - bt, bb / 2), black, collide=False)
        self._box((length / 2, bt, bb / 2), ((x0 + x1) / 2, -hw + bt, bb / 2), black, collide=False)
        self._box((bt, hw, bb / 2), (x1 - bt, 0.0, bb / 2), black, collide=False)

        cable = self._build_cable()

        bx = s.box
        box_visual = c.createVisualShape(p.GEOM_MESH, **_box_mesh(bx.half_extents_m), rgbaColor=[1, 1, 1, 1])
        box_collision = c.createCollisionShape(p.GEOM_BOX, halfExtents=list(bx.half_extents_m))
        box = c.createMultiBody(0, box_collision, box_visual, basePosition=[0, 0, bx.half_extents_m[2]])
        c.changeVisualShape(box, -1, textureUniqueId=self._textures["cardboard"])

        bo = s.bottle
        bottle_visual = c.createVisualShape(
            p.GEOM_CYLINDER, radius=bo.radius_m, length=bo.height_m, rgbaColor=[*bo.color_rgb, 1.0]
        )
        bottle_collision = c.createCollisionShape(p.GEOM_CYLINDER, radius=bo.radius_m, height=bo.height_m)
        bottle = c.createMultiBody(0, bottle_collision, bottle_visual, basePosition=[0, 0, bo.height_m / 2])
        cap_visual = c.createVisualShape(
            p.GEOM_CYLINDER,
            radius=bo.cap_radius_m,
            length=bo.cap_height_m,
            rgbaColor=[*bo.cap_color_rgb, 1.0],
        )
        cap = c.createMultiBody(0, -1, cap_visual, basePosition=[0, 0, bo.height_m + bo.cap_height_m / 2])
        return WorldBodies(floor=floor, walls=walls, box=box, bottle=bottle, cap=cap, cable=cable)

    def _build_cable(self) -> list[int]:
        c, cab = self.client, self.spec.cable
        pts = np.asarray(cab.points_xy_m, dtype=float)
        bodies = []
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            d = b - a
            length = float(np.linalg.norm(d))
            yaw = float(np.arctan2(d[1], d[0]))
            visual = c.createVisualShape(
                p.GEOM_CAPSULE, radius=cab.radius_m, length=length, rgbaColor=[*cab.color_rgb, 1.0]
            )
            # Capsules lie along z: pitch 90 deg lays them on the floor, then yaw along the segment.
            orn = c.getQuaternionFromEuler([0.0, np.pi / 2, yaw])
            mid = (a + b) / 2
            bodies.append(
                c.createMultiBody(
                    0, -1, visual, basePosition=[mid[0], mid[1], cab.radius_m], baseOrientation=orn
                )
            )
        return bodies

    def place(self, layout: Layout) -> None:
        """Move the box and bottle to this episode's layout and apply its colour jitter."""
        c, s = self.client, self.spec
        bx, by = layout.box_center
        c.resetBasePositionAndOrientation(
            self.bodies.box, [bx, by, s.box.half_extents_m[2]], _quat_yaw(layout.box_yaw)
        )
        ox, oy = layout.bottle_xy
        c.resetBasePositionAndOrientation(self.bodies.bottle, [ox, oy, s.bottle.height_m / 2], [0, 0, 0, 1])
        cap_z = s.bottle.height_m + s.bottle.cap_height_m / 2
        c.resetBasePositionAndOrientation(self.bodies.cap, [ox, oy, cap_z], [0, 0, 0, 1])
        tint = np.clip(0.95 * np.asarray(layout.tint), 0.0, 1.0)
        c.changeVisualShape(self.bodies.box, -1, rgbaColor=[*tint.tolist(), 1.0])
