"""The feature gap: Fréchet distance between real and simulated frames in a checkpoint's encoder.

The features are what the model acts on, taken from its own weights (LoRA included): each frame
is preprocessed as the checkpoint's profile does (``policies.vla.processors.preprocess_frame``:
resize, scaling, normalisation, channel order), goes through Kosmos-2's vision model and the
image-to-text projection (``MobileVLAModel.image_embeds``: the 64 image features that the text
model reads, 16 for the tiny backbone), and the image features are averaged into one vector per
frame. The Fréchet distance (FID's formula) is taken between the two sets' Gaussians, with
``scipy.linalg.sqrtm``; with fewer frames than dimensions the covariances are singular and a
small ridge (``RIDGE``) keeps the square root finite, as pytorch-fid does.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from policies.vla.policy import VLAPolicy
from policies.vla.processors import preprocess_frame

RIDGE = 1e-6
BATCH = 16


def embed(policy: VLAPolicy, frames: np.ndarray) -> np.ndarray:
    """float64 (N, D): one mean image feature per uint8 RGB frame, under ``policy``'s profile."""
    cfg, s, model = policy.config, policy.options, policy.model
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), BATCH):
            pixels = torch.stack(
                [
                    preprocess_frame(f, s, cfg.image_size, cfg.image_mean, cfg.image_std)
                    for f in frames[start : start + BATCH]
                ]
            ).to(model.device, model.dtype)
            out.append(model.image_embeds(pixels).float().mean(dim=1).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 frames per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        ridge = np.eye(len(mu_a)) * RIDGE
        covmean = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    covmean = np.real(covmean)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(0.0, value)
