"""Key matching of Mobile VLA checkpoints: every key form of the real checkpoints, one report.

This module owns mapping checkpoint state-dict keys onto :class:`policies.vla.model.
MobileVLAModel`'s tensors and the :class:`KeyReport` that says what was loaded, missing,
unexpected or mis-shaped. It reads names and shapes only (no torch import).

Key forms (after the Lightning module's ``model.`` prefix is stripped), all mapped onto one
canonical name ``backbone.<path>``:

* ``backbone.<path>``: RoboKosMos' backbone, LoRA injected in place;
* ``model.base_model.model.<path>``: the same tensors through the peft wrapper that the fork
  registers a second time as ``model``;
* ``backbone.base_model.model.<path>``: the peft wrapper stored as ``backbone`` (another code
  version);
* ``<layer>.weight`` where the model has ``<layer>.base_layer.weight``: a layer saved without LoRA;
* ``text_model.lm_head.weight`` is tied to ``text_model.model.embed_tokens.weight``.

Known keys without effect: ``vision_resampler.*`` (the PerceiverResampler of
``use_vision_resampler``, which the fork's Kosmos-2 path never calls) are recorded as ignored.

Rules (applied by :func:`policies.vla.checkpoint.load_model`): a trained weight (LoRA, head, action
token) that is missing, mis-shaped or has no place in the model is an error; missing frozen
backbone weights come from the pretrained Kosmos-2 folder when one is used.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

LIGHTNING_PREFIX = "model."

FORM_BACKBONE = "backbone.<path>"
FORM_PEFT_MODEL = "model.base_model.model.<path>"
FORM_PEFT_BACKBONE = "backbone.base_model.model.<path>"
FORM_HEAD = "act_head.* / action_token"
FORM_KNOWN_UNUSED = "known, without effect"
FORM_OTHER = "other"

ALIAS_EXPLANATIONS: dict[str, str] = {
    "lightning": "Lightning module prefix 'model.' stripped from every key",
    FORM_BACKBONE: "RoboKosMos backbone (peft injected LoRA in place)",
    FORM_PEFT_MODEL: "the same backbone tensors through the peft wrapper registered again as 'model'",
    FORM_PEFT_BACKBONE: "peft wrapper stored as 'backbone' (another RoboVLMs code version)",
    "plain_linear": "'<layer>.weight/.bias' saved without LoRA, loaded into '<layer>.base_layer.*'",
    "tied_lm_head": "text_model.lm_head.weight is tied to text_model.model.embed_tokens.weight",
}

KNOWN_UNUSED_PREFIXES: dict[str, str] = {
    "vision_resampler.": "use_vision_resampler's PerceiverResampler: the fork's Kosmos-2 path never calls it",
}

TIED_KEYS: dict[str, str] = {
    "backbone.text_model.lm_head.weight": "backbone.text_model.model.embed_tokens.weight",
}

_LORA_RE = re.compile(r"\.lora_[AB]\.")

BUFFER_KEYS = frozenset({"act_head.class_weights_tensor"})
"""Head buffers (not parameters): loaded, but not counted as parameters."""


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
    if key.startswith(tuple(KNOWN_UNUSED_PREFIXES)):
        return key, FORM_KNOWN_UNUSED
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
    ignored_known: list[str] = field(default_factory=list)
    """Keys of known modules that have no effect (see ``KNOWN_UNUSED_PREFIXES``)."""
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
                f"{len(self.missing_trained)} trained weights missing: {preview(self.missing_trained)}"
            )
        if self.missing_frozen:
            out.append(
                f"{len(self.missing_frozen)} frozen backbone weights missing: {preview(self.missing_frozen)}"
            )
        if self.shape_mismatched:
            items = [f"{k} ckpt {list(a)} vs model {list(b)}" for k, a, b in self.shape_mismatched]
            out.append(f"{len(items)} shape mismatches: {preview(items)}")
        if self.unexpected_trained:
            out.append(
                f"{len(self.unexpected_trained)} trained weights the model has no place for: "
                f"{preview(self.unexpected_trained)}"
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
            "ignored_known": len(self.ignored_known),
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
            ("ignored (known, no effect)", self.ignored_known),
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


def preview(items: list[str], n: int = 8) -> str:
    head = ", ".join(items[:n])
    return head + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def expected_tensors(model: Any) -> dict[str, tuple[tuple[int, ...], bool]]:
    """Canonical name -> (shape, trainable) of every tensor in a model's state dict."""
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
        if form == FORM_KNOWN_UNUSED and canon not in expected:
            report.ignored_known.append(key)
            continue
        by_canon.setdefault(canon, []).append(key)
    used_aliases: set[str] = {"lightning"} if lightning_prefix else set()
    used_aliases.update(f for f in (FORM_BACKBONE, FORM_PEFT_MODEL, FORM_PEFT_BACKBONE) if forms.get(f))

    mapping: dict[str, str] = {}
    consumed: set[str] = set()
    for canon, (shape, trainable) in expected.items():
        sources = _sources_of(canon, by_canon, expected, consumed, used_aliases)
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
    _explain_aliases(report, used_aliases)
    return report, mapping


def _sources_of(
    canon: str,
    by_canon: dict[str, list[str]],
    expected: dict[str, tuple[tuple[int, ...], bool]],
    consumed: set[str],
    used_aliases: set[str],
) -> list[str] | None:
    """The checkpoint keys holding the expected tensor ``canon``: its own, a plain Linear's weight
    for a LoRA base layer, or the tied input embedding for ``lm_head`` (recording the alias used)."""
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
    return sources


def _explain_aliases(report: KeyReport, used_aliases: set[str]) -> None:
    report.aliases = [f"{k}: {ALIAS_EXPLANATIONS[k]}" for k in ALIAS_EXPLANATIONS if k in used_aliases]
    if report.ignored_known:
        report.aliases += [
            f"{prefix}*: {why}"
            for prefix, why in KNOWN_UNUSED_PREFIXES.items()
            if any(k.startswith(prefix) for k in report.ignored_known)
        ]


def count_parameters(shapes: dict[str, tuple[int, ...]], freeze_backbone: bool = True) -> dict[str, int]:
    """Parameter counts from model-level state-dict shapes (aliases counted once).

    total, trainable (LoRA + head + action token, plus the base when not frozen), lora, head,
    action_token, backbone_base.
    """
    seen: dict[str, int] = {}
    for key, shape in shapes.items():
        canon, form = canonical_key(key)
        if form == FORM_KNOWN_UNUSED or canon in BUFFER_KEYS:
            continue
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
    "KNOWN_UNUSED_PREFIXES",
    "KeyReport",
    "LIGHTNING_PREFIX",
    "canonical_key",
    "count_parameters",
    "expected_tensors",
    "is_trained_key",
    "match_keys",
    "preview",
    "strip_lightning_prefix",
]
