"""Appearance as data: everything the renderer shows, apart from the calibrated geometry.

An :class:`Appearance` (``assets/appearance/*.json``) holds

* ``materials``: texture (a PNG of ``assets/textures/``, or none for a flat colour), colour and
  texture repeat of the floor, walls, ceiling, baseboard, box, bottle, cap, cable and floor tape;
* ``tape_marks_m``: black tape segments on the floor (visual only, FACTS: "black tape marks");
* ``lighting``: one :class:`~mvla_sim.scene.LightingSpec` per lighting condition (light
  direction, colour, ambient/diffuse/specular, and the camera's automatic exposure, white
  balance and sensor noise under that light);
* ``camera``: the rest of the camera response (:class:`CameraResponse`): gamma, saturation,
  vignetting, optical blur, barrel lens distortion, JPEG softness.

What it does not hold: the camera's field of view and pitch, the corridor, box and bottle
sizes and positions, the drive. Those are calibrated to the real key sequences (the scene spec's
``calibration`` section: the bottle-in-view rule depends on the field of view and pitch) and stay
in the scene spec. The lens distortion keeps the image corners fixed, so the diagonal field of
view stays the calibrated one.

``assets/appearance/default.json`` follows FACTS' "How a real frame looks"; ``v0_tiles.json`` is
the first look (thick tile grid, flat white walls, full ambient light), kept by name.
``python -m mvla_sim.match`` writes fitted appearances. This module imports no torch or policies.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from mvla_sim.facts import CAMERA_NATIVE_SIZE, LIGHTINGS
from mvla_sim.scene import ASSETS_DIR, TEXTURES_DIR, LightingSpec

APPEARANCE_DIR = ASSETS_DIR / "appearance"
DEFAULT_APPEARANCE = APPEARANCE_DIR / "default.json"
MATERIALS: tuple[str, ...] = (
    "floor",
    "wall",
    "ceiling",
    "baseboard",
    "box",
    "bottle",
    "cap",
    "cable",
    "tape",
)
"""Every surface the renderer draws; an appearance defines each one."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _unit_rgb(where: str, rgb: Any) -> tuple[float, float, float]:
    values = tuple(float(v) for v in rgb)
    _check(
        len(values) == 3 and all(0.0 <= v <= 1.0 for v in values),
        f"appearance {where}: rgb={list(rgb)} must be three values in [0, 1]",
    )
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class MaterialSpec:
    """One surface: ``texture`` (a PNG name in ``assets/textures/`` without ``.png``, or None for a
    flat colour), ``rgb`` (the flat colour, or the texture's multiplier, 0-1) and ``tile_m`` (metres
    per texture repeat along the surface's two directions; floor, walls and ceiling only)."""

    rgb: tuple
    texture: str | None = None
    tile_m: tuple | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rgb", _unit_rgb("material", self.rgb))
        if self.texture is not None:
            path = TEXTURES_DIR / f"{self.texture}.png"
            _check(
                path.is_file(),
                f"appearance texture {self.texture!r} not found; textures in {TEXTURES_DIR}: "
                f"{sorted(p.stem for p in TEXTURES_DIR.glob('*.png'))}",
            )
        if self.tile_m is not None:
            tile = tuple(float(v) for v in self.tile_m)
            _check(
                len(tile) == 2 and min(tile) > 0,
                f"appearance tile_m={list(self.tile_m)} must be two sizes > 0 (m)",
            )
            object.__setattr__(self, "tile_m", tile)


