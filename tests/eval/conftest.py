"""Fixtures for the eval tests (a tiny real VLA checkpoint) and the import path of the helpers.

``tests/eval`` is put on ``sys.path`` so that ``eval_fakes`` (fake env and policies) can be
imported by name here and in spawned worker processes (they inherit ``sys.path``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def tiny_vla_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real checkpoint of the tiny VLA (random weights, real key layout), built once."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("policies.vla.policy")
    from eval_helpers import real_name

    from policies.vla.checkpoint import save_checkpoint
    from policies.vla.config import TrainingRecipe, VLAConfig
    from policies.vla.model import MobileVLAModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = MobileVLAModel.build(
            VLAConfig(
                head_type="MobileVLALSTMDecoder",  # the servable head: as_deployed runs it
                hidden_size=64,
                num_lstm_layers=2,
                lora_enable=True,
                lora_r=8,
                recipe=TrainingRecipe(),  # a run of this project: its recipe recorded, no era needed
            ),
            seed=0,
        )
        path = tmp_path_factory.mktemp("vla") / real_name(4, 0.071)
        save_checkpoint(model, path, epoch=4)
    finally:
        torch.set_num_threads(threads)
    return path
