"""Copy checkpoints of a training run into ``assets/checkpoints/reference/``, slimmed.

    python scripts/bundle_reference.py RUN_DIR [DEST] [--epochs 3,8,19]

Without ``--epochs``: the run's top-3 by val_loss plus ``last.ckpt``. With ``--epochs`` (the run
trained with ``--save-top-k -1``, every epoch kept): those epochs plus ``last.ckpt``, so that the
bundled run holds checkpoints from different stages of training and ``--ckpt top3`` (the real
selection rule, by val_loss) has something to tell apart. The bundled files' checkpoint-callback
state is rewritten to name exactly the bundled checkpoints with their own val_loss (as if the run
had kept those three), and each file records which epochs were bundled and why.

Optimizer and LR-scheduler states are dropped (they triple a checkpoint's size and are only
needed to resume training); the state dict, ``hyper_parameters["configs"]``, epoch and global step
stay. ``version_*/metrics.csv`` + ``hparams.yaml`` (every epoch's metrics) and ``config.json`` are
copied too. Files are written atomically.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from mvla_sim.files import atomic_path, atomic_write_bytes

DROP = ("optimizer_states", "lr_schedulers")
NAME = re.compile(r"^epoch_epoch=(\d+)-val_loss=val_loss=(\d+\.\d+)\.ckpt$")
DEFAULT_DEST = Path(__file__).resolve().parents[1] / "assets" / "checkpoints" / "reference"


def _callback_key(ckpt: dict) -> str | None:
    return next((k for k in ckpt.get("callbacks", {}) if "ModelCheckpoint" in k), None)


def slim_copy(src: Path, dst: Path, best_k: dict[str, float] | None, note: str) -> None:
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    for key in DROP:
        ckpt.pop(key, None)
    key = _callback_key(ckpt)
    if best_k is not None and key is not None:
        state = ckpt["callbacks"][key]
        state["best_k_models"] = {p: torch.tensor(v) for p, v in best_k.items()}
        best = min(best_k, key=best_k.get)
        state["best_model_path"], state["best_model_score"] = best, torch.tensor(best_k[best])
        worst = max(best_k, key=best_k.get)
        state["kth_best_model_path"], state["kth_value"] = worst, torch.tensor(best_k[worst])
    ckpt["mvla_sim_note"] = note
    with atomic_path(dst) as tmp:
        torch.save(ckpt, tmp)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/bundle_reference.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run", type=Path, help="the training run folder")
    parser.add_argument("dest", type=Path, nargs="?", default=DEFAULT_DEST, help="where to bundle it")
    parser.add_argument("--epochs", help="comma-separated epochs to bundle (default: the run's top-3 files)")
    args = parser.parse_args(argv)
    named = {int(m[1]): (p, float(m[2])) for p in args.run.glob("*.ckpt") if (m := NAME.match(p.name))}
    if not named:
        print(
            f"error: no epoch_* checkpoints in {args.run}; train first (python -m train.finetune ...)",
            file=sys.stderr,
        )
        return 2
    if args.epochs:
        try:
            epochs = [int(e) for e in args.epochs.split(",")]
        except ValueError:
            print(f"error: --epochs {args.epochs!r}: give epochs like 3,8,19", file=sys.stderr)
            return 2
        missing = [e for e in epochs if e not in named]
        if missing:
            print(
                f"error: epochs {missing} not in {args.run} (have {sorted(named)}; train with --save-top-k -1)",
                file=sys.stderr,
            )
            return 2
        chosen = {e: named[e] for e in epochs}
        note = (
            f"bundled by scripts/bundle_reference.py: epochs {epochs} of a run that kept every epoch, chosen to span "
            "training so that the top-3-by-val_loss report compares checkpoints that behave differently; the "
            "checkpoint callback's state names exactly these files"
        )
    else:
        chosen = dict(sorted(named.items(), key=lambda kv: kv[1][1])[:3])
        note = "bundled by scripts/bundle_reference.py: the run's top-3 by val_loss"
    args.dest.mkdir(parents=True, exist_ok=True)
    for old in args.dest.glob("*.ckpt"):
        old.unlink()
    best_k = {str((args.dest / p.name).resolve()): v for p, v in chosen.values()} if args.epochs else None
    sources = [p for p, _ in chosen.values()] + (
        [args.run / "last.ckpt"] if (args.run / "last.ckpt").is_file() else []
    )
    for src in sources:
        slim_copy(src, args.dest / src.name, best_k, note + "; optimizer and scheduler states removed")
        print(f"{args.dest / src.name}: {(args.dest / src.name).stat().st_size / 1e6:.1f} MB")
    for version in sorted(args.run.glob("version_*")):
        target = args.dest / version.name
        target.mkdir(exist_ok=True)
        for name in ("metrics.csv", "hparams.yaml"):
            if (version / name).is_file():
                atomic_write_bytes(target / name, (version / name).read_bytes())
    if (args.run / "config.json").is_file():
        atomic_write_bytes(args.dest / "config.json", (args.run / "config.json").read_bytes())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
