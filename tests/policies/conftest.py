"""Shared fixtures of the policies tests: one torch thread, and random models with non-trivial LoRA."""

from __future__ import annotations

import pytest
import torch

from policies.vla_config import VLAConfig
from policies.vla_model import MobileVLAModel


def perturb(model: MobileVLAModel, seed: int = 0, scale: float = 0.05) -> MobileVLAModel:
    """Make LoRA and the action token non-trivial (LoRA B starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or name == "action_token":
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One torch thread: stable timings on a shared 2-core machine (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def perturbed_model() -> MobileVLAModel:
    return perturb(MobileVLAModel.build(VLAConfig(), seed=0)).eval()
