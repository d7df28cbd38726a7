"""Checkpoint I/O for the Mobile VLA: Lightning ``.ckpt`` files in the RoboVLMs layout.

This module owns reading a checkpoint without holding a multi-GB file twice (inspection
memory-maps it and reads shapes only; loading builds the model with parameters on the meta
device and hands each one its checkpoint tensor, so the weights exist once), finding its config (``hyper_parameters["configs"]`` or a RoboVLMs JSON
beside it), mapping every key form of the real checkpoints onto :class:`MobileVLAModel`, and
the :class:`KeyReport` that says what was loaded, missing, unexpected or mis-shaped.

Key forms (after the Lightning module's ``model.`` prefix is stripped), all mapped onto one
canonical name ``backbone.<path>``:

* ``backbone.<path>``: RoboKosMos' backbone, LoRA injected in place;
* ``model.base_model.model.<path>``: the same tensors through the peft wrapper that RoboVLMs
  registers a second time as ``model``;
* ``backbone.base_model.model.<path>``: the peft wrapper stored as ``backbone`` (another
  RoboVLMs version);
* ``<layer>.weight`` where the model has ``<layer>.base_layer.weight``: a layer saved without
  LoRA;
* ``text_model.lm_head.weight`` is tied to ``text_model.model.embed_tokens.weight``.

Rules: a load that leaves any trainable weight (LoRA, head, action token) missing raises
:class:`CheckpointError` listing them; so do shape mismatches and unexpected trained weights
(LoRA/head keys the model has no place for). Missing frozen backbone weights are filled from
the pretrained Kosmos-2 folder when one is used, and are an error otherwise. Nothing is loaded
with a silent ``strict=False``.

Checkpoints are pickles: load only files from a source you trust (``weights_only=True`` is
tried first; Lightning metadata may need ``weights_only=False``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from policies.vla_config import ConfigError, VLAConfig

logger = logging.getLogger(__name__)

LIGHTNING_PREFIX = "model."
KOSMOS2_DIR_ENV = "MVLA_KOSMOS2_DIR"
"""Environment variable naming a local Kosmos-2 folder (used when no backbone_dir is given)."""

FORM_BACKBONE = "backbone.<path>"
FORM_PEFT_MODEL = "model.base_model.model.<path>"
FORM_PEFT_BACKBONE = "backbone.base_model.model.<path>"
FORM_HEAD = "act_head.* / action_token"
FORM_OTHER = "other"

ALIAS_EXPLANATIONS: dict[str, str] = {
    "lightning": "Lightning module prefix 'model.' stripped from every key",
    FORM_BACKBONE: "RoboKosMos backbone (peft injected LoRA in place)",
    FORM_PEFT_MODEL: "the same backbone tensors through the peft wrapper registered again as 'model'",
    FORM_PEFT_BACKBONE: "peft wrapper stored as 'backbone' (another RoboVLMs code version)",
    "plain_linear": "'<layer>.weight/.bias' saved without LoRA, loaded into '<layer>.base_layer.*'",
    "tied_lm_head": "text_model.lm_head.weight is tied to text_model.model.embed_tokens.weight",
}

TIED_KEYS: dict[str, str] = {
    "backbone.text_model.lm_head.weight": "backbone.text_model.model.embed_tokens.weight",
}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model (one-line message naming the file)."""


# ------------------------------------------------------------------------------ key forms
def canonical_key(key: str) -> tuple[str, str]:
    """Map a model-level key (no Lightning prefix) to (canonical ``backbone.<path>`` name, form)."""
    for prefix, form in (
        ("backbone.base_model.model.", FORM_PEFT_BACKBONE),
        ("model.base_model.model.", FORM_PEFT_MODEL),
    ):
        if key.startswith(prefix):
            return "backbone." + key[len(prefix) :], form
    if key.startswith("backbone."):
        return key, FORM_BACKBONE
    if key.startswith("act_head.") or key == "action_token":
        return key, FORM_HEAD
    return key, FORM_OTHER


def is_trained_key(canonical: str) -> bool:
    """LoRA, head and action-token weights: what fine-tuning produced."""
    return "lora_" in canonical or canonical.startswith("act_head.") or canonical == "action_token"


