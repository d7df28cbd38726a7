"""The static corridor world in PyBullet: floor, walls, baseboards, cable, parcel box and bottle.

Every call goes through the env's own ``BulletClient``, so several envs live in one process.
Sizes and positions come from the scene spec (calibrated); textures, colours and the floor tape
from the appearance (``mvla_sim.appearance``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from mvla_sim.appearance import Appearance, load_appearance
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
    surfaces: dict[str, list[int]]
    """Visual bodies per appearance material (``mvla_sim.appearance.MATERIALS``)."""

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

    def __init__(self, client, spec: SceneSpec, appearance: Appearance | None = None) -> None:
        self.client = client
        self.spec = spec
        self.appearance = appearance if appearance is not None else load_appearance()
        names = {m.texture for m in self.appearance.materials.values() if m.texture is not None}
        self._textures = {
            name: client.loadTexture(str(TEXTURES_DIR / f"{name}.png")) for name in sorted(names)
        }
        self._tint = (1.0, 1.0, 1.0)
        self.bodies = self._build()
        self.apply_colors(self.appearance)

    def apply_colors(self, appearance: Appearance) -> None:
        """Recolour every surface from ``appearance`` (same textures and tape marks: ``structure()``)."""
        if appearance.structure() != self.appearance.structure():
            raise ValueError(
                f"appearance {appearance.name!r} changes textures or tape marks of {self.appearance.name!r}: "
                "build a new env with it instead"
            )
        self.appearance = appearance
        for material, bodies in self.bodies.surfaces.items():
            rgb = np.asarray(appearance.materials[material].rgb)
            if material == "box":
                rgb = np.clip(rgb * np.asarray(self._tint), 0.0, 1.0)
            for body in bodies:
                self.client.changeVisualShape(body, -1, rgbaColor=[*rgb.tolist(), 1.0])

    def _surface(self, corners: np.ndarray, length_m: tuple[float, float], material: str) -> int:
        """A textured quad of ``material``; ``length_m`` is its extent along the u and v edges (m)."""
        spec = self.appearance.materials[material]
        tile = spec.tile_m or length_m
        uv = (length_m[0] / tile[0], length_m[1] / tile[1])
        if spec.texture is None:
            return self._textured_quad(corners, uv, None)
        return self._textured_quad(corners, uv, spec.texture)

    def _textured_quad(self, corners: np.ndarray, uv_repeat: tuple[float, float], texture: str | None) -> int:
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
        if texture is not None:
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
        cor = self.spec.corridor
        hw, x0, x1, h = cor.half_width_m, cor.x_min_m, cor.x_max_m, cor.wall_height_m
        length = x1 - x0
        floor = self._surface(
            np.array([[x0, -hw, 0], [x1, -hw, 0], [x1, hw, 0], [x0, hw, 0]], dtype=float),
            (length, 2 * hw),
            "floor",
        )
        ceiling = self._surface(
            np.array([[x0, hw, h], [x1, hw, h], [x1, -hw, h], [x0, -hw, h]]), (length, 2 * hw), "ceiling"
        )
        walls, wall_surfaces = self._build_walls()
        bb, bt = cor.baseboard_height_m, 0.012
        black = self.appearance.materials["baseboard"].rgb
        baseboards = [
            self._box((length / 2, bt, bb / 2), ((x0 + x1) / 2, hw - bt, bb / 2), black, collide=False),
            self._box((length / 2, bt, bb / 2), ((x0 + x1) / 2, -hw + bt, bb / 2), black, collide=False),
            self._box((bt, hw, bb / 2), (x1 - bt, 0.0, bb / 2), black, collide=False),
        ]
        cable = self._build_cable()
        tape = self._build_tape()
        box, bottle, cap = self._build_objects()
        surfaces = {
            "floor": [floor],
            "wall": wall_surfaces,
            "ceiling": [ceiling],
            "baseboard": baseboards,
            "box": [box],
            "bottle": [bottle],
            "cap": [cap],
            "cable": cable,
            "tape": tape,
        }
        return WorldBodies(
            floor=floor, walls=walls, box=box, bottle=bottle, cap=cap, cable=cable, surfaces=surfaces
        )

    def _build_walls(self) -> tuple[list[int], list[int]]:
        """The walls' collision slabs, and the bodies that show the wall material."""
        cor = self.spec.corridor
        hw, x0, x1, h = cor.half_width_m, cor.x_min_m, cor.x_max_m, cor.wall_height_m
        length = x1 - x0
        # Thick collision slabs behind each wall plane (walls are obstacles). An untextured wall
        # material colours the slabs themselves; a textured one is drawn on quads 1 mm in front.
        t = 0.05
        flat = self.appearance.materials["wall"].texture is None
        walls = [
            self._box((length / 2, t, h / 2), ((x0 + x1) / 2, hw + t, h / 2), (0.9, 0.9, 0.9)),
            self._box((length / 2, t, h / 2), ((x0 + x1) / 2, -hw - t, h / 2), (0.9, 0.9, 0.9)),
            self._box((t, hw, h / 2), (x1 + t, 0.0, h / 2), (0.9, 0.9, 0.9)),
            self._box((t, hw, h / 2), (x0 - t, 0.0, h / 2), (0.9, 0.9, 0.9)),
        ]
        if flat:
            wall_surfaces = walls
        else:
            e, ye, xe = 0.001, hw - 0.001, x1 - 0.001
            wall_surfaces = [  # counter-clockwise seen from inside the corridor: they face the camera
                self._surface(
                    np.array([[x0, ye, 0], [x1, ye, 0], [x1, ye, h], [x0, ye, h]]), (length, h), "wall"
                ),
                self._surface(
                    np.array([[x1, -ye, 0], [x0, -ye, 0], [x0, -ye, h], [x1, -ye, h]]), (length, h), "wall"
                ),
                self._surface(
                    np.array([[xe, hw, 0], [xe, -hw, 0], [xe, -hw, h], [xe, hw, h]]), (2 * hw, h), "wall"
                ),
                self._surface(
                    np.array([[x0 + e, -hw, 0], [x0 + e, hw, 0], [x0 + e, hw, h], [x0 + e, -hw, h]]),
                    (2 * hw, h),
                    "wall",
                ),
            ]
        return walls, wall_surfaces

    def _build_objects(self) -> tuple[int, int, int]:
        c, s = self.client, self.spec
        bx = s.box
        box_visual = c.createVisualShape(p.GEOM_MESH, **_box_mesh(bx.half_extents_m), rgbaColor=[1, 1, 1, 1])
        box_collision = c.createCollisionShape(p.GEOM_BOX, halfExtents=list(bx.half_extents_m))
        box = c.createMultiBody(0, box_collision, box_visual, basePosition=[0, 0, bx.half_extents_m[2]])
        box_texture = self.appearance.materials["box"].texture
        if box_texture is not None:
            c.changeVisualShape(box, -1, textureUniqueId=self._textures[box_texture])

        bo = s.bottle
        bottle_visual = c.createVisualShape(
            p.GEOM_CYLINDER, radius=bo.radius_m, length=bo.height_m, rgbaColor=[1, 1, 1, 1]
        )
        bottle_collision = c.createCollisionShape(p.GEOM_CYLINDER, radius=bo.radius_m, height=bo.height_m)
        bottle = c.createMultiBody(0, bottle_collision, bottle_visual, basePosition=[0, 0, bo.height_m / 2])
        cap_visual = c.createVisualShape(
            p.GEOM_CYLINDER, radius=bo.cap_radius_m, length=bo.cap_height_m, rgbaColor=[1, 1, 1, 1]
        )
        cap = c.createMultiBody(0, -1, cap_visual, basePosition=[0, 0, bo.height_m + bo.cap_height_m / 2])
        return box, bottle, cap

    def _build_tape(self) -> list[int]:
        """Floor tape marks: thin visual slabs (no collision), 1 mm above the floor."""
        a = self.appearance
        bodies = []
        for x0, y0, x1, y1 in a.tape_marks_m:
            length = float(np.hypot(x1 - x0, y1 - y0))
            half = (length / 2, a.tape_width_m / 2, 0.0005)
            body = self._box(half, ((x0 + x1) / 2, (y0 + y1) / 2, 0.001), (0.0, 0.0, 0.0), collide=False)
            yaw = float(np.arctan2(y1 - y0, x1 - x0))
            self.client.resetBasePositionAndOrientation(
                body, [(x0 + x1) / 2, (y0 + y1) / 2, 0.001], _quat_yaw(yaw)
            )
            bodies.append(body)
        return bodies

    def _build_cable(self) -> list[int]:
        c, cab = self.client, self.spec.cable
        pts = np.asarray(cab.points_xy_m, dtype=float)
        bodies = []
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            d = b - a
            length = float(np.linalg.norm(d))
            yaw = float(np.arctan2(d[1], d[0]))
            visual = c.createVisualShape(
                p.GEOM_CAPSULE, radius=cab.radius_m, length=length, rgbaColor=[1, 1, 1, 1]
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
        self._tint = tuple(float(v) for v in layout.tint)
        tint = np.clip(np.asarray(self.appearance.materials["box"].rgb) * np.asarray(layout.tint), 0.0, 1.0)
        c.changeVisualShape(self.bodies.box, -1, rgbaColor=[*tint.tolist(), 1.0])
