"""The appearance gap between real and simulated frames (numbers in CIELAB, D65).

Per set of frames (``lab_stats``): the mean and spread (std) of L*, a*, b* over all pixels.
Between two sets (``appearance_gap``):

- ``delta_e_means``: CIE76 colour difference of the two sets' mean colours;
- ``std_diff``: |std real - std sim| per channel (texture contrast);
- ``hist_hellinger``: Hellinger distance of the L*, a*, b* histograms (0 same, 1 disjoint),
  averaged over the channels;
- ``gradient_ratio``: mean gradient magnitude (Sobel, L*) of sim over real at the model's input
  size: < 1 softer, > 1 sharper than real (blur, JPEG);
- paired only: ``pixel_delta_e`` (mean per-pixel CIE76 difference of frame t and its paired sim
  frame at ``PIXEL_SIZE``, the score the appearance fit minimises) and ``ssim`` (mean structural
  similarity of the grey frames at the model's input size; 1 identical).

Identical frames give zero gaps, SSIM 1 and a gradient ratio of 1. Colour conversion and SSIM are
scikit-image's (``skimage.color.rgb2lab``, ``skimage.metrics.structural_similarity``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from skimage.color import rgb2lab
from skimage.filters import sobel
from skimage.metrics import structural_similarity

PIXEL_SIZE = (64, 36)
"""(width, height) of the paired pixel colour difference: coarse enough that a few cm of pose
difference does not dominate it."""
MODEL_SIZE = 224
"""The model's square input (Kosmos-2 patch14-224); SSIM and gradients are taken there."""
HIST_RANGES = ((0.0, 100.0), (-60.0, 60.0), (-60.0, 60.0))
HIST_BINS = 32


def lab(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., H, W, 3) -> float32 CIELAB."""
    return rgb2lab(np.asarray(frames, dtype=np.float32) / 255.0).astype(np.float32)


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, size[1], size[0], 3), area filter."""
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BOX)) for f in frames])


def lab_stats(frames: np.ndarray) -> dict[str, list[float]]:
    """Mean and std of L*, a*, b* over every pixel of ``frames``."""
    values = lab(frames).reshape(-1, 3)
    return {
        "mean": values.mean(0).astype(float).round(3).tolist(),
        "std": values.std(0).astype(float).round(3).tolist(),
    }


def hellinger(real: np.ndarray, sim: np.ndarray) -> float:
    """Mean over L*, a*, b* of the Hellinger distance between the two sets' histograms."""
    a, b = lab(real).reshape(-1, 3), lab(sim).reshape(-1, 3)
    out = []
    for c, (lo, hi) in enumerate(HIST_RANGES):
        ha, _ = np.histogram(np.clip(a[:, c], lo, hi), HIST_BINS, (lo, hi))
        hb, _ = np.histogram(np.clip(b[:, c], lo, hi), HIST_BINS, (lo, hi))
        bc = np.sum(np.sqrt(ha / ha.sum() * hb / hb.sum()))
        out.append(float(np.sqrt(max(0.0, 1.0 - bc))))
    return float(np.mean(out))


def _grey_square(frames: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            np.asarray(
                Image.fromarray(f).convert("L").resize((MODEL_SIZE, MODEL_SIZE), Image.Resampling.BILINEAR)
            )
            for f in frames
        ]
    ).astype(np.float32)


def gradient_mean(frames: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the grey frames at the model's input size (0-255 scale)."""
    return float(np.mean([sobel(g).mean() for g in _grey_square(frames)]))


def pixel_delta_e(real: np.ndarray, sim: np.ndarray) -> float:
    """Mean per-pixel CIE76 difference of paired frames at ``PIXEL_SIZE``."""
    a, b = lab(resize(real, PIXEL_SIZE)), lab(resize(sim, PIXEL_SIZE))
    return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())


def ssim(real: np.ndarray, sim: np.ndarray) -> float:
    """Mean SSIM of paired grey frames at the model's input size."""
    a, b = _grey_square(real), _grey_square(sim)
    return float(np.mean([structural_similarity(x, y, data_range=255.0) for x, y in zip(a, b, strict=True)]))


def appearance_gap(real: np.ndarray, sim: np.ndarray, paired: bool) -> dict[str, Any]:
    """The appearance gap of two sets of uint8 RGB frames (paired: same length, frame t with t)."""
    if paired and len(real) != len(sim):
        raise ValueError(f"paired frames must match one to one, got {len(real)} real and {len(sim)} sim")
    rs, ss = lab_stats(real), lab_stats(sim)
    grad_real = gradient_mean(real)
    out: dict[str, Any] = {
        "paired": paired,
        "frames_real": int(len(real)),
        "frames_sim": int(len(sim)),
        "lab_real": rs,
        "lab_sim": ss,
        "delta_e_means": round(float(np.linalg.norm(np.subtract(rs["mean"], ss["mean"]))), 3),
        "std_diff": [round(abs(a - b), 3) for a, b in zip(rs["std"], ss["std"], strict=True)],
        "hist_hellinger": round(hellinger(real, sim), 4),
        "gradient_ratio": round(gradient_mean(sim) / grad_real, 4) if grad_real > 0 else None,
    }
    if paired:
        out["pixel_delta_e"] = round(pixel_delta_e(real, sim), 3)
        out["ssim"] = round(ssim(real, sim), 4)
    return out