def strip_lightning_prefix(
    state_dict: dict[str, Any], lightning: bool | None = None
) -> tuple[dict[str, Any], bool]:
    """Remove the Lightning module's ``model.`` prefix.

    ``lightning=None`` detects it: a raw :class:`MobileVLAModel` state dict also has keys
    starting with ``model.`` (its peft alias), so the prefix is taken as Lightning's only when
    keys like ``model.backbone.``, ``model.act_head.`` or ``model.model.`` are present.
    """
    if lightning is None:
        lightning = any(
            k.startswith(("model.backbone.", "model.act_head.", "model.model.")) or k == "model.action_token"
            for k in state_dict
        )
    if not lightning:
        return dict(state_dict), False
    out = {}
    for k, v in state_dict.items():
        out[k[len(LIGHTNING_PREFIX) :] if k.startswith(LIGHTNING_PREFIX) else "<no 'model.' prefix>" + k] = v
    return out, True


@dataclass
class KeyReport:
    """What a checkpoint provides against what the model expects (canonical names)."""

    checkpoint: str
    expected: int = 0
    loaded: int = 0
    missing_trained: list[str] = field(default_factory=list)
    missing_frozen: list[str] = field(default_factory=list)
    filled_from_pretrained: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unexpected_trained: list[str] = field(default_factory=list)
    shape_mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    forms: dict[str, int] = field(default_factory=dict)
    """Number of checkpoint keys in each key form."""
    aliases: list[str] = field(default_factory=list)
    """Human-readable explanations of the alias rules that were used."""

    @property
    def ok(self) -> bool:
        return not (
            self.missing_trained or self.missing_frozen or self.shape_mismatched or self.unexpected_trained
        )

    def problems(self) -> list[str]:
        out = []
        if self.missing_trained:
            out.append(
                f"{len(self.missing_trained)} trained weights missing: {_preview(self.missing_trained)}"
            )
        if self.missing_frozen:
            out.append(
                f"{len(self.missing_frozen)} frozen backbone weights missing: {_preview(self.missing_frozen)}"
            )
        if self.shape_mismatched:
            items = [f"{k} ckpt {list(a)} vs model {list(b)}" for k, a, b in self.shape_mismatched]
            out.append(f"{len(items)} shape mismatches: {_preview(items)}")
        if self.unexpected_trained:
            out.append(
                f"{len(self.unexpected_trained)} trained weights the model has no place for: {_preview(self.unexpected_trained)}"
            )
        return out

    def summary(self) -> dict[str, Any]:
        """Compact JSON-able view (counts and short lists) for ``settings()`` records."""
        return {
            "checkpoint": self.checkpoint,
            "expected": self.expected,
            "loaded": self.loaded,
            "missing_trained": len(self.missing_trained),
            "missing_frozen": len(self.missing_frozen),
            "filled_from_pretrained": len(self.filled_from_pretrained),
            "unexpected": len(self.unexpected),
            "shape_mismatched": len(self.shape_mismatched),
            "forms": dict(self.forms),
            "aliases": list(self.aliases),
            "ok": self.ok,
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape_mismatched"] = [[k, list(a), list(b)] for k, a, b in self.shape_mismatched]
        out["ok"] = self.ok
        return out

    def format(self, max_items: int = 10) -> str:
        lines = [
            f"checkpoint: {self.checkpoint}",
            f"tensors expected: {self.expected}  loaded: {self.loaded}  ok: {self.ok}",
            "key forms: " + ", ".join(f"{k}={v}" for k, v in sorted(self.forms.items())),
        ]
        lines += [f"  alias: {a}" for a in self.aliases]
        for title, items in (
            ("missing trained", self.missing_trained),
            ("missing frozen", self.missing_frozen),
            ("filled from pretrained folder", self.filled_from_pretrained),
            ("unexpected (trained)", self.unexpected_trained),
            ("unexpected", self.unexpected),
        ):
            lines.append(f"{title}: {len(items)}")
            lines += [f"  {k}" for k in items[:max_items]]
            if len(items) > max_items:
                lines.append(f"  ... {len(items) - max_items} more")
        lines.append(f"shape mismatched: {len(self.shape_mismatched)}")
        lines += [
            f"  {k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.shape_mismatched[:max_items]
        ]
        return "\n".join(lines)


def _preview(items: list[str], n: int = 8) -> str:
    head = ", ".join(items[:n])
    return head + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


# ------------------------------------------------------------------------------ reading
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

    def load(use_mmap: bool, weights_only: bool) -> Any:
        return torch.load(p, map_location="cpu", mmap=use_mmap, weights_only=weights_only)

    use_mmap = mmap
    weights_only = True
    for _ in range(3):
        try:
            obj = load(use_mmap, weights_only)
            break
        except pickle.UnpicklingError as exc:
            if weights_only and allow_pickle and "weights only" in str(exc).lower():
                logger.info("%s: needs full unpickling for its metadata (trusted file assumed)", p)
                weights_only = False
                continue
            raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({_one_line(exc)})") from exc
        except RuntimeError as exc:
            if use_mmap and "mmap" in str(exc).lower():
                use_mmap = False  # legacy (non-zip) serialization cannot be memory-mapped
                continue
            raise CheckpointError(f"{p}: truncated or corrupt checkpoint ({_one_line(exc)})") from exc
        except Exception as exc:  # noqa: BLE001 - any failure to read is one CheckpointError
            raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({_one_line(exc)})") from exc
    else:  # pragma: no cover - the loop always breaks or raises
        raise CheckpointError(f"{p}: could not be loaded")
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{p}: expected a dict (Lightning checkpoint or state dict), got {type(obj).__name__}"
        )
    return obj


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > 120 and ". " in text:
        text = text.split(". ", 1)[0]
    return f"{type(exc).__name__}: {text}"[:200]