@dataclass(frozen=True)
class CameraResponse:
    """The camera beyond exposure and white balance (those follow the light: ``LightingSpec``).

    Sizes in pixels are of the real 1280 x 720 frame and scale with the render width, so a
    frame looks alike at any size.
    """

    gamma: float = 1.0
    """out = 255 (in / 255) ** (1 / gamma); > 1 lifts the shadows."""
    saturation: float = 1.0
    """1 keeps the colours, 0 is grey."""
    vignetting: float = 0.0
    """Relative darkening at the image corners (0.2: corners at 80 %), falling off as r**2."""
    blur_sigma_px: float = 0.0
    """Gaussian optical blur (pixels of a 1280-wide frame)."""
    lens_distortion: float = 0.0
    """Barrel distortion that keeps the image corners fixed (``mvla_sim.camera.barrel_map``)."""
    jpeg_quality: int = 0
    """JPEG round trip at this quality (1-95); 0 is off."""

    def __post_init__(self) -> None:
        _check(0.2 <= self.gamma <= 5.0, f"camera.gamma={self.gamma!r} must be within [0.2, 5]")
        _check(0.0 <= self.saturation <= 2.0, f"camera.saturation={self.saturation!r} must be within [0, 2]")
        _check(0.0 <= self.vignetting < 1.0, f"camera.vignetting={self.vignetting!r} must be within [0, 1)")
        _check(0.0 <= self.blur_sigma_px <= 20.0, f"camera.blur_sigma_px={self.blur_sigma_px!r} must be 0-20")
        _check(
            0.0 <= self.lens_distortion <= 1.0,
            f"camera.lens_distortion={self.lens_distortion!r} must be within [0, 1] (0.1-0.3 is mild)",
        )
        _check(
            int(self.jpeg_quality) == self.jpeg_quality and 0 <= self.jpeg_quality <= 95,
            f"camera.jpeg_quality={self.jpeg_quality!r} must be 0 (off) or 1-95",
        )


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names - {"why"})
    _check(not unknown, f"appearance {where}: unknown keys {unknown}; valid keys are {sorted(names)}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"appearance {where}: {exc}") from None


@dataclass(frozen=True)
class Appearance:
    """A whole look of the scene; ``from_dict``/``to_dict`` mirror the JSON file."""

    name: str
    materials: dict[str, MaterialSpec]
    lighting: dict[str, LightingSpec]
    camera: CameraResponse = field(default_factory=CameraResponse)
    tape_marks_m: tuple = ()
    """Floor tape segments ``[x0, y0, x1, y1]`` (m, corridor frame)."""
    tape_width_m: float = 0.048
    description: str = ""
    fit: dict[str, Any] = field(default_factory=dict, compare=False)
    """What ``mvla_sim.match`` fitted, from what, and the residual gap (empty when hand-made)."""
    source: str = field(default="<dict>", compare=False)

    def __post_init__(self) -> None:
        missing = sorted(set(MATERIALS) - set(self.materials))
        extra = sorted(set(self.materials) - set(MATERIALS))
        _check(
            not missing and not extra,
            f"appearance {self.name!r}: materials must be {list(MATERIALS)} "
            f"(missing {missing}, unknown {extra})",
        )
        _check(
            sorted(self.lighting) == sorted(LIGHTINGS),
            f"appearance {self.name!r}: lighting must define {list(LIGHTINGS)}, got {sorted(self.lighting)}",
        )
        marks = tuple(tuple(float(v) for v in m) for m in self.tape_marks_m)
        _check(all(len(m) == 4 for m in marks), "appearance tape_marks_m: each mark is [x0, y0, x1, y1] (m)")
        object.__setattr__(self, "tape_marks_m", marks)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Appearance:
        where = data.get("name", source)
        _check(isinstance(data.get("name"), str), f"appearance {source}: missing 'name'")
        materials = {
            k: _build(MaterialSpec, v, f"{where}:materials.{k}")
            for k, v in data.get("materials", {}).items()
            if k != "why"
        }
        lighting = {
            k: _build(LightingSpec, v, f"{where}:lighting.{k}")
            for k, v in data.get("lighting", {}).items()
            if k != "why"
        }
        camera = _build(CameraResponse, data.get("camera", {}), f"{where}:camera")
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            materials=materials,
            lighting=lighting,
            camera=camera,
            tape_marks_m=tuple(data.get("tape_marks_m", ())),
            tape_width_m=float(data.get("tape_width_m", 0.048)),
            fit=dict(data.get("fit", {})),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The appearance as JSON-ready data (what ``from_dict`` reads back)."""

        def plain(obj: Any) -> Any:
            return json.loads(json.dumps(dataclasses.asdict(obj)))

        out: dict[str, Any] = {"name": self.name, "description": self.description}
        out["materials"] = {k: plain(self.materials[k]) for k in MATERIALS}
        out["tape_marks_m"] = [list(m) for m in self.tape_marks_m]
        out["tape_width_m"] = self.tape_width_m
        out["lighting"] = {k: plain(v) for k, v in self.lighting.items()}
        out["camera"] = plain(self.camera)
        if self.fit:
            out["fit"] = self.fit
        return out

    def structure(self) -> tuple:
        """What needs the world rebuilt when it changes: textures, texture repeats, tape marks."""
        return (
            tuple((k, m.texture, m.tile_m) for k, m in sorted(self.materials.items())),
            self.tape_marks_m,
            self.tape_width_m,
        )


def load_appearance(appearance: str | Path | dict[str, Any] | Appearance | None = None) -> Appearance:
    """An appearance from a JSON path, a bundled name (``"default"``, ``"v0_tiles"``), a dict, or
    itself; ``None`` gives ``assets/appearance/default.json``.

    Raises:
        FileNotFoundError: naming the bundled appearances when the path does not exist.
        ValueError: naming the bad key when the content is invalid.
    """
    if isinstance(appearance, Appearance):
        return appearance
    if isinstance(appearance, dict):
        return Appearance.from_dict(appearance)
    path = DEFAULT_APPEARANCE if appearance is None else Path(appearance)
    if not path.suffix and not path.exists():
        path = APPEARANCE_DIR / f"{path}.json"
    if not path.is_file():
        bundled = sorted(p.stem for p in APPEARANCE_DIR.glob("*.json"))
        raise FileNotFoundError(
            f"appearance {str(appearance)!r} not found; give a JSON path or one of {bundled}"
        )
    with path.open(encoding="utf-8") as fh:
        return Appearance.from_dict(json.load(fh), source=str(path))


def bundled_appearances() -> list[str]:
    """Names of the appearances shipped in ``assets/appearance/``."""
    return sorted(p.stem for p in APPEARANCE_DIR.glob("*.json"))


# ---------------------------------------------------------------------------------------- the image
def vignette_gain(width: int, height: int, strength: float) -> np.ndarray:
    """float32 (H, W, 1): 1 at the centre, ``1 - strength`` at the corners, quadratic in radius."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (cx * cx + cy * cy)
    return (1.0 - strength * r2)[..., None].astype(np.float32)


def blur_sigma(response: CameraResponse, width: int) -> float:
    """The optical blur in pixels of a ``width``-wide frame."""
    return response.blur_sigma_px * width / CAMERA_NATIVE_SIZE[0]


def tone(img: np.ndarray, response: CameraResponse, vignette: np.ndarray | None) -> np.ndarray:
    """Vignetting, blur, gamma and saturation on a float32 (H, W, 3) image in 0-255 (in place where it can)."""
    if vignette is not None:
        img *= vignette
    sigma = blur_sigma(response, img.shape[1])
    if sigma > 0.05:
        img = ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="nearest")
    if response.gamma != 1.0:
        np.clip(img, 0, 255, out=img)
        img = 255.0 * (img / 255.0) ** (1.0 / response.gamma)
    if response.saturation != 1.0:
        grey = img @ np.asarray([0.299, 0.587, 0.114], np.float32)
        img = grey[..., None] + response.saturation * (img - grey[..., None])
    return img.astype(np.float32, copy=False)


