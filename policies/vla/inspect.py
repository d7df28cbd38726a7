"""``python -m policies.vla.inspect``: what a Mobile VLA checkpoint or RoboVLMs config holds.

``python -m policies.vla.inspect CKPT`` prints the run's resolved model, its training era and the
evidence for it, the settings of both profiles (``as_trained``, ``as_deployed``), parameter
counts (each backbone tensor counted once across its aliases) and the key report against the
model the config describes. The file is memory-mapped and only tensor shapes are read; the
model's structure is built on the ``meta`` device, so a 6.4 GB checkpoint inspects in seconds.

``python -m policies.vla.inspect --config FILE`` validates a RoboVLMs config alone (its ``parent``
chain merged), with no weights: the resolved model (head, classes, window, chunk, LoRA targets),
the era rule and both profiles.

Exit status: 0 when the checkpoint fits its config (or the config is supported), 1 when the key
report has problems, 2 on unreadable or unsupported input (one line naming the problem).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mvla_sim.facts import INSTRUCTIONS
from policies.vla.checkpoint_io import (
    CheckpointError,
    config_from_checkpoint,
    extract_state_dict,
    read_checkpoint,
)
from policies.vla.checkpoint_keys import count_parameters, expected_tensors, match_keys
from policies.vla.config import ConfigError, VLAConfig
from policies.vla.processors import instruction_visibility
from policies.vla.profiles import ERAS, PROFILES, ProfileError, resolve
from policies.vla.robovlms_config import parse as parse_robovlms

logger = logging.getLogger(__name__)


def describe_model(config: VLAConfig) -> dict[str, Any]:
    """The resolved model a config describes (what a reader checks first)."""
    from policies.vla.model import lora_target_modules

    targets: Any = list(config.lora_target_modules) if config.lora_target_modules else None
    if config.lora_enable and targets is None:
        try:
            from policies.vla.model import MobileVLAModel

            meta = MobileVLAModel.build_meta(config.replace(lora_enable=False))
            targets = lora_target_modules(meta.backbone) + ["(every nn.Linear but lm_head: the fork's rule)"]
        except Exception as exc:  # noqa: BLE001 - description only
            targets = [f"every nn.Linear but lm_head (not listed: {exc})"]
    return {
        "backbone": config.backbone,
        "head": config.head_type,
        "hidden_size": config.hidden_size,
        "lstm_layers": config.num_lstm_layers,
        "classes": config.num_classes if config.is_classification else None,
        "class_map": {str(k): list(v) for k, v in config.resolved_class_map().items()}
        if config.is_classification
        else None,
        "window_size": config.window_size,
        "chunk": config.fwd_pred_next_n,
        "image_size": config.image_size,
        "lora": {
            "enable": config.lora_enable,
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "targets": targets,
        },
        "abs_action": config.abs_action,
        "use_vision_resampler": config.use_vision_resampler,
        "recipe": config.recipe.to_dict() if config.recipe is not None else None,
        "notes": list(config.notes),
    }


def describe_profiles(config: VLAConfig, checkpoint: str | Path | None, era: str | None) -> dict[str, Any]:
    """Both profiles' resolved settings (or why a profile is refused), each with whether the model
    sees its instruction (:func:`policies.vla.processors.instruction_visibility`)."""
    out: dict[str, Any] = {}
    overrides: dict[str, Any] = {"era": era} if era else {}
    if config.abs_action:
        overrides["abs_action_side"] = "instruction"
    tokenizer = _tokenizer_or_none(config)
    for profile in PROFILES:
        try:
            res = resolve(config, profile, checkpoint=checkpoint, overrides=overrides)
            out[profile] = res.to_dict()
        except ProfileError as exc:
            out[profile] = {"refused": str(exc)}
            continue
        out[profile]["instruction_visibility"] = instruction_visibility(
            res.settings, tokenizer, INSTRUCTIONS["left"], _image_positions(config)
        ).to_dict()
    return out


def _tokenizer_or_none(config: VLAConfig) -> Any:
    """The backbone's tokenizer, or None when its folder is not on this machine (counts unknown)."""
    from policies.vla.model import BackboneNotFoundError, load_tokenizer

    try:
        return load_tokenizer(config)
    except (BackboneNotFoundError, OSError, ValueError) as exc:
        logger.info("no tokenizer for %s (%s): prompt token counts unknown", config.backbone, exc)
        return None


