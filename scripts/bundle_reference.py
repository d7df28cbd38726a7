"""Copy a training run's top-3 + last checkpoints into ``assets/checkpoints/reference/``, slimmed.

    python scripts/bundle_reference.py RUN_DIR [DEST]

Optimizer and LR-scheduler states are dropped (they triple a checkpoint's size and are only
needed to resume training); the state dict, ``hyper_parameters["configs"]``, the callbacks'
state (``best_k_models`` with the training machine's absolute paths, as real runs keep them),
epoch and global step stay. ``version_*/metrics.csv`` + ``hparams.yaml`` and ``config.json`` are
copied too. Files are written atomically.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

DROP = ("optimizer_states", "lr_schedulers")


def slim_copy(src: Path, dst: Path) -> None:
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    for key in DROP:
        ckpt.pop(key, None)
    ckpt["mvla_sim_note"] = "optimizer and scheduler states removed by scripts/bundle_reference.py"
    with tempfile.NamedTemporaryFile(dir=dst.parent, prefix=f".{dst.name}.", delete=False) as fh:
        torch.save(ckpt, fh)
        tmp = Path(fh.name)
    os.replace(tmp, dst)


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    run = Path(argv[0])
    dest = (
        Path(argv[1])
        if len(argv) > 1
        else Path(__file__).resolve().parents[1] / "assets" / "checkpoints" / "reference"
    )
    ckpts = sorted(run.glob("*.ckpt"))
    if not ckpts:
        print(f"error: no .ckpt files in {run}; train first (python -m train.finetune ...)", file=sys.stderr)
        return 2
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.ckpt"):
        old.unlink()
    for src in ckpts:
        slim_copy(src, dest / src.name)
        print(f"{dest / src.name}: {(dest / src.name).stat().st_size / 1e6:.1f} MB")
    for version in sorted(run.glob("version_*")):
        target = dest / version.name
        target.mkdir(exist_ok=True)
        for name in ("metrics.csv", "hparams.yaml"):
            if (version / name).is_file():
                shutil.copy2(version / name, target / name)
    if (run / "config.json").is_file():
        shutil.copy2(run / "config.json", dest / "config.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