def jpeg_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (H, W, 3) through a JPEG encode/decode at ``quality`` (PIL, 4:2:0 like OpenCV's default)."""
    if quality <= 0:
        return img
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def with_values(appearance: Appearance, values: dict[str, float], name: str | None = None) -> Appearance:
    """A copy with dotted fields replaced, e.g. ``{"camera.gamma": 1.1, "lighting.day.ambient": 0.6,
    "lighting.day.white_balance_rgb.2": 0.9, "materials.floor.rgb.0": 0.8}``.

    Raises:
        ValueError: naming the path when it does not lead to a number of the appearance.
    """
    data = appearance.to_dict()
    for path, value in values.items():
        parts = path.split(".")
        node: Any = data
        try:
            for part in parts[:-1]:
                node = node[int(part)] if isinstance(node, list) else node[part]
            last = int(parts[-1]) if isinstance(node, list) else parts[-1]
            _check(isinstance(node[last], int | float), f"appearance field {path!r} is not a number")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            if isinstance(exc, ValueError) and "not a number" in str(exc):
                raise
            raise ValueError(f"appearance has no numeric field {path!r}") from None
        node[last] = (
            int(round(value))
            if isinstance(node[last], int) and not isinstance(node[last], bool)
            else float(value)
        )
    if name is not None:
        data["name"] = name
    data.pop("fit", None)
    return Appearance.from_dict(data, source=appearance.source)


def get_value(appearance: Appearance, path: str) -> float:
    """The number at a dotted field path (see :func:`with_values`)."""
    node: Any = appearance.to_dict()
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    value = float(node)
    if not math.isfinite(value):
        raise ValueError(f"appearance field {path!r} is not finite")
    return value
