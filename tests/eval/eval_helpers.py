"""Helpers for eval tests: Lightning-like checkpoint files and run folders (no weights)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CALLBACK_KEY = (
    "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, "
    "'every_n_epochs': 1, 'train_time_interval': None}"
)
FOREIGN_DIR = "/home/trainer/RoboVLMs/runs/mobile_vla/kosmos/mobile_vla_finetune/2025-11-14/exp"


def real_name(epoch: int, val_loss: float) -> str:
    """The file name Lightning really writes with the project's template."""
    return f"epoch_epoch={epoch:02d}-val_loss=val_loss={val_loss:.3f}.ckpt"


def write_fake_ckpt(path: Path, epoch: int = 0, state: dict[str, Any] | None = None) -> Path:
    """A small torch-saved dict shaped like a Lightning checkpoint (no weights)."""
    import torch

    ckpt: dict[str, Any] = {"epoch": epoch, "global_step": 10 * epoch, "state_dict": {}}
    if state is not None:
        ckpt["callbacks"] = {CALLBACK_KEY: state}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def callback_state(
    best_k: dict[str, float], last: str | None = "last.ckpt", current: float | None = None
) -> dict[str, Any]:
    """ModelCheckpoint.state_dict() with absolute paths of another machine."""
    import torch

    paths = {f"{FOREIGN_DIR}/{name}": torch.tensor(v) for name, v in best_k.items()}
    best = min(paths, key=lambda p: float(paths[p])) if paths else ""
    return {
        "monitor": "val_loss",
        "best_model_score": paths[best] if best else None,
        "best_model_path": best,
        "current_score": None if current is None else torch.tensor(current),
        "dirpath": FOREIGN_DIR,
        "best_k_models": paths,
        "kth_best_model_path": max(paths, key=lambda p: float(paths[p])) if paths else "",
        "kth_value": None,
        "last_model_path": f"{FOREIGN_DIR}/{last}" if last else "",
    }


def touch_order(paths: list[Path]) -> None:
    """Give files increasing mtimes in list order."""
    for i, p in enumerate(paths):
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))