def _image_positions(config: VLAConfig) -> int:
    """Kosmos-2's image features per frame (``latent_query_num``; 64 unless the backbone says otherwise)."""
    from policies.vla.model import kosmos2_config

    try:
        return int(kosmos2_config(config).latent_query_num)
    except Exception:  # noqa: BLE001 - the folder may be absent: the real model's 64
        return 64


def era_rule() -> list[str]:
    return [f"{e.name}: {e.description}" for e in ERAS]


def inspect_checkpoint(
    path: str | Path,
    *,
    config_path: str | Path | None = None,
    backbone_dir: str | Path | None = None,
    era: str | None = None,
) -> dict[str, Any]:
    """Config, era, profiles, parameter counts and key report of a checkpoint, from shapes only."""
    import torch

    from policies.vla.model import MobileVLAModel

    ckpt = read_checkpoint(path, mmap=True)
    config = config_from_checkpoint(ckpt, str(path), config_path=config_path, backbone_dir=backbone_dir)
    state_dict, lightning = extract_state_dict(ckpt, str(path))
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    meta = MobileVLAModel.build_meta(config)
    report, _ = match_keys(shapes, expected_tensors(meta), checkpoint=str(path), lightning_prefix=lightning)
    callbacks = ckpt.get("callbacks") if isinstance(ckpt.get("callbacks"), dict) else {}
    return {
        "checkpoint": str(path),
        "size_bytes": Path(path).stat().st_size,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "model": describe_model(config),
        "profiles": describe_profiles(config, path, era),
        "era_rule": era_rule(),
        "config": config.to_dict(),
        "parameters": count_parameters(shapes, freeze_backbone=config.freeze_backbone),
        "parameters_expected": meta.parameter_counts(),
        "num_tensors": len(shapes),
        "dtypes": sorted(
            {str(v.dtype).replace("torch.", "") for v in state_dict.values() if isinstance(v, torch.Tensor)}
        ),
        "callbacks": sorted(callbacks),
        "key_report": report,
    }


def inspect_config(
    path: str | Path, *, backbone_dir: str | Path | None = None, era: str | None = None
) -> dict[str, Any]:
    """A RoboVLMs config alone: the resolved model, the era rule and both profiles."""
    config = parse_robovlms(Path(path), backbone_dir=backbone_dir)
    return {
        "config_file": str(path),
        "model": describe_model(config),
        "era_rule": era_rule(),
        "era_note": "a checkpoint's era comes from era= or its run folder's date; a config alone has neither",
        "profiles": describe_profiles(config, None, era),
        "config": config.to_dict(),
    }


def _fmt_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _print_model(model: dict[str, Any]) -> None:
    lora = model["lora"]
    print(f"backbone     {model['backbone']}")
    head = f"head         {model['head']}  hidden {model['hidden_size']}  LSTM layers {model['lstm_layers']}"
    if model["classes"]:
        head += f"  classes {model['classes']}"
    print(head)
    if model["class_map"]:
        print("class map    " + ", ".join(f"{k}: {v}" for k, v in model["class_map"].items()))
    print(
        f"window/chunk {model['window_size']} frames / {model['chunk']} actions  image {model['image_size']} px"
    )
    targets = lora["targets"]
    print(f"LoRA         enable {lora['enable']}  r {lora['r']}  alpha {lora['alpha']}  targets {targets}")
    if model["abs_action"]:
        print("abs_action   trained on |linear_y|: acts only with abs_action_side='instruction'")
    if model["recipe"]:
        print(f"recipe       {model['recipe']}")
    for note in model["notes"]:
        print(f"note         {note}")


_PROFILE_KEYS = (
    "transport",
    "resize",
    "normalization",
    "channel_order",
    "instruction",
    "text_padding",
    "token_layout",
    "forward_path",
    "decode",
    "first_action_zero",
    "episode_start",
    "action_clip",
)