def extract_state_dict(
    ckpt: dict[str, Any], path: str | os.PathLike[str] = "<checkpoint>"
) -> tuple[dict[str, Any], bool]:
    """The model-level state dict (Lightning prefix stripped) and whether a prefix was stripped."""
    if "state_dict" in ckpt:
        sd = ckpt["state_dict"]
        if not isinstance(sd, dict) or not sd:
            raise CheckpointError(f"{path}: 'state_dict' is empty or not a dict")
        return strip_lightning_prefix(sd, lightning=None)
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return strip_lightning_prefix(ckpt, lightning=None)
    raise CheckpointError(f"{path}: no 'state_dict' in checkpoint (keys: {sorted(ckpt)[:8]})")


def config_from_checkpoint(
    ckpt: dict[str, Any],
    path: str | os.PathLike[str] = "<checkpoint>",
    *,
    config_path: str | os.PathLike[str] | None = None,
    backbone_dir: str | os.PathLike[str] | None = None,
    config_root: str | os.PathLike[str] | None = None,
) -> VLAConfig:
    """The run's :class:`VLAConfig`: from ``config_path`` if given, else ``hyper_parameters["configs"]``.

    A relative backbone path (``.vlms/kosmos-2-patch14-224``) is resolved against
    ``config_root``, else the first existing of: the current folder and the training repo root
    guessed from a ``runs/...`` checkpoint path. ``backbone_dir`` (or ``$MVLA_KOSMOS2_DIR``)
    replaces it.
    """
    backbone_dir = backbone_dir or os.environ.get(KOSMOS2_DIR_ENV) or None
    try:
        if config_path is not None:
            raw: Any = json.loads(Path(config_path).read_text(encoding="utf-8"))
        else:
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
                raw = json.loads(raw)
            raw = dict(raw)
        config = VLAConfig.from_robovlms(raw, config_root=config_root, backbone_dir=backbone_dir)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read config {config_path}: {_one_line(exc)}") from exc
    except ConfigError as exc:
        raise CheckpointError(f"{path}: config not supported: {exc}") from exc
    if config_root is None and not config.is_preset and not Path(config.backbone).is_absolute():
        for root in _candidate_roots(Path(path)):
            if (root / config.backbone / "config.json").is_file():
                config = config.replace(backbone=str(root / config.backbone))
                break
    return config


def _candidate_roots(ckpt_path: Path) -> list[Path]:
    roots = [Path.cwd()]
    parts = ckpt_path.resolve().parts
    if "runs" in parts:
        idx = len(parts) - 1 - parts[::-1].index("runs")
        roots.append(Path(*parts[:idx]))
    return roots


