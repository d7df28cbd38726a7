"""Generate the procedural textures of the corridor scene into ``assets/textures/``.

Run ``python scripts/make_textures.py``; the PNGs are committed so the simulator never
generates or downloads anything at run time. Every texture is a pure function of a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "assets" / "textures"


def _noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    return rng.normal(0.0, scale, size=shape)


def floor_tile(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One square grey floor tile with a dark grout line along two edges (tiles repeat by UV)."""
    base = 150 + _noise(rng, (size, size), 5.0)
    speckle = rng.random((size, size)) < 0.02
    base[speckle] -= 25
    grout = 9
    base[:grout, :] = 80
    base[:, :grout] = 80
    img = np.stack([base, base * 1.0, base * 1.02], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def wall(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Off-white painted wall with faint roller noise."""
    base = 232 + _noise(rng, (size, size), 2.5)
    img = np.stack([base, base, base * 0.98], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def cardboard(rng: np.random.Generator, w: int = 256, h: int = 160) -> np.ndarray:
    """Grey parcel-box cardboard with a darker tape band across the middle and a label."""
    base = 118 + _noise(rng, (h, w), 4.0)
    ripple = 4.0 * np.sin(np.linspace(0, 40 * np.pi, w))[None, :]
    base = base + ripple
    img = np.stack([base * 1.02, base, base * 0.95], axis=-1)
    band = slice(h // 2 - 10, h // 2 + 10)
    img[band, :, :] = [178, 160, 120]
    img[28:70, 40:120, :] = 235 + _noise(rng, (42, 80), 3.0)[..., None]
    img[36:40, 48:110, :] = 60
    img[48:52, 48:95, :] = 60
    return np.clip(img, 0, 255).astype(np.uint8)


def bottle_label(rng: np.random.Generator, w: int = 128, h: int = 64) -> np.ndarray:
    """Dark translucent-looking plastic with a red label band (a cola-like beverage)."""
    base = 35 + _noise(rng, (h, w), 4.0)
    img = np.stack([base * 1.15, base * 0.85, base * 0.7], axis=-1)
    img[h // 3 : 2 * h // 3, :, :] = [170, 30, 35]
    return np.clip(img, 0, 255).astype(np.uint8)


def terrazzo(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """One light speckled terrazzo slab (0.6 m, about 2.3 mm a pixel) with a thin dark seam on two edges.

    FACTS, "How a real frame looks": a light speckled terrazzo-like floor with thin dark seams.
    Chips: many small dark and light grey ones, a few warm-tinted ones, on a light grey cement.
    """
    base = 182 + _noise(rng, (size, size), 3.0)
    img = np.stack([base * 1.0, base * 0.99, base * 0.97], axis=-1)
    chips = ((3000, 0, 120, 150), (700, 1, 135, 160), (1500, 0, 205, 225), (120, 1, 100, 130))
    for count, radius, lo, hi in chips:
        ys, xs = rng.integers(0, size, count), rng.integers(0, size, count)
        grey = rng.uniform(lo, hi, count)
        warm = rng.random(count) < 0.15
        for y, x, g, w in zip(ys, xs, grey, warm, strict=True):
            tint = np.array([1.06, 0.99, 0.9]) if w else np.array([1.0, 1.0, 1.0])
            img[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = g * tint
    img[:1, :, :] = 85
    img[:, :1, :] = 85
    return np.clip(img, 0, 255).astype(np.uint8)


def wall_windows(rng: np.random.Generator, w: int = 384, h: int = 288) -> np.ndarray:
    """A 3.2 m x 2.4 m stretch of painted wall (row 0 is the top): faint roller streaks, scuffs near
    the floor, a socket plate, a vertical panel seam, and a band of high windows near the top.

    FACTS: "white wall ... fluorescent ceiling lights and high windows at the top of the view",
    "walls with detail" rather than flat untextured walls.
    """
    streaks = _noise(rng, (1, w), 2.0).repeat(h, axis=0)
    base = 226 + _noise(rng, (h, w), 2.0) + streaks
    img = np.stack([base, base * 0.995, base * 0.975], axis=-1)
    top, bottom = int(0.05 * h), int(0.22 * h)
    for x0 in range(12, w - 60, w // 3):
        img[top:bottom, x0 : x0 + w // 3 - 24] = [236, 242, 250]
        img[top:bottom, x0 : x0 + 3] = 95
        img[top:bottom, x0 + w // 3 - 27 : x0 + w // 3 - 24] = 95
        img[top : top + 3, x0 : x0 + w // 3 - 24] = 95
        img[bottom - 3 : bottom, x0 : x0 + w // 3 - 24] = 95
        mid = x0 + (w // 3 - 24) // 2
        img[top:bottom, mid : mid + 2] = 110
    img[:, w - 3 :, :] *= 0.9
    scuffs = rng.integers(0, w, 40)
    for x in scuffs:
        y = int(h - rng.integers(8, 30))
        img[y : y + 2, x : x + int(rng.integers(4, 14))] *= 0.85
    sx, sy = int(0.3 * w), int(0.86 * h)
    img[sy : sy + 10, sx : sx + 8] = [245, 245, 240]
    img[sy + 3 : sy + 5, sx + 2 : sx + 6] = 60
    return np.clip(img, 0, 255).astype(np.uint8)


def ceiling_lights(rng: np.random.Generator, w: int = 256, h: int = 256) -> np.ndarray:
    """A 2.0 m ceiling stretch across the corridor: grey acoustic tiles and one fluorescent panel."""
    base = 200 + _noise(rng, (h, w), 5.0)
    img = np.stack([base, base, base * 0.98], axis=-1)
    img[:, :2] = 150
    img[h // 2 - 1 : h // 2 + 1, :] = 150
    img[h // 3 : 2 * h // 3, w // 2 - 20 : w // 2 + 20] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20251114)
    textures = {
        "floor_tile.png": floor_tile(rng),
        "wall.png": wall(rng),
        "cardboard.png": cardboard(rng),
        "bottle_label.png": bottle_label(rng),
    }
    # The FACTS-like look (assets/appearance/default.json); a generator of its own, so adding
    # it left the textures above (the v0_tiles look) bit for bit as they were.
    rng2 = np.random.default_rng(20260301)
    textures.update(
        {
            "terrazzo.png": terrazzo(rng2),
            "wall_windows.png": wall_windows(rng2),
            "ceiling_lights.png": ceiling_lights(rng2),
        }
    )
    for name, img in textures.items():
        iio.imwrite(OUT / name, img)
        print(f"wrote {OUT / name} {img.shape}")


if __name__ == "__main__":
    main()
