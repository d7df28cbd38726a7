"""RoboVLMs config JSON <-> :class:`policies.vla.config.VLAConfig`.

This module owns reading the team's config files (``parent`` inheritance, as RoboVLMs'
``load_config`` merges them), mapping every config form the team wrote onto a
:class:`VLAConfig` (or refusing, in one line naming the feature, what this project does not
reproduce), and writing a :class:`VLAConfig` back as a RoboVLMs config for our own runs.

Forms read (FACTS.md, "Heads and config forms"):

* heads ``LSTMDecoder``, ``MobileVLALSTMDecoder``, ``MobileVLAClassificationDecoder`` (6 or 9
  classes, ``class_map``, ``class_weights``); ``hidden_size`` absent = the fork's 1024;
* ``window_size`` / ``fwd_pred_next_n`` at the top level, else in ``act_head``, else in
  ``train_dataset`` (the fork hands the top-level values to the head);
* ``parent`` (a file's parent is resolved relative to that file, then to the current folder:
  RoboVLMs' loader opens it relative to the folder it runs in);
* ``model_url`` / hub ids instead of a local backbone: mapped to a local folder
  (``backbone_dir`` / ``$MVLA_KOSMOS2_DIR``, else ``.vlms/<name>`` under the training root, where
  the fork's ``main.py`` clones it);
* ``train_setup.lora_target_modules``, ``tune_mm_projector``, ``use_vision_resampler``,
  ``down_sample: "pooling"`` (identity with one action token), ``train_dataset.abs_action``;
* training-only keys (optimizer, data paths, augmentation) never block loading.

Refused: a backbone other than Kosmos-2 (PaliGemma), the 7-D action format, token-discretized
actions (``action_space: "discrete"`` with a regression head), forward-prediction heads, several
action tokens per frame (``latent`` > 1), ``history_type`` other than ``"post"``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from policies.vla.config import (
    BACKBONE_PRESETS,
    CLASSIFICATION_HEAD,
    HEAD_TYPES,
    MVLA_SECTION,
    PRESET_BACKBONE_CONFIGS,
    ConfigError,
    TrainingConfig,
    TrainingRecipe,
    UnsupportedConfigError,
    VLAConfig,
)

REFERENCE_CONFIG = (
    Path(__file__).resolve().parents[2] / "assets" / "configs" / "mobile_vla_20251114_lora.json"
)
"""The config of the run in the team's report: the layout ``to_robovlms`` starts from."""

KOSMOS2_DIR_ENV = "MVLA_KOSMOS2_DIR"
"""Environment variable naming a local Kosmos-2 folder (used when no backbone_dir is given)."""

_DEFAULTS = VLAConfig()
_TRAINING_DEFAULTS = TrainingConfig()