# ------------------------------------------------------------------------------ matching
def expected_tensors(model: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], bool]]:
    """Canonical name -> (shape, trainable) of every tensor in the model's state dict."""
    trainable = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    out: dict[str, tuple[tuple[int, ...], bool]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        canon, _ = canonical_key(key)
        is_trainable = key in trainable or is_trained_key(canon)
        if canon in out:
            out[canon] = (out[canon][0], out[canon][1] or is_trainable)
        else:
            out[canon] = (tuple(tensor.shape), is_trainable)
    return out


def match_keys(
    checkpoint_shapes: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[tuple[int, ...], bool]],
    *,
    checkpoint: str = "<checkpoint>",
    lightning_prefix: bool = False,
) -> tuple[KeyReport, dict[str, str]]:
    """Match checkpoint keys (model level) to the expected canonical tensors.

    Returns the report and ``{canonical name: checkpoint key}`` for every tensor found.
    """
    report = KeyReport(checkpoint=checkpoint, expected=len(expected))
    forms: Counter[str] = Counter()
    by_canon: dict[str, list[str]] = {}
    for key in checkpoint_shapes:
        canon, form = canonical_key(key)
        forms[form] += 1
        by_canon.setdefault(canon, []).append(key)
    used_aliases: set[str] = {"lightning"} if lightning_prefix else set()
    used_aliases.update(f for f in (FORM_BACKBONE, FORM_PEFT_MODEL, FORM_PEFT_BACKBONE) if forms.get(f))

    mapping: dict[str, str] = {}
    consumed: set[str] = set()
    for canon, (shape, trainable) in expected.items():
        sources = by_canon.get(canon)
        if not sources and ".base_layer." in canon:
            plain = canon.replace(".base_layer.", ".")
            if plain in by_canon and plain not in expected:
                sources = by_canon[plain]
                consumed.add(plain)
                used_aliases.add("plain_linear")
        if not sources and canon in TIED_KEYS and TIED_KEYS[canon] in by_canon:
            sources = by_canon[TIED_KEYS[canon]]
            used_aliases.add("tied_lm_head")
        if not sources:
            (report.missing_trained if trainable else report.missing_frozen).append(canon)
            continue
        consumed.add(canon)
        bad = [s for s in sources if tuple(checkpoint_shapes[s]) != tuple(shape)]
        if bad:
            report.shape_mismatched.append((canon, tuple(checkpoint_shapes[bad[0]]), tuple(shape)))
            continue
        mapping[canon] = sources[0]
    for canon, keys in by_canon.items():
        if canon not in consumed:
            report.unexpected.extend(keys)
            if is_trained_key(canon):
                report.unexpected_trained.extend(keys)
    report.loaded = len(mapping)
    report.forms = dict(forms)
    report.aliases = [f"{k}: {ALIAS_EXPLANATIONS[k]}" for k in ALIAS_EXPLANATIONS if k in used_aliases]
    return report, mapping


def covers_backbone(report: KeyReport) -> bool:
    """Whether the checkpoint holds every frozen backbone tensor (no pretrained weights needed)."""
    return not report.missing_frozen


# ------------------------------------------------------------------------------ loading
@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create every ``nn.Parameter`` on the meta device while the context is open.

    Buffers (e.g. Kosmos-2's sinusoidal position table, which no checkpoint stores) are built
    normally; parameters cost no memory or init time until :func:`_load_tensors` assigns them.
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


def _load_tensors(model: torch.nn.Module, mapping: dict[str, str], state_dict: dict[str, Any]) -> None:
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
        raise CheckpointError(f"{len(still_meta)} parameters were not loaded: {_preview(still_meta)}")


@dataclass
class LoadedCheckpoint:
    model: Any  # MobileVLAModel
    config: VLAConfig
    report: KeyReport
    path: str


def load_model(
    path: str | os.PathLike[str],
    *,
    config_path: str | os.PathLike[str] | None = None,
    backbone_dir: str | os.PathLike[str] | None = None,
    config_root: str | os.PathLike[str] | None = None,
) -> LoadedCheckpoint:
    """Build a :class:`MobileVLAModel` from a checkpoint and load its weights (on CPU, float32).

    The keys are checked against the model's structure (built on the meta device, no memory)
    before any real weights are created, so a wrong file fails fast.

    Raises:
        CheckpointError: unreadable file, missing config, or a key report that is not ok.
    """
    from policies.vla_model import MobileVLAModel, check_backbone_folder

    path_str = str(path)
    # Read into memory once (no mmap): the parameters then take these tensors without a copy,
    # and the model does not depend on a file that training may overwrite.
    ckpt = read_checkpoint(path, mmap=False)
    config = config_from_checkpoint(
        ckpt, path_str, config_path=config_path, backbone_dir=backbone_dir, config_root=config_root
    )
    state_dict, lightning = extract_state_dict(ckpt, path_str)
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}

    if not config.is_preset:
        check_backbone_folder(config.backbone)  # tokenizer and config come from it in any case
    meta = MobileVLAModel.build_meta(config)
    report, _ = match_keys(shapes, expected_tensors(meta), checkpoint=path_str, lightning_prefix=lightning)
    del meta
    need_pretrained = bool(report.missing_frozen) and not config.is_preset
    if (
        report.missing_trained
        or report.shape_mismatched
        or report.unexpected_trained
        or (report.missing_frozen and config.is_preset)
    ):
        raise CheckpointError(f"{path_str}: does not fit the config's model: " + "; ".join(report.problems()))

    if report.missing_frozen:
        # LoRA-only checkpoint: the frozen weights come from the pretrained Kosmos-2 folder
        model = MobileVLAModel.build(config, seed=config.seed, load_backbone_weights=need_pretrained)
    else:
        # Full checkpoint: build the structure with parameters on the meta device (no random
        # init, no second copy of the backbone), then give each parameter its checkpoint tensor.
        with parameters_on_meta():
            model = MobileVLAModel.build(config, seed=config.seed, load_backbone_weights=False)
    report, mapping = match_keys(
        shapes, expected_tensors(model), checkpoint=path_str, lightning_prefix=lightning
    )
    if report.missing_frozen and model.backbone_source == "pretrained":
        report.filled_from_pretrained, report.missing_frozen = report.missing_frozen, []
    if not report.ok:
        raise CheckpointError(f"{path_str}: " + "; ".join(report.problems()))
    with torch.no_grad():
        _load_tensors(model, mapping, state_dict)
    if report.unexpected:
        logger.warning(
            "%s: %d unexpected keys ignored: %s",
            path_str,
            len(report.unexpected),
            _preview(report.unexpected),
        )
    logger.info(
        "%s: loaded %d/%d tensors (%s)",
        path_str,
        report.loaded,
        report.expected,
        ", ".join(f"{k}={v}" for k, v in report.forms.items()),
    )
    del ckpt, state_dict
    return LoadedCheckpoint(model=model, config=config, report=report, path=path_str)


