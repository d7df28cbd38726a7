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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20251114)
    textures = {
        "floor_tile.png": floor_tile(rng),
        "wall.png": wall(rng),
        "cardboard.png": cardboard(rng),
        "bottle_label.png": bottle_label(rng),
    }
    for name, img in textures.items():
        iio.imwrite(OUT / name, img)
        print(f"wrote {OUT / name} {img.shape}")


if __name__ == "__main__":
    main()