# ------------------------------------------------------------------------------ reading files
def _deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """RoboVLMs' merge: nested dicts merge key by key; ``{"__override__": true}`` replaces."""
    for key, value in update.items():
        if isinstance(value, dict):
            if value.get("__override__", False):
                base[key] = {k: v for k, v in value.items() if k != "__override__"}
            elif isinstance(base.get(key), dict):
                _deep_update(base[key], value)
            else:
                base[key] = copy.deepcopy(value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config_file(path: str | os.PathLike[str], _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a RoboVLMs config JSON and merge its ``parent`` chain (child keys win).

    Raises:
        ConfigError: unreadable file, invalid JSON, a missing parent or a ``parent`` cycle.
    """
    p = Path(path)
    if p.resolve() in _chain:
        cycle = " -> ".join(str(c) for c in (*_chain, p.resolve()))
        raise ConfigError(f"config 'parent' chain loops: {cycle}")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read RoboVLMs config {str(p)!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"RoboVLMs config {str(p)!r} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"RoboVLMs config {str(p)!r} must be a JSON object, got {type(raw).__name__}")
    merged: dict[str, Any] = {}
    parent = raw.get("parent")
    if parent:
        # RoboVLMs opens it as given (relative to the folder training ran in): beside this file,
        # the current folder, any folder above this file (the training repo's root), and, for an
        # absolute path of the training machine, the same file name beside this one.
        candidates = [p.parent / parent, Path(parent)]
        if not Path(parent).is_absolute():
            candidates += [ancestor / parent for ancestor in p.resolve().parents]
        candidates.append(p.parent / Path(parent).name)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            tried = ", ".join(str(c) for c in candidates[:2])
            raise ConfigError(
                f"config {str(p)!r}: its parent {parent!r} was not found (looked at {tried}, in the folders above "
                f"the file and for {Path(parent).name!r} beside it)"
            )
        merged = load_config_file(found, (*_chain, p.resolve()))
    return _deep_update(merged, raw)


def _as_dict(config: dict[str, Any] | str | os.PathLike[str]) -> tuple[dict[str, Any], Path | None]:
    if isinstance(config, dict):
        return copy.deepcopy(config), None
    if isinstance(config, str) and config.lstrip().startswith("{"):
        try:
            data = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"RoboVLMs config text is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("a RoboVLMs config must be a JSON object")
        return data, None
    if isinstance(config, (str, os.PathLike)):
        return load_config_file(config), Path(config)
    raise ConfigError(
        f"a RoboVLMs config must be a dict, JSON text or a file path, got {type(config).__name__}"
    )


# ------------------------------------------------------------------------------ backbone paths
def is_hub_reference(value: str) -> bool:
    """A URL or an ``org/name`` hub id rather than a local path."""
    if value.startswith(("http://", "https://")):
        return True
    parts = value.split("/")
    return (
        len(parts) == 2 and all(parts) and not value.startswith((".", "/", "~")) and not Path(value).exists()
    )


def resolve_backbone(
    cfg: dict[str, Any],
    *,
    backbone_dir: str | os.PathLike[str] | None = None,
    config_root: str | os.PathLike[str] | None = None,
) -> tuple[str, str]:
    """(backbone, how it was found). A preset name or a path; the path may not exist."""
    extra = cfg.get(MVLA_SECTION) or {}
    env_dir = os.environ.get(KOSMOS2_DIR_ENV)
    value = str(extra.get("backbone") or "") if isinstance(extra, dict) else ""
    if value in BACKBONE_PRESETS:
        # a run of a random-weight preset has no folder: a Kosmos-2 folder given for real runs
        # (argument or environment) does not apply to it
        return value, f"{MVLA_SECTION}.backbone preset"
    if backbone_dir:
        return str(backbone_dir), "backbone_dir argument"
    if env_dir:
        return env_dir, f"${KOSMOS2_DIR_ENV}"
    raw = (
        value
        or (cfg.get("vlm") or {}).get("pretrained_model_name_or_path")
        or cfg.get("model_path")
        or (cfg.get("tokenizer") or {}).get("pretrained_model_name_or_path")
        or cfg.get("model_url")
    )
    if not raw:
        raise ConfigError(
            "RoboVLMs config names no backbone: none of vlm.pretrained_model_name_or_path, model_path, model_url"
        )
    raw = str(raw)
    if raw in BACKBONE_PRESETS:
        return raw, "config"
    if is_hub_reference(raw):
        # main.py clones a model_url into .vlms/<repo name> under the training repo and uses that
        name = raw.rstrip("/").split("/")[-1]
        local = Path(".vlms") / name
        root = Path(config_root) if config_root is not None else None
        return str(root / local if root else local), f"hub reference {raw!r} mapped to .vlms/{name}"
    if not os.path.isabs(raw) and config_root is not None:
        return str(Path(config_root) / raw), "config path under the training root"
    return raw, "config path"


# ------------------------------------------------------------------------------ parsing
def _first(*pairs: tuple[str, Any]) -> tuple[str, Any] | None:
    for where, value in pairs:
        if value is not None:
            return where, value
    return None


def _int_key(key: Any) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ConfigError(f"class_map keys must be class indices, got {key!r}") from None


def parse(
    config: dict[str, Any] | str | os.PathLike[str],
    *,
    backbone_dir: str | os.PathLike[str] | None = None,
    config_root: str | os.PathLike[str] | None = None,
) -> VLAConfig:
    """Parse a RoboVLMs config into a :class:`VLAConfig`.

    Args:
        config: the config dict (as stored in a checkpoint: already merged), JSON text, or a
            file path (its ``parent`` chain is merged).
        backbone_dir: a local Kosmos-2 folder that replaces the config's backbone path.
        config_root: the training repository root that relative paths such as
            ``.vlms/kosmos-2-patch14-224`` are resolved against.

    Raises:
        UnsupportedConfigError: a feature this project does not reproduce (one line naming it).
        ConfigError: a malformed or inconsistent value.
    """
    cfg, _ = _as_dict(config)
    try:
        return _parse(cfg, backbone_dir=backbone_dir, config_root=config_root)
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ConfigError(f"RoboVLMs config has a malformed value: {type(exc).__name__}: {exc}") from None


def _parse(
    cfg: dict[str, Any],
    *,
    backbone_dir: str | os.PathLike[str] | None,
    config_root: str | os.PathLike[str] | None,
) -> VLAConfig:
    notes: list[str] = []
    _check_backbone_model(cfg, notes)
    head = _head_fields(cfg, notes)
    train_ds = cfg.get("train_dataset") or {}
    if isinstance(train_ds, list):
        train_ds = train_ds[0] if train_ds else {}
    sizes = _chunk_sizes(cfg, train_ds, notes)
    _note_inert_model_keys(cfg, notes)
    classification = head["head_type"] == CLASSIFICATION_HEAD
    classes = _class_fields(cfg, classification)
    train_setup = cfg.get("train_setup") or {}
    lora = _lora_fields(train_setup, notes)
    tok = cfg.get("tokenizer") or {}
    if tok.get("tokenizer_type", "kosmos") != "kosmos":
        raise UnsupportedConfigError(
            f"tokenizer.tokenizer_type {tok.get('tokenizer_type')!r}: only 'kosmos' is supported"
        )
    data = _data_fields(cfg, train_ds, classification, notes)
    ours = _mvla_fields(cfg, backbone_dir, config_root, notes)
    training = _training_config(cfg, train_ds, train_setup, notes)
    d = _DEFAULTS
    try:
        return VLAConfig(
            **ours,
            **sizes,
            **head,
            **classes,
            **lora,
            **data,
            image_size=cfg.get("image_size", d.image_size),
            image_mean=tuple(cfg.get("image_mean") or d.image_mean),
            image_std=tuple(cfg.get("image_std") or d.image_std),
            max_text_len=int(tok.get("max_text_len", d.max_text_len)),
            use_vision_resampler=bool(cfg.get("use_vision_resampler", False)),
            norm_action=bool(cfg.get("norm_action", d.norm_action)),
            norm_min=float(cfg.get("norm_min", d.norm_min)),
            norm_max=float(cfg.get("norm_max", d.norm_max)),
            seed=int(cfg.get("seed", d.seed)),
            training=training,
            robovlms_source=cfg,
            notes=tuple(notes),
        )
    except TypeError as exc:
        raise ConfigError(f"RoboVLMs config has a value of the wrong type: {exc}") from None


def _check_backbone_model(cfg: dict[str, Any], notes: list[str]) -> None:
    """Refuse every backbone but Kosmos-2 (the fork's ``RoboKosMos``)."""
    model_name = cfg.get("model") or (cfg.get("vlm") or {}).get("name")
    robovlm_name = cfg.get("robovlm_name")
    if any("paligemma" in str(v).lower() for v in (model_name, robovlm_name)):
        raise UnsupportedConfigError(
            f"PaliGemma backbone ({'model ' + repr(model_name) if model_name else 'robovlm_name ' + repr(robovlm_name)}): "
            "not supported, this project reproduces the Kosmos-2 runs"
        )
    if model_name != "kosmos":
        raise UnsupportedConfigError(
            f"backbone {model_name or robovlm_name!r}: not supported, only Kosmos-2 (model 'kosmos') is"
        )
    if robovlm_name not in (None, "RoboKosMos"):
        notes.append(
            f"robovlm_name {robovlm_name!r} is not the fork's class; model 'kosmos': RoboKosMos assumed"
        )


def _check_action_form(cfg: dict[str, Any], head: dict[str, Any]) -> None:
    """Refuse the action forms this project does not reproduce: unknown heads, 7-D actions, discrete
    action tokens, forward-prediction heads, a second camera."""
    head_type = head.get("type")
    if head_type not in HEAD_TYPES:
        raise UnsupportedConfigError(
            f"act_head.type {head_type!r}: not supported (supported: {', '.join(HEAD_TYPES)})"
        )
    if head.get("action_dim", 2) == 7 or cfg.get("action_dim") == 7:
        raise UnsupportedConfigError(
            "7-D action format (action_dim 7, the older dataset class): not supported, the Mobile VLA acts in "
            "[linear_x, linear_y]"
        )
    action_space = head.get("action_space", "continuous")
    if action_space not in ("continuous", "discrete") or (
        action_space == "discrete" and head_type != CLASSIFICATION_HEAD
    ):
        raise UnsupportedConfigError(
            f"act_head.action_space {action_space!r} with {head_type}: the fork then predicts discretized action "
            "tokens with the language model's head (RoboVLMs' discrete path), which is not supported"
        )
    if cfg.get("fwd_head") not in (None, {}):
        raise UnsupportedConfigError("fwd_head (forward image prediction head): not supported")
    if cfg.get("use_hand_rgb"):
        raise UnsupportedConfigError(
            "use_hand_rgb (a second, gripper camera): not supported, the robot has one camera"
        )


def _head_fields(cfg: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The action head's :class:`VLAConfig` fields from ``act_head`` (refusing what is not reproduced)."""
    head = cfg.get("act_head")
    if not isinstance(head, dict):
        raise ConfigError(f"act_head must be an object naming the action head, got {head!r}")
    _check_action_form(cfg, head)
    action_dim = head.get("action_dim", 2)
    if head["type"] == CLASSIFICATION_HEAD and action_dim != 2:
        notes.append(f"act_head.action_dim {action_dim} is the class count's placeholder; actions are 2-D")
        action_dim = 2
    latent = head.get("latent", 1)
    if latent != 1:
        raise UnsupportedConfigError(
            f"act_head.latent {latent}: not supported, the fork's Kosmos-2 path appends one action token per frame"
        )
    down_sample = head.get("down_sample", "none")
    if down_sample not in ("none", "pooling"):
        raise UnsupportedConfigError(
            f"act_head.down_sample {down_sample!r}: not supported (the fork raises too)"
        )
    if down_sample == "pooling":
        notes.append("down_sample 'pooling' max-pools one action token: the identity")
    history_type = head.get("history_type", "post")
    if history_type != "post":
        raise UnsupportedConfigError(f"act_head.history_type {history_type!r}: not supported, only 'post' is")
    d = _DEFAULTS
    return {
        "head_type": head["type"],
        "hidden_size": head.get("hidden_size", d.hidden_size),
        "num_lstm_layers": head.get("num_layers", d.num_lstm_layers),
        "lstm_dropout": float(head.get("policy_rnn_dropout_p", d.lstm_dropout)),
        "action_dim": action_dim,
        "down_sample": down_sample,
        "latent": latent,
        "history_type": history_type,
    }


def _chunk_sizes(cfg: dict[str, Any], train_ds: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``window_size`` and ``fwd_pred_next_n``: top level, else ``act_head``, else ``train_dataset``."""
    head = cfg["act_head"]
    sizes = {}
    for key, ds_keys in (
        ("window_size", ("window_size",)),
        ("fwd_pred_next_n", ("fwd_pred_next_n", "action_chunk_size")),
    ):
        found = _first(
            ("top level", cfg.get(key)),
            ("act_head", head.get(key)),
            *((f"train_dataset.{k}", train_ds.get(k)) for k in ds_keys),
        )
        if found is None:
            raise ConfigError(f"RoboVLMs config gives no {key} (top level, act_head or train_dataset)")
        where, value = found
        sizes[key] = value
        if where != "top level":
            notes.append(f"{key} {value} read from {where}")
        elif head.get(key) not in (None, value):
            notes.append(f"{key}: top level {value} overrides act_head's {head.get(key)} (as the fork does)")
    return sizes


def _note_inert_model_keys(cfg: dict[str, Any], notes: list[str]) -> None:
    """Keys the fork reads but that never change an output."""
    if cfg.get("use_vision_resampler"):
        notes.append(
            "use_vision_resampler: the fork's Kosmos-2 path encodes pixels with Kosmos-2's own projection, so "
            "the resampler's weights never change an output"
        )
    if cfg.get("use_state"):
        notes.append(
            "use_state: the fork reads it under a misspelt key ('use_state, False'), so it is never used"
        )


def _class_fields(cfg: dict[str, Any], classification: bool) -> dict[str, Any]:
    """``num_classes``, ``class_map`` and ``class_weights`` of a classification head (defaults else)."""
    out: dict[str, Any] = {"num_classes": _DEFAULTS.num_classes, "class_map": None, "class_weights": None}
    if not classification:
        return out
    head = cfg["act_head"]
    out["num_classes"] = int(head.get("num_classes", cfg.get("num_classes", _DEFAULTS.num_classes)))
    raw_map = cfg.get("class_map", head.get("class_map"))
    if raw_map is not None:
        if not isinstance(raw_map, dict):
            raise ConfigError(f"class_map must be an object {{class: [linear_x, linear_y]}}, got {raw_map!r}")
        out["class_map"] = {_int_key(k): tuple(float(x) for x in v) for k, v in raw_map.items()}
    if head.get("class_weights") is not None:
        out["class_weights"] = tuple(float(w) for w in head["class_weights"])
    return out


def _lora_fields(train_setup: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """LoRA and the trainable parts of the backbone, from ``train_setup``."""
    d = _DEFAULTS
    targets = train_setup.get("lora_target_modules")
    if isinstance(targets, str):
        targets = [targets]
    lora_enable = train_setup.get("lora_enable")
    if lora_enable is None:
        notes.append("train_setup.lora_enable absent: no LoRA (the fork requires the key)")
    return {
        "lora_enable": bool(lora_enable),
        "lora_r": int(train_setup.get("lora_r", d.lora_r)),
        "lora_alpha": train_setup.get("lora_alpha", d.lora_alpha),
        "lora_dropout": float(train_setup.get("lora_dropout", d.lora_dropout)),
        "lora_bias": train_setup.get("lora_bias", d.lora_bias),
        "lora_target_modules": tuple(targets) if targets else None,
        "freeze_backbone": bool(train_setup.get("freeze_backbone", d.freeze_backbone)),
        "train_vision": bool(train_setup.get("train_vision", d.train_vision)),
        "train_text_embedding": bool(train_setup.get("train_text_embedding", d.train_text_embedding)),
        "tune_mm_projector": bool(train_setup.get("tune_mm_projector", d.tune_mm_projector)),
    }


def _data_fields(
    cfg: dict[str, Any], train_ds: dict[str, Any], classification: bool, notes: list[str]
) -> dict[str, Any]:
    """What the data did to the actions (``abs_action``) and how the server decodes them."""
    abs_action = bool(train_ds.get("abs_action", cfg.get("abs_action", False)))
    if abs_action:
        notes.append(
            "abs_action: trained on |linear_y|, so the model cannot say which side to strafe; the policy refuses "
            "to act unless told how to restore the sign (abs_action_side='instruction')"
        )
    for key in ("history_dropout_prob", "use_color_jitter", "use_random_crop", "augment"):
        if train_ds.get(key) or cfg.get(key):
            notes.append(f"{key}: training-time augmentation, not applied at inference")
    inference_mode = cfg.get("inference_mode")
    if inference_mode is None and classification:
        notes.append(
            "classification head without inference_mode: the team's server would decode its logits as a "
            "regression (set inference_mode 'classification' in the server's config)"
        )
    return {"abs_action": abs_action, "inference_mode": inference_mode}


def _mvla_fields(
    cfg: dict[str, Any],
    backbone_dir: str | os.PathLike[str] | None,
    config_root: str | os.PathLike[str] | None,
    notes: list[str],
) -> dict[str, Any]:
    """The backbone and this project's own section (``mvla_sim``: backbone sizes, prompt, recipe)."""
    extra = cfg.get(MVLA_SECTION) or {}
    if not isinstance(extra, dict):
        raise ConfigError(f"{MVLA_SECTION} section must be an object, got {extra!r}")
    backbone, backbone_how = resolve_backbone(cfg, backbone_dir=backbone_dir, config_root=config_root)
    if backbone_how.startswith("hub"):
        notes.append(backbone_how)
    backbone_config = extra.get("backbone_config")
    if backbone_config is not None and backbone_config == PRESET_BACKBONE_CONFIGS.get(backbone):
        backbone_config = None  # the preset's own sizes, written out for self-description
    return {
        "backbone": backbone,
        "backbone_config": backbone_config,
        "prompt_template": extra.get("prompt_template", _DEFAULTS.prompt_template),
        "recipe": _recipe(extra),
    }


def _recipe(extra: dict[str, Any]) -> TrainingRecipe | None:
    """The recipe a run of this project recorded (None for the team's runs: their era decides)."""
    if "recipe" in extra:
        if extra["recipe"] is None:
            return None
        if not isinstance(extra["recipe"], dict):
            raise ConfigError(f"{MVLA_SECTION}.recipe must be an object, got {extra['recipe']!r}")
        try:
            return TrainingRecipe(**extra["recipe"])
        except TypeError as exc:
            raise ConfigError(f"{MVLA_SECTION}.recipe: {exc}") from None
    if "normalization" in extra or "channel_order" in extra:
        # A run of this project from before recipes were recorded: its own code's recipe.
        return TrainingRecipe(
            normalization=extra.get("normalization", "clip"),
            channel_order=extra.get("channel_order", "rgb"),
            token_layout="upstream",
            source="config (mvla_sim section before recipes: upstream layout)",
        )
    return None


def _training_config(
    cfg: dict[str, Any], train_ds: dict[str, Any], train_setup: dict[str, Any], notes: list[str]
) -> TrainingConfig:
    """The optimisation settings (defaults, with a note, when unreadable: inference is unaffected)."""
    trainer = cfg.get("trainer") or {}
    t = _TRAINING_DEFAULTS
    try:
        return TrainingConfig(
            learning_rate=float(cfg.get("learning_rate", t.learning_rate)),
            weight_decay=float(cfg.get("weight_decay", t.weight_decay)),
            warmup_epochs=float(cfg.get("warmup_epochs", t.warmup_epochs) or 0.0),
            min_lr_scale=float(cfg.get("min_lr_scale", t.min_lr_scale)),
            max_epochs=int(trainer.get("max_epochs", t.max_epochs)),
            batch_size=int(cfg.get("batch_size", t.batch_size))
            if not isinstance(cfg.get("batch_size"), list)
            else 1,
            accumulate_grad_batches=int(trainer.get("accumulate_grad_batches", t.accumulate_grad_batches)),
            gradient_clip_val=float(trainer.get("gradient_clip_val", t.gradient_clip_val) or 0.0),
            precision=str(trainer.get("precision", train_setup.get("precision", t.precision))),
            train_split=float(train_ds.get("train_split", t.train_split)),
            optimizer=str(cfg.get("optimizer", t.optimizer)),
            exp_name=str(cfg.get("exp_name") or t.exp_name),
            task_name=str(cfg.get("task_name") or t.task_name),
        )
    except (TypeError, ValueError) as exc:
        notes.append(f"training settings unreadable ({exc}); defaults used (inference is unaffected)")
        return TrainingConfig()


# ------------------------------------------------------------------------------ writing
def to_robovlms(config: VLAConfig) -> dict[str, Any]:
    """The RoboVLMs config JSON of ``config`` (as stored in ``hyper_parameters["configs"]``).

    Starts from the parsed source, else from the config of the run in the team's report, so every
    key a RoboVLMs user expects is there; this config's values overwrite it.
    """
    if config.robovlms_source:
        out = copy.deepcopy(config.robovlms_source)
    else:
        out = json.loads(REFERENCE_CONFIG.read_text(encoding="utf-8"))
    out.update(_top_level(config))
    if config.inference_mode is not None:
        out["inference_mode"] = config.inference_mode
    if config.class_map is not None:
        out["class_map"] = {str(k): list(v) for k, v in config.class_map.items()}
    _write_train_setup(out.setdefault("train_setup", {}), config)
    _write_act_head(out.setdefault("act_head", {}), config)
    out.setdefault("tokenizer", {}).update(
        {
            "type": "AutoProcessor",
            "pretrained_model_name_or_path": config.backbone,
            "tokenizer_type": "kosmos",
            "max_text_len": config.max_text_len,
        }
    )
    out.setdefault("vlm", {}).update(
        {"type": "AutoModelForVision2Seq", "name": "kosmos", "pretrained_model_name_or_path": config.backbone}
    )
    _write_training(out, config)
    _write_mvla_section(out.setdefault(MVLA_SECTION, {}), config)
    return out


def _top_level(config: VLAConfig) -> dict[str, Any]:
    """The top-level keys: the model, image and chunk sizes, optimiser, action normalisation."""
    t = config.training
    model_config = config.backbone if config.is_preset else str(Path(config.backbone) / "config.json")
    return {
        "robovlm_name": "RoboKosMos",
        "parent": None,
        "model": "kosmos",
        "exp_name": t.exp_name,
        "task_name": t.task_name,
        "image_size": config.image_size,
        "image_mean": list(config.image_mean),
        "image_std": list(config.image_std),
        "window_size": config.window_size,
        "fwd_pred_next_n": config.fwd_pred_next_n,
        "seed": config.seed,
        "batch_size": t.batch_size,
        "optimizer": t.optimizer,
        "learning_rate": t.learning_rate,
        "min_lr_scale": t.min_lr_scale,
        "weight_decay": t.weight_decay,
        "warmup_epochs": t.warmup_epochs,
        "use_vision_resampler": config.use_vision_resampler,
        "model_path": config.backbone,
        "model_config": model_config,
        "norm_action": config.norm_action,
        "norm_min": config.norm_min,
        "norm_max": config.norm_max,
    }


def _write_train_setup(ts: dict[str, Any], config: VLAConfig) -> None:
    """``train_setup``: precision, LoRA and which parts of the backbone train."""
    ts.update(
        {
            "precision": config.training.precision,
            "train_vision": config.train_vision,
            "freeze_backbone": config.freeze_backbone,
            "lora_enable": config.lora_enable,
            "lora_r": config.lora_r,
            "lora_alpha": config.lora_alpha,
            "lora_dropout": config.lora_dropout,
            "lora_bias": config.lora_bias,
            "train_text_embedding": config.train_text_embedding,
            "tune_mm_projector": config.tune_mm_projector,
        }
    )
    if config.lora_target_modules is not None:
        ts["lora_target_modules"] = list(config.lora_target_modules)
    else:
        ts.pop("lora_target_modules", None)


def _write_act_head(head: dict[str, Any], config: VLAConfig) -> None:
    """``act_head``: the head's type and sizes (and its classes for a classification head)."""
    head.update(
        {
            "type": config.head_type,
            "hidden_size": config.hidden_size,
            "action_dim": config.action_dim,
            "down_sample": config.down_sample,
            "latent": config.latent,
            "with_history": True,
            "history_type": config.history_type,
            "num_layers": config.num_lstm_layers,
            "policy_rnn_dropout_p": config.lstm_dropout,
            "window_size": config.window_size,
            "fwd_pred_next_n": config.fwd_pred_next_n,
        }
    )
    if config.is_classification:
        head["num_classes"] = config.num_classes
        if config.class_weights is not None:
            head["class_weights"] = list(config.class_weights)


def _write_training(out: dict[str, Any], config: VLAConfig) -> None:
    """``trainer`` and the datasets' split and ``abs_action``."""
    t = config.training
    out.setdefault("trainer", {}).update(
        {
            "precision": t.precision,
            "gradient_clip_val": t.gradient_clip_val,
            "max_epochs": t.max_epochs,
            "accumulate_grad_batches": t.accumulate_grad_batches,
        }
    )
    for key in ("train_dataset", "val_dataset"):
        if isinstance(out.get(key), dict):
            out[key]["train_split"] = t.train_split
            out[key]["abs_action"] = config.abs_action


def _write_mvla_section(extra: dict[str, Any], config: VLAConfig) -> None:
    """This project's own section: the backbone, its sizes, the prompt and the training recipe."""
    extra.update(
        {
            "backbone": config.backbone,
            "backbone_config": config.resolved_backbone_config(),
            "prompt_template": config.prompt_template,
        }
    )
    extra["recipe"] = config.recipe.to_dict() if config.recipe is not None else None
    for legacy in ("normalization", "channel_order"):
        extra.pop(legacy, None)


__all__ = [
    "KOSMOS2_DIR_ENV",
    "REFERENCE_CONFIG",
    "is_hub_reference",
    "load_config_file",
    "parse",
    "resolve_backbone",
    "to_robovlms",
]