def save_checkpoint(
    model: Any,
    path: str | os.PathLike[str],
    *,
    epoch: int = 0,
    global_step: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a Lightning-style checkpoint of a :class:`MobileVLAModel`.

    ``{"state_dict": {"model." + key: tensor}, "hyper_parameters": {"configs": config JSON}}``,
    i.e. what a LightningModule holding the model as ``self.model`` saves.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ckpt: dict[str, Any] = {
        "epoch": epoch,
        "global_step": global_step,
        "state_dict": {LIGHTNING_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()},
        "hyper_parameters": {"configs": model.config.to_robovlms()},
    }
    if extra:
        ckpt.update(extra)
    torch.save(ckpt, p)
    return p


def load_policy(path: str | os.PathLike[str], **settings: Any):  # -> VLAPolicy
    """A ready :class:`policies.vla_policy.VLAPolicy` from a checkpoint (settings as keywords)."""
    from policies.vla_policy import VLAPolicy

    return VLAPolicy.from_checkpoint(path, **settings)


_LORA_RE = re.compile(r"\.lora_[AB]\.")


def count_parameters(shapes: dict[str, tuple[int, ...]], freeze_backbone: bool = True) -> dict[str, int]:
    """Parameter counts from model-level state-dict shapes (aliases counted once).

    total, trainable (LoRA + head + action token, plus the base when not frozen), lora, head,
    action_token, backbone_base.
    """
    seen: dict[str, int] = {}
    for key, shape in shapes.items():
        canon, _ = canonical_key(key)
        n = 1
        for d in shape:
            n *= int(d)
        seen.setdefault(canon, n)
    counts = {"total": 0, "trainable": 0, "lora": 0, "head": 0, "action_token": 0, "backbone_base": 0}
    for canon, n in seen.items():
        if canon in TIED_KEYS and TIED_KEYS[canon] in seen:
            continue
        counts["total"] += n
        if _LORA_RE.search(canon):
            counts["lora"] += n
        elif canon.startswith("act_head."):
            counts["head"] += n
        elif canon == "action_token":
            counts["action_token"] += n
        else:
            counts["backbone_base"] += n
    counts["trainable"] = counts["lora"] + counts["head"] + counts["action_token"]
    if not freeze_backbone:
        counts["trainable"] += counts["backbone_base"]
    return counts


__all__ = [
    "ALIAS_EXPLANATIONS",
    "CheckpointError",
    "KOSMOS2_DIR_ENV",
    "KeyReport",
    "LoadedCheckpoint",
    "canonical_key",
    "config_from_checkpoint",
    "count_parameters",
    "expected_tensors",
    "extract_state_dict",
    "load_model",
    "load_policy",
    "match_keys",
    "read_checkpoint",
    "save_checkpoint",
    "strip_lightning_prefix",
]
