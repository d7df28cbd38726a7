"""Shared helpers of the policies tests: one torch thread, a tiny model whose LoRA, action token
and head matter, random frames.

The helpers are fixtures (``tiny_config``, ``perturb``, ``random_frames``): with
``--import-mode=importlib`` a test module cannot import this file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.vla.config import VLAConfig
from policies.vla.model import MobileVLAModel
from policies.vla.robovlms_config import KOSMOS2_DIR_ENV


def _tiny_config(**changes) -> VLAConfig:
    """The tiny preset with a small head (LSTM 32 wide, 2 layers), window 4, chunk 3 and LoRA r4."""
    base = {
        "backbone": "tiny",
        "hidden_size": 32,
        "num_lstm_layers": 2,
        "window_size": 4,
        "fwd_pred_next_n": 3,
        "lora_enable": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "seed": 0,
    }
    base.update(changes)
    return VLAConfig(**base)


def _perturb(
    model: MobileVLAModel, seed: int = 0, scale: float = 0.05, head_gain: float = 1.0
) -> MobileVLAModel:
    """Make LoRA and the action token non-trivial (LoRA B starts at zero); ``head_gain`` scales the
    head's output layers so that the actions are large and frame-dependent."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or name == "action_token":
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
        head = model.act_head
        for out in ("actions", "gripper", "velocities"):
            if hasattr(head, out):
                getattr(head, out).mlp[6].weight.mul_(head_gain)
        if hasattr(head, "logits"):
            head.logits.weight.mul_(head_gain)
    return model


def _random_frames(n: int, seed: int = 0, height: int = 36, width: int = 64) -> list[np.ndarray]:
    """``n`` random uint8 RGB frames (16:9 like the camera)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="session")
def tiny_config():
    return _tiny_config


@pytest.fixture(scope="session")
def perturb():
    return _perturb


@pytest.fixture(scope="session")
def random_frames():
    return _random_frames


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One torch thread: stable timings on a shared 2-core machine (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_kosmos_dir_env(monkeypatch):
    """Tests do not depend on the user's ``$MVLA_KOSMOS2_DIR`` (tests that need it set it)."""
    monkeypatch.delenv(KOSMOS2_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def perturbed_model() -> MobileVLAModel:
    """Tiny LSTMDecoder model with LoRA B, the action token and the head made to matter."""
    return _perturb(MobileVLAModel.build(_tiny_config(), seed=0), head_gain=20.0).eval()
