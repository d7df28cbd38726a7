"""Reading and writing Mobile VLA checkpoint files (Lightning ``.ckpt`` in the fork's layout).

This module owns ``torch.load`` of a checkpoint (memory-mapped for inspection, whole for
loading, ``weights_only`` first), the model-level state dict inside it, the run's config
(``hyper_parameters["configs"]`` or a RoboVLMs JSON beside it) with its backbone path resolved
against the training repository, and writing our own checkpoints in the same layout.

Checkpoints are pickles: load only files from a source you trust (``weights_only=True`` is tried
first; Lightning metadata may need ``weights_only=False``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from mvla_sim.files import atomic_path
from policies.messages import first_line as one_line
from policies.vla.checkpoint_keys import LIGHTNING_PREFIX, strip_lightning_prefix
from policies.vla.config import ConfigError, VLAConfig
from policies.vla.robovlms_config import parse as parse_robovlms
from policies.vla.robovlms_config import to_robovlms

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model (one-line message naming the file)."""


def read_checkpoint(
    path: str | os.PathLike[str], *, mmap: bool = True, allow_pickle: bool = True
) -> dict[str, Any]:
    """``torch.load`` a checkpoint on CPU (memory-mapped when ``mmap``: shapes can be read cheaply).

    Raises:
        CheckpointError: one line naming the file when it is absent, truncated or corrupt.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: checkpoint file is empty")
    use_mmap, weights_only = mmap, True
    for _ in range(3):
        try:
            obj = torch.load(p, map_location="cpu", mmap=use_mmap, weights_only=weights_only)
            break
        except pickle.UnpicklingError as exc:
            if weights_only and allow_pickle and "weights only" in str(exc).lower():
                logger.info("%s: needs full unpickling for its metadata (trusted file assumed)", p)
                weights_only = False
                continue
            raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({one_line(exc)})") from exc
        except RuntimeError as exc:
            if use_mmap and "mmap" in str(exc).lower():
                use_mmap = False  # legacy (non-zip) serialization cannot be memory-mapped
                continue
            raise CheckpointError(f"{p}: truncated or corrupt checkpoint ({one_line(exc)})") from exc
        except Exception as exc:  # noqa: BLE001 - any failure to read is one CheckpointError
            raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({one_line(exc)})") from exc
    else:  # pragma: no cover - the loop always breaks or raises
        raise CheckpointError(f"{p}: could not be loaded")
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{p}: expected a dict (Lightning checkpoint or state dict), got {type(obj).__name__}"
        )
    return obj


def extract_state_dict(
    ckpt: dict[str, Any], path: str | os.PathLike[str] = "<checkpoint>"
) -> tuple[dict[str, Any], bool]:
    """The model-level state dict (Lightning prefix stripped) and whether a prefix was stripped."""
    if "state_dict" in ckpt:
        sd = ckpt["state_dict"]
        if not isinstance(sd, dict) or not sd:
            raise CheckpointError(f"{path}: 'state_dict' is empty or not a dict")
        return strip_lightning_prefix(sd, lightning=None)
    if "model_state_dict" in ckpt and isinstance(ckpt["model_state_dict"], dict):
        return strip_lightning_prefix(ckpt["model_state_dict"], lightning=None)
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return strip_lightning_prefix(ckpt, lightning=None)
    raise CheckpointError(f"{path}: no 'state_dict' in checkpoint (keys: {sorted(ckpt)[:8]})")


def training_root(checkpoint: str | os.PathLike[str]) -> Path | None:
    """The training repository a checkpoint lives in: the folder above its ``runs/``."""
    parts = Path(checkpoint).resolve().parts
    if "runs" in parts:
        idx = len(parts) - 1 - parts[::-1].index("runs")
        return Path(*parts[:idx])
    return None


def raw_config(
    ckpt: dict[str, Any],
    path: str | os.PathLike[str] = "<checkpoint>",
    config_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any] | str | os.PathLike[str]:
    """The run's RoboVLMs config: ``config_path`` if given, else ``hyper_parameters["configs"]``."""
    if config_path is not None:
        return config_path
    hp = ckpt.get("hyper_parameters") or {}
    raw = hp.get("configs") if isinstance(hp, dict) else None
    if raw is None and isinstance(hp, dict) and "act_head" in hp:
        raw = dict(hp)
    if raw is None:
        raise CheckpointError(
            f"{path}: no hyper_parameters['configs'] in checkpoint; pass the run's RoboVLMs config JSON "
            "(config_path=..., CLI --config)"
        )
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CheckpointError(
                f"{path}: hyper_parameters['configs'] is not JSON: {one_line(exc)}"
            ) from None
    return dict(raw)


def config_from_checkpoint(
    ckpt: dict[str, Any],
    path: str | os.PathLike[str] = "<checkpoint>",
    *,
    config_path: str | os.PathLike[str] | None = None,
    backbone_dir: str | os.PathLike[str] | None = None,
    config_root: str | os.PathLike[str] | None = None,
) -> VLAConfig:
    """The run's :class:`VLAConfig`, its backbone path resolved.

    A relative backbone path (``.vlms/kosmos-2-patch14-224``, or a hub id mapped there) is
    resolved against ``config_root``, else the first existing of: the current folder and the
    training repository above the checkpoint's ``runs/``. ``backbone_dir`` (or
    ``$MVLA_KOSMOS2_DIR``, except for a run of a preset backbone) replaces it.
    """
    try:
        config = parse_robovlms(
            raw_config(ckpt, path, config_path), config_root=config_root, backbone_dir=backbone_dir
        )
    except ConfigError as exc:
        raise CheckpointError(f"{path}: config not supported: {exc}") from exc
    if config_root is None and not config.is_preset and not Path(config.backbone).is_absolute():
        roots = [Path.cwd()] + [r for r in [training_root(path)] if r is not None]
        for root in roots:
            if (root / config.backbone / "config.json").is_file():
                config = config.replace(backbone=str(root / config.backbone))
                break
    return config


def save_checkpoint(
    model: Any,
    path: str | os.PathLike[str],
    *,
    epoch: int = 0,
    global_step: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a Lightning-style checkpoint of a :class:`policies.vla.model.MobileVLAModel`.

    ``{"state_dict": {"model." + key: tensor}, "hyper_parameters": {"configs": config JSON}}``,
    i.e. what a LightningModule holding the model as ``self.model`` saves. Written atomically.
    """
    p = Path(path)
    ckpt: dict[str, Any] = {
        "epoch": epoch,
        "global_step": global_step,
        "state_dict": {LIGHTNING_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()},
        "hyper_parameters": {"configs": to_robovlms(model.config)},
    }
    if extra:
        ckpt.update(extra)
    with atomic_path(p) as tmp:
        torch.save(ckpt, tmp)
    return p


__all__ = [
    "CheckpointError",
    "config_from_checkpoint",
    "extract_state_dict",
    "one_line",
    "raw_config",
    "read_checkpoint",
    "save_checkpoint",
    "training_root",
]