def _print_profiles(profiles: dict[str, Any], era_rule_lines: list[str]) -> None:
    first = next((p for p in profiles.values() if "era" in p), None)
    if first is not None:
        era = first["era"]
        print(
            f"era          {era['era'] or '(recipe recorded by the run)'}  from {era['source']}: {era['evidence']}"
        )
        for w in era["warnings"]:
            print(f"  warning: {w}")
    print("era rule     " + "\n             ".join(era_rule_lines))
    print()
    names = list(profiles)
    print(f"{'setting':<18}" + "".join(f"{n:<22}" for n in names))
    for key in _PROFILE_KEYS:
        row = [str(profiles[n]["settings"][key]) if "settings" in profiles[n] else "-" for n in names]
        print(f"{key:<18}" + "".join(f"{v:<22}" for v in row))
    for n in names:
        if "refused" in profiles[n]:
            print(f"{n}: refused: {profiles[n]['refused']}")
        else:
            print(f"{n}: {profiles[n]['instruction_visibility']['line']}")
            const = profiles[n]["settings"]
            if const["instruction"] == "constant":
                print(f"{n}: instruction given: {const['constant_instruction']!r}")
            for w in profiles[n]["warnings"]:
                if w not in (first or {}).get("era", {}).get("warnings", []):
                    print(f"{n}: warning: {w}")


def _print_checkpoint(info: dict[str, Any]) -> None:
    print(
        f"checkpoint   {info['checkpoint']}  ({info['size_bytes'] / 1e6:.1f} MB, epoch {info['epoch']}, "
        f"step {info['global_step']})"
    )
    _print_model(info["model"])
    print(f"tensors      {info['num_tensors']}  dtypes {', '.join(info['dtypes'])}")
    _print_profiles(info["profiles"], info["era_rule"])
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
        prog="python -m policies.vla.inspect",
        description=(
            "Show what a Mobile VLA Lightning checkpoint (.ckpt) holds: the resolved model, its training era "
            "and the evidence, the settings of both profiles (as_trained, as_deployed), parameter counts and a "
            "key report (missing / unexpected / mis-shaped tensors, key aliases). Reads shapes only "
            "(memory-mapped); never loads the weights. With --config FILE and no checkpoint: validate a "
            "RoboVLMs config alone (exit 0 if supported, 2 with the unsupported feature named)."
        ),
    )
    parser.add_argument(
        "checkpoint", type=Path, nargs="?", help="path to a .ckpt file (e.g. runs/.../last.ckpt)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="RoboVLMs config JSON: validated alone without a checkpoint, or used for a checkpoint that "
        "lacks hyper_parameters['configs']",
    )
    parser.add_argument(
        "--backbone-dir",
        type=Path,
        default=None,
        help="local Kosmos-2 folder (for its config.json and tokenizer)",
    )
    parser.add_argument(
        "--era", default=None, help="training era name or date YYYY-MM-DD (default: from the run folder)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.checkpoint is None and args.config is None:
        parser.print_usage(sys.stderr)
        print("error: give a checkpoint, or --config FILE to validate a config alone", file=sys.stderr)
        return 2
    try:
        if args.checkpoint is None:
            info = inspect_config(args.config, backbone_dir=args.backbone_dir, era=args.era)
        else:
            info = inspect_checkpoint(
                args.checkpoint, config_path=args.config, backbone_dir=args.backbone_dir, era=args.era
            )
    except (CheckpointError, ConfigError, ProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - no config the team could write gives a traceback
        print(f"error: {type(exc).__name__}: {exc} (please report this input)", file=sys.stderr)
        return 2
    if args.json:
        out = dict(info)
        if "key_report" in out:
            out["key_report"] = info["key_report"].to_dict()
        print(json.dumps(out, indent=2, default=str))
    elif args.checkpoint is None:
        print(f"config       {info['config_file']}  (supported)")
        _print_model(info["model"])
        _print_profiles(info["profiles"], info["era_rule"])
        print(info["era_note"])
    else:
        _print_checkpoint(info)
    if "key_report" in info and not info["key_report"].ok:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
