"""Loading a Mobile VLA checkpoint into :class:`policies.vla.model.MobileVLAModel`.

This module owns building the model a checkpoint's config describes and giving it the
checkpoint's tensors without holding a multi-GB file twice: the keys are first matched against
the model's structure on the ``meta`` device (:mod:`policies.vla.checkpoint_keys`), so a wrong file
fails fast; a full checkpoint then builds the model with parameters on the meta device and hands
each one its checkpoint tensor (the weights exist once); a LoRA-only checkpoint takes its frozen
weights from the pretrained Kosmos-2 folder. Nothing is loaded with a silent ``strict=False``.
Reading files is :mod:`policies.vla.checkpoint_io`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from policies.vla.checkpoint_io import (
    CheckpointError,
    config_from_checkpoint,
    extract_state_dict,
    one_line,
    read_checkpoint,
    save_checkpoint,
)
from policies.vla.checkpoint_keys import KeyReport, canonical_key, expected_tensors, match_keys, preview
from policies.vla.config import VLAConfig

if TYPE_CHECKING:
    from policies.vla.model import MobileVLAModel

logger = logging.getLogger(__name__)


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create every ``nn.Parameter`` on the meta device while the context is open.

    Buffers (e.g. Kosmos-2's sinusoidal position table, which no checkpoint stores) are built
    normally; parameters cost no memory or init time until :func:`load_tensors` assigns them.
    """
    original = torch.nn.Module.register_parameter

    def register(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        if param is not None and not param.is_meta:
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def load_tensors(model: torch.nn.Module, mapping: dict[str, str], state_dict: dict[str, Any]) -> None:
    """Load the mapped checkpoint tensors into ``model`` (each shared tensor once).

    Meta parameters take their checkpoint tensor itself (converted only if the dtype differs),
    so the weights exist once in memory; real parameters and buffers are filled in place.
    """
    replaced: dict[int, torch.nn.Parameter] = {}
    done: set[int] = set()
    for key, var in model.state_dict(keep_vars=True).items():
        canon = canonical_key(key)[0]
        if canon not in mapping or id(var) in done:
            continue
        done.add(id(var))
        src = state_dict[mapping[canon]]
        if var.is_meta:
            replaced[id(var)] = torch.nn.Parameter(src.to(dtype=var.dtype), requires_grad=var.requires_grad)
        else:
            var.copy_(src)
    if replaced:
        for module in model.modules():
            for name, param in list(module._parameters.items()):
                if param is not None and id(param) in replaced:
                    setattr(module, name, replaced[id(param)])  # setattr: nn.LSTM refreshes its flat weights
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta:
        raise CheckpointError(f"{len(still_meta)} parameters were not loaded: {preview(still_meta)}")


@dataclass
class LoadedCheckpoint:
    model: Any  # MobileVLAModel
    config: VLAConfig
    report: KeyReport
    path: str
    checkpoint: dict[str, Any]
    """The checkpoint's metadata (epoch, global_step, callbacks), without its tensors."""


def load_model(
    path: str | os.PathLike[str],
    *,
    config_path: str | os.PathLike[str] | None = None,
    backbone_dir: str | os.PathLike[str] | None = None,
    config_root: str | os.PathLike[str] | None = None,
) -> LoadedCheckpoint:
    """Build a :class:`MobileVLAModel` from a checkpoint and load its weights (on CPU, float32).

    Raises:
        CheckpointError: unreadable file, missing or unsupported config, or a key report that
            is not ok.
    """
    path_str = str(path)
    # Read into memory once (no mmap): the parameters then take these tensors without a copy,
    # and the model does not depend on a file that training may overwrite.
    ckpt = read_checkpoint(path, mmap=False)
    config = config_from_checkpoint(
        ckpt, path_str, config_path=config_path, backbone_dir=backbone_dir, config_root=config_root
    )
    state_dict, lightning = extract_state_dict(ckpt, path_str)
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    missing_frozen = _check_fit(config, shapes, lightning, path_str)
    model = _build(config, len(missing_frozen), path_str)
    report, mapping = match_keys(
        shapes, expected_tensors(model), checkpoint=path_str, lightning_prefix=lightning
    )
    if report.missing_frozen and model.backbone_source == "pretrained":
        report.filled_from_pretrained, report.missing_frozen = report.missing_frozen, []
    if not report.ok:
        raise CheckpointError(f"{path_str}: " + "; ".join(report.problems()))
    with torch.no_grad():
        load_tensors(model, mapping, state_dict)
    _log_report(report, path_str)
    meta_info = {
        k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer_states", "lr_schedulers")
    }
    del ckpt, state_dict
    return LoadedCheckpoint(model=model, config=config, report=report, path=path_str, checkpoint=meta_info)


def _check_fit(
    config: VLAConfig, shapes: dict[str, tuple[int, ...]], lightning: bool, path_str: str
) -> list[str]:
    """Check the checkpoint's tensors against the config's model (built on the meta device).

    Returns the frozen backbone weights the checkpoint lacks (all of them: a LoRA-only checkpoint).

    Raises:
        CheckpointError: the Kosmos-2 folder is missing, or the tensors do not fit the model.
    """
    from policies.vla.model import BackboneNotFoundError, MobileVLAModel, check_backbone_folder

    if not config.is_preset:
        try:
            check_backbone_folder(config.backbone)  # the tokenizer and config come from it in any case
        except BackboneNotFoundError as exc:
            raise CheckpointError(f"{path_str}: {exc}") from None
    meta = MobileVLAModel.build_meta(config)
    report, _ = match_keys(shapes, expected_tensors(meta), checkpoint=path_str, lightning_prefix=lightning)
    if (
        report.missing_trained
        or report.shape_mismatched
        or report.unexpected_trained
        or (report.missing_frozen and config.is_preset)
    ):
        raise CheckpointError(f"{path_str}: does not fit the config's model: " + "; ".join(report.problems()))
    return list(report.missing_frozen)


def _build(config: VLAConfig, missing_frozen: int, path_str: str) -> MobileVLAModel:
    """The model to load into: pretrained frozen weights when the checkpoint lacks ``missing_frozen``
    of them (LoRA-only), else empty parameters."""
    from policies.vla.model import MobileVLAModel

    if missing_frozen:
        # the frozen weights come from the pretrained Kosmos-2 folder
        try:
            return MobileVLAModel.build(config, seed=config.seed, load_backbone_weights=True)
        except OSError as exc:
            raise CheckpointError(
                f"{path_str}: {missing_frozen} frozen backbone weights are not in the checkpoint and "
                f"the Kosmos-2 folder {config.backbone} has no weights to fill them ({one_line(exc)})"
            ) from None
    # Full checkpoint: the structure with parameters on the meta device (no random init, no
    # second copy of the backbone), then each parameter gets its checkpoint tensor.
    with parameters_on_meta():
        return MobileVLAModel.build(config, seed=config.seed, load_backbone_weights=False)


def _log_report(report: KeyReport, path_str: str) -> None:
    if report.unexpected:
        logger.warning(
            "%s: %d unexpected keys ignored: %s", path_str, len(report.unexpected), preview(report.unexpected)
        )
    logger.info(
        "%s: loaded %d/%d tensors (%s)",
        path_str,
        report.loaded,
        report.expected,
        ", ".join(f"{k}={v}" for k, v in report.forms.items()),
    )


__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "load_model",
    "load_tensors",
    "parameters_on_meta",
    "save_checkpoint",
]
