"""``python -m policies.inspect CKPT``: what a Mobile VLA checkpoint holds, without loading it.

Prints the run's config, parameter counts (total / trainable / LoRA / head / action token,
each backbone tensor counted once across its aliases) and the key report against the model
the config describes. The file is memory-mapped and only tensor shapes are read; the model's
structure is built on the ``meta`` device (no weights), so a 6.4 GB checkpoint inspects in
seconds with little memory. Exit status: 0 when the checkpoint fits its config, 1 when the key
report has problems, 2 on unreadable input (one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from policies.checkpoint import (
    CheckpointError,
    config_from_checkpoint,
    count_parameters,
    expected_tensors,
    extract_state_dict,
    match_keys,
    read_checkpoint,
)

logger = logging.getLogger(__name__)


def inspect_checkpoint(
    path: str | Path,
    *,
    config_path: str | Path | None = None,
    backbone_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Config, parameter counts and key report of a checkpoint, from shapes only."""
    from policies.vla_model import MobileVLAModel

    ckpt = read_checkpoint(path, mmap=True)
    config = config_from_checkpoint(ckpt, str(path), config_path=config_path, backbone_dir=backbone_dir)
    state_dict, lightning = extract_state_dict(ckpt, str(path))
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    meta = MobileVLAModel.build_meta(config)
    report, _ = match_keys(shapes, expected_tensors(meta), checkpoint=str(path), lightning_prefix=lightning)
    expected_counts = meta.parameter_counts()
    callbacks = ckpt.get("callbacks") if isinstance(ckpt.get("callbacks"), dict) else {}
    return {
        "checkpoint": str(path),
        "size_bytes": Path(path).stat().st_size,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "config": config.to_dict(),
        "parameters": count_parameters(shapes, freeze_backbone=config.freeze_backbone),
        "parameters_expected": expected_counts,
        "num_tensors": len(shapes),
        "dtypes": sorted(
            {str(v.dtype).replace("torch.", "") for v in state_dict.values() if isinstance(v, torch.Tensor)}
        ),
        "callbacks": sorted(callbacks),
        "key_report": report,
    }


def _fmt_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _print_human(info: dict[str, Any]) -> None:
    cfg = info["config"]
    print(
        f"checkpoint   {info['checkpoint']}  ({info['size_bytes'] / 1e6:.1f} MB, epoch {info['epoch']}, step {info['global_step']})"
    )
    print(f"backbone     {cfg['backbone']}")
    print(f"head         {cfg['head_type']}  hidden {cfg['hidden_size']}  layers {cfg['num_lstm_layers']}")
    print(
        f"window/chunk {cfg['window_size']} frames / {cfg['fwd_pred_next_n']} actions  history {cfg['history_type']}"
    )
    print(
        f"image        {cfg['image_size']} px  normalization {cfg['normalization']}  channels {cfg['channel_order']}"
    )
    print(
        f"LoRA         enable {cfg['lora_enable']}  r {cfg['lora_r']}  alpha {cfg['lora_alpha']}  dropout {cfg['lora_dropout']}  bias {cfg['lora_bias']}"
    )
    print(f"tensors      {info['num_tensors']}  dtypes {', '.join(info['dtypes'])}")
    print()
    print(f"{'parameters':<14}{'checkpoint':>14}{'config':>14}")
    for key in ("total", "trainable", "lora", "head", "action_token", "backbone_base"):
        print(
            f"{key:<14}{_fmt_count(info['parameters'][key]):>14}{_fmt_count(info['parameters_expected'][key]):>14}"
        )
    print()
    print(info["key_report"].format())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m policies.inspect",
        description=(
            "Show what a Mobile VLA Lightning checkpoint (.ckpt) holds: its RoboVLMs config, parameter "
            "counts and a key report (missing / unexpected / mis-shaped tensors, key aliases). Reads shapes "
            "only (memory-mapped); never loads the weights."
        ),
    )
    parser.add_argument("checkpoint", type=Path, help="path to a .ckpt file (e.g. runs/.../last.ckpt)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="RoboVLMs config JSON, if the checkpoint lacks hyper_parameters['configs']",
    )
    parser.add_argument(
        "--backbone-dir",
        type=Path,
        default=None,
        help="local Kosmos-2 folder (for its config.json); default: the config's path",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        info = inspect_checkpoint(args.checkpoint, config_path=args.config, backbone_dir=args.backbone_dir)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = dict(info)
        out["key_report"] = info["key_report"].to_dict()
        print(json.dumps(out, indent=2, default=str))
    else:
        _print_human(info)
    return 0 if info["key_report"].ok else 1


if __name__ == "__main__":
    sys.exit(main())
