"""Typed configuration of the Mobile VLA model: the one source of its defaults.

This module owns :class:`VLAConfig` (the network: Kosmos-2 backbone, LoRA, action token, action
head), :class:`TrainingConfig` (the optimisation settings a run carries) and
:class:`TrainingRecipe` (what the training data looked like to the model: pixels, instruction,
token layout). Every default is written once, here, and is **what the team's RoboVLMs fork does
when its config JSON omits the key** (``act_head.hidden_size`` 1024, ``num_layers`` 4,
``num_classes`` 6, Lightning's ``accumulate_grad_batches`` 1 ...), so that parsing a config
(:mod:`policies.vla.robovlms_config`, which builds on this module: ``parse`` and ``to_robovlms``)
is a plain mapping. The values of the run in the team's report live in its config,
``assets/configs/mobile_vla_20251114_lora.json``.

It imports neither torch nor transformers, so configs are read and validated anywhere.

Backbones: ``VLAConfig.backbone`` is a preset name or a local folder:

* ``"tiny"``: a randomly initialised Kosmos-2 of the same architecture class, small enough for a
  2-core CPU, with a word-level tokenizer shipped in ``assets/tokenizer/tiny`` (no download);
* ``"kosmos2-base"``: the real Kosmos-2 sizes with random weights (latency and memory only);
* any other string: a local ``microsoft/kosmos-2-patch14-224`` folder (``config.json``, processor
  files, and weights unless a full checkpoint supplies them).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mvla_sim.facts import KEY_ACTIONS

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

BACKBONE_PRESETS: tuple[str, ...] = ("tiny", "kosmos2-base")
HEAD_TYPES: tuple[str, ...] = ("LSTMDecoder", "MobileVLALSTMDecoder", "MobileVLAClassificationDecoder")
CLASSIFICATION_HEAD = "MobileVLAClassificationDecoder"
DOWN_SAMPLES: tuple[str, ...] = ("none", "pooling")
LORA_BIASES: tuple[str, ...] = ("none", "all", "lora_only")

NORMALIZATIONS: tuple[str, ...] = ("none", "clip")
"""``"none"``: pixels x/255 only; ``"clip"``: x/255 then (x - mean)/std with the config's CLIP values."""
CHANNEL_ORDERS: tuple[str, ...] = ("rgb", "bgr")
INSTRUCTION_MODES: tuple[str, ...] = ("verbatim", "constant")
"""``"verbatim"``: the episode's instruction string; ``"constant"``: one fixed string for every episode."""
TOKEN_LAYOUTS: tuple[str, ...] = ("fork", "upstream")
"""How a frame's prompt becomes the backbone's sequence (see :mod:`policies.vla.processors`):

* ``"fork"``: the team's fork (its Kosmos-2 path): ``<s> prompt </s>`` right-padded to at least
  ``latent_query_num`` tokens, the image features written over the first ``latent_query_num``
  positions (over the prompt itself), the action token appended at the end;
* ``"upstream"``: upstream RoboVLMs: ``<s> [image] prompt [action]`` (the prompt stays visible).
"""

FORWARD_PATHS: tuple[str, ...] = ("fallback", "patched")
"""Which Kosmos-2 forward the fork ran (FACTS.md, "The instruction, the forward path ..."): it depends
on the ``modeling_kosmos2.py`` installed on the machine, not on the config.

* ``"fallback"``: stock transformers; the fork's first call fails and its fallback writes the 64
  image features over ``<s> prompt </s>`` (the ``"fork"`` token layout): only the prompt's length
  reaches the model;
* ``"patched"``: the fork's own ``tools/modeling_kosmos2.py`` copied into site-packages (upstream
  RoboVLMs did it for every Kosmos run): ``<s> [64 image features] prompt`` + the action token
  (the ``"upstream"`` token layout): the instruction is visible.
"""
FORWARD_PATH_LAYOUTS: dict[str, str] = {"fallback": "fork", "patched": "upstream"}
"""The token layout each forward path lays out (:func:`policies.vla.processors.layout_tokens`)."""
DEFAULT_FORWARD_PATH = "fallback"
FORWARD_PATH_EVIDENCE = (
    "the team's note KOSMOS_IN_PLACE_ERROR_FIX.md says the fallback ran on their training machine, and their "
    "own LEFT/RIGHT test measured 'difference = 0.000000' (minuum/vla docs/INSTRUCTION_GROUNDING_EXPLAINED.md)"
)
"""Why :data:`DEFAULT_FORWARD_PATH` is the default for the team's checkpoints."""


def forward_path_of(token_layout: str) -> str:
    """The forward path that lays out ``token_layout`` (``"fork"`` -> fallback, ``"upstream"`` -> patched)."""
    return next(path for path, layout in FORWARD_PATH_LAYOUTS.items() if layout == token_layout)


DEFAULT_PROMPT_TEMPLATE = "<grounding>An image of a robot {instruction}"
"""RoboVLMs' Kosmos text function wraps every instruction in this prompt."""

CONSTANT_INSTRUCTION = "Navigate to the target location"
"""The instruction every episode carried in the fork's dataset up to 2025-12-05."""

MVLA_SECTION = "mvla_sim"
"""Key of the RoboVLMs JSON section holding this project's own settings (RoboVLMs ignores it)."""

TINY_KOSMOS2_CONFIG: dict[str, Any] = {
    "text_config": {
        "vocab_size": 256,
        "embed_dim": 64,
        "layers": 2,
        "ffn_dim": 256,
        "attention_heads": 4,
        "max_position_embeddings": 512,
        # 1/sqrt(embed_dim): Kosmos-2's 0.02 suits its 2048-wide text model; at width 64 it leaves
        # the residual branches near zero, so the action token's feature barely depends on the
        # frame or the instruction (measured: 0.0001 vs 0.05 spread across an episode's frames).
        "init_std": 0.125,
        # No dropout inside the random tiny backbone: at width 64 its noise swamps the frame signal.
        "dropout": 0.0,
        "attention_dropout": 0.0,
    },
    "vision_config": {
        "hidden_size": 64,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 224,
        "patch_size": 14,
    },
    "latent_query_num": 16,
}
"""Kosmos2Config keyword arguments of the ``tiny`` preset (random init, CPU friendly)."""

KOSMOS2_BASE_CONFIG: dict[str, Any] = {
    "text_config": {
        "vocab_size": 65037,
        "embed_dim": 2048,
        "layers": 24,
        "ffn_dim": 8192,
        "attention_heads": 32,
        "max_position_embeddings": 2048,
    },
    "vision_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
    },
    "latent_query_num": 64,
}
"""Kosmos2Config keyword arguments with the real microsoft/kosmos-2-patch14-224 sizes."""

PRESET_BACKBONE_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": TINY_KOSMOS2_CONFIG,
    "kosmos2-base": KOSMOS2_BASE_CONFIG,
}

CLASS_KEYS: dict[int, str] = {6: " WADQE", 9: " WSADQEZC"}
"""The teleoperation key of each class index of the team's classification heads (FACTS.md): 6
classes (dataset of 2026-02-02: stop, forward, left, right, forward-left, forward-right) and 9
classes (from 2026-02-20, also the inference server's map)."""

CLASS_MAPS: dict[int, dict[int, tuple[float, float]]] = {
    n: {i: KEY_ACTIONS[key][:2] for i, key in enumerate(keys)} for n, keys in CLASS_KEYS.items()
}
"""Class index -> [linear_x, linear_y] (data units) of those heads: the keys' actions."""


class ConfigError(ValueError):
    """A config value is missing, unknown or inconsistent (the message names it)."""


class UnsupportedConfigError(ConfigError):
    """The config asks for a feature this project does not reproduce (the message names it)."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _positive_int(name: str, value: Any) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"{name} must be a positive integer, got {value!r}",
    )


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    _require(value in choices, f"{name} must be one of {list(choices)}, got {value!r}")


@dataclass
class TrainingConfig:
    """Optimisation settings of a run (for the Lightning module; unused at inference).

    Defaults are what the fork's trainer uses when its config omits the key.
    """

    learning_rate: float = 1e-4
    """AdamW learning rate."""
    weight_decay: float = 0.01
    warmup_epochs: float = 0.0
    """Linear warm-up length in epochs."""
    min_lr_scale: float = 1e-3
    max_epochs: int = 20
    batch_size: int = 1
    accumulate_grad_batches: int = 1
    """Lightning's default; the report's run sets 8."""
    gradient_clip_val: float = 0.0
    precision: str = "32-true"
    """Lightning precision string ("16-mixed", "bf16-mixed", "32-true")."""
    train_split: float = 0.8
    """Fraction of the sorted episode files used for training; the rest validates."""
    optimizer: str = "adamw"
    exp_name: str = "mobile_vla_lora"
    task_name: str = "mobile_vla_finetune"

    def __post_init__(self) -> None:
        _require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate!r}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _require(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        _positive_int("max_epochs", self.max_epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("accumulate_grad_batches", self.accumulate_grad_batches)
        _require(0.0 < self.train_split <= 1.0, f"train_split must be in (0, 1], got {self.train_split!r}")


@dataclass
class TrainingRecipe:
    """What the training data looked like to the model (the data side of a run).

    A run of this project records it explicitly (``mvla_sim.recipe`` in its config); for the
    team's runs it follows from the training era (:mod:`policies.eras`).
    """

    normalization: str = "clip"
    channel_order: str = "rgb"
    """Channel order of the frames as the model saw them (env frames are RGB)."""
    instruction: str = "verbatim"
    constant_instruction: str = CONSTANT_INSTRUCTION
    """Used when ``instruction == "constant"``."""
    token_layout: str = "fork"
    resize: str = "bilinear"
    """PIL filter of the resize to ``image_size`` (the fork's dataset: BILINEAR on uint8)."""
    source: str = "config"
    """Where the recipe comes from: ``"config"`` (recorded by the run) or ``"era:<name>"``."""

    def __post_init__(self) -> None:
        _choice("recipe.normalization", self.normalization, NORMALIZATIONS)
        _choice("recipe.channel_order", self.channel_order, CHANNEL_ORDERS)
        _choice("recipe.instruction", self.instruction, INSTRUCTION_MODES)
        _choice("recipe.token_layout", self.token_layout, TOKEN_LAYOUTS)
        _choice("recipe.resize", self.resize, ("bilinear", "bicubic"))
        _require(
            isinstance(self.constant_instruction, str) and self.constant_instruction.strip() != "",
            f"recipe.constant_instruction must be a non-empty string, got {self.constant_instruction!r}",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class VLAConfig:
    """The Mobile VLA network: Kosmos-2 backbone, LoRA, action token and action head.

    Field defaults are the fork's when a RoboVLMs config omits the key.
    """

    backbone: str = "tiny"
    """Preset name (``"tiny"``, ``"kosmos2-base"``) or a local Kosmos-2 folder."""
    backbone_config: dict[str, Any] | None = None
    """Explicit Kosmos2Config keyword arguments; ``None`` uses the preset's (or the folder's)."""
    window_size: int = 8
    """Frames of history the head sees (causal: step t sees frames max(0, t-W+1)..t)."""
    fwd_pred_next_n: int = 10
    """Action chunk length predicted per frame."""
    image_size: int = 224
    """Square side (pixels) every frame is resized to."""
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    """Text given to the backbone; ``{instruction}`` is replaced by the instruction."""
    max_text_len: int = 256
    """``tokenizer.max_text_len``: the length the team's server pads every prompt to."""
    head_type: str = "LSTMDecoder"
    """``LSTMDecoder`` (actions tanh + gripper unbounded), ``MobileVLALSTMDecoder`` (both tanh) or
    ``MobileVLAClassificationDecoder`` (logits over ``num_classes`` key directions)."""
    hidden_size: int = 1024
    """LSTM hidden size of the action head."""
    num_lstm_layers: int = 4
    lstm_dropout: float = 0.0
    action_dim: int = 2
    """[linear_x, linear_y]."""
    num_classes: int = 6
    """Classification heads only."""
    class_map: dict[int, tuple[float, float]] | None = None
    """Class index -> [linear_x, linear_y]; ``None`` = :data:`CLASS_MAPS` by ``num_classes``."""
    class_weights: tuple[float, ...] | None = None
    """Cross-entropy class weights (a buffer of the classification head)."""
    down_sample: str = "none"
    """``"pooling"`` max-pools the action tokens of a frame; with one token it is the identity."""
    latent: int = 1
    """Action tokens per frame (the fork's Kosmos path supports 1)."""
    history_type: str = "post"
    """``"post"``: every frame goes through the backbone alone; the LSTM fuses the window."""
    use_vision_resampler: bool = False
    """The fork builds a PerceiverResampler, but its Kosmos-2 path feeds pixels to Kosmos-2's own
    image encoder, so the resampler never changes an output; its weights load and are recorded."""
    lora_enable: bool = False
    lora_r: int = 32
    """The fork has no default for the LoRA sizes (a config that enables LoRA must give them);
    these are the report's run's values."""
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_bias: str = "none"
    lora_target_modules: tuple[str, ...] | None = None
    """``None``: every ``nn.Linear`` but ``lm_head`` (the fork's rule); else these module names."""
    freeze_backbone: bool = True
    train_vision: bool = False
    train_text_embedding: bool = False
    tune_mm_projector: bool = False
    norm_action: bool = False
    norm_min: float = -1.0
    """Regression targets are clamped to [norm_min, norm_max] for training (1.15 becomes 1.0)."""
    norm_max: float = 1.0
    abs_action: bool = False
    """Trained on |linear_y| (``train_dataset.abs_action``): the side is lost."""
    inference_mode: str | None = None
    """The team's server decode (``"regression"`` / ``"classification"``); ``None``: regression."""
    seed: int = 123
    recipe: TrainingRecipe | None = None
    """What the training data looked like; ``None`` for the team's runs (the era decides)."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    robovlms_source: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The RoboVLMs JSON this config was parsed from (``to_robovlms`` starts from it)."""
    notes: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """What parsing the RoboVLMs JSON noticed (where a value came from, keys without effect)."""

    def __post_init__(self) -> None:
        self._check_backbone_and_sizes()
        self._check_head()
        self._check_lora()
        _require(
            self.norm_min < self.norm_max,
            f"norm_min must be < norm_max, got {self.norm_min!r} >= {self.norm_max!r}",
        )
        if self.inference_mode is not None:
            _choice("inference_mode", self.inference_mode, ("regression", "classification"))
        _require(
            self.recipe is None or isinstance(self.recipe, TrainingRecipe),
            f"recipe must be a TrainingRecipe or None, got {type(self.recipe).__name__}",
        )
        _require(
            isinstance(self.training, TrainingConfig),
            f"training must be a TrainingConfig, got {type(self.training).__name__}",
        )

    def _check_backbone_and_sizes(self) -> None:
        _require(
            isinstance(self.backbone, str) and self.backbone.strip() != "",
            f"backbone must be a preset name {list(BACKBONE_PRESETS)} or a local folder, got {self.backbone!r}",
        )
        if self.backbone_config is not None:
            _require(
                isinstance(self.backbone_config, dict),
                f"backbone_config must be a dict of Kosmos2Config arguments, got {self.backbone_config!r}",
            )
        for name in ("window_size", "fwd_pred_next_n", "image_size", "max_text_len", "hidden_size"):
            _positive_int(name, getattr(self, name))
        _positive_int("num_lstm_layers", self.num_lstm_layers)
        _require(
            len(self.image_mean) == 3 and all(0.0 <= m <= 1.0 for m in self.image_mean),
            f"image_mean must be 3 values in [0, 1], got {self.image_mean!r}",
        )
        _require(
            len(self.image_std) == 3 and all(s > 0 for s in self.image_std),
            f"image_std must be 3 positive values, got {self.image_std!r}",
        )

    def _check_head(self) -> None:
        _choice("head_type", self.head_type, HEAD_TYPES)
        _require(
            "{instruction}" in self.prompt_template,
            f"prompt_template must contain '{{instruction}}', got {self.prompt_template!r}",
        )
        _require(
            self.action_dim == 2,
            f"action_dim must be 2 ([linear_x, linear_y] of the omni-wheel base), got {self.action_dim!r}",
        )
        if self.is_classification:
            self._check_classes()
        _choice("down_sample", self.down_sample, DOWN_SAMPLES)
        _require(self.latent == 1, f"latent must be 1 (one action token per frame), got {self.latent!r}")
        _require(
            self.history_type == "post",
            f"history_type must be 'post' (each frame through the backbone alone); {self.history_type!r} is not supported",
        )
        _require(0.0 <= self.lstm_dropout < 1.0, f"lstm_dropout must be in [0, 1), got {self.lstm_dropout!r}")

    def _check_classes(self) -> None:
        _require(
            self.num_classes in CLASS_MAPS or self.class_map is not None,
            f"num_classes {self.num_classes} has no known class map (6 or 9); give class_map",
        )
        if self.class_map is not None:
            _require(
                sorted(self.class_map) == list(range(self.num_classes)),
                f"class_map must give classes 0..{self.num_classes - 1}, got {sorted(self.class_map)}",
            )
        if self.class_weights is not None:
            _require(
                len(self.class_weights) == self.num_classes,
                f"class_weights must have {self.num_classes} values, got {len(self.class_weights)}",
            )

    def _check_lora(self) -> None:
        _require(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        _require(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha!r}")
        _positive_int("lora_r", self.lora_r)
        _choice("lora_bias", self.lora_bias, LORA_BIASES)
        if self.lora_target_modules is not None:
            _require(
                len(self.lora_target_modules) > 0
                and all(isinstance(m, str) for m in self.lora_target_modules),
                f"lora_target_modules must be a non-empty list of module names, got {self.lora_target_modules!r}",
            )

    # ------------------------------------------------------------------ derived
    @property
    def is_preset(self) -> bool:
        """Whether the backbone is a built-in preset (random weights, no files needed)."""
        return self.backbone in BACKBONE_PRESETS

    @property
    def is_classification(self) -> bool:
        return self.head_type == CLASSIFICATION_HEAD

    @property
    def head_output_dim(self) -> int:
        """Values per chunk step the head emits: 2 for regression heads, ``num_classes`` for logits."""
        return self.num_classes if self.is_classification else self.action_dim

    def resolved_class_map(self) -> dict[int, tuple[float, float]]:
        """Class index -> [linear_x, linear_y] (the config's, else the FACTS table by size)."""
        if not self.is_classification:
            raise ConfigError(f"{self.head_type} is not a classification head: it has no class map")
        if self.class_map is not None:
            return dict(self.class_map)
        return dict(CLASS_MAPS[self.num_classes])

    def resolved_backbone_config(self) -> dict[str, Any] | None:
        """Kosmos2Config keyword arguments for a preset (or the explicit ``backbone_config``)."""
        if self.backbone_config is not None:
            return copy.deepcopy(self.backbone_config)
        if self.is_preset:
            return copy.deepcopy(PRESET_BACKBONE_CONFIGS[self.backbone])
        return None

    def replace(self, **changes: Any) -> VLAConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view of every field (without the RoboVLMs source)."""
        out = dataclasses.asdict(self)
        out.pop("robovlms_source", None)
        out.pop("notes", None)
        out["image_mean"] = list(self.image_mean)
        out["image_std"] = list(self.image_std)
        if self.class_map is not None:
            out["class_map"] = {str(k): list(v) for k, v in self.class_map.items()}
        for key in ("class_weights", "lora_target_modules"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


__all__ = [
    "BACKBONE_PRESETS",
    "CHANNEL_ORDERS",
    "CLASSIFICATION_HEAD",
    "CLASS_MAPS",
    "CLIP_MEAN",
    "CLIP_STD",
    "CONSTANT_INSTRUCTION",
    "ConfigError",
    "DEFAULT_PROMPT_TEMPLATE",
    "HEAD_TYPES",
    "INSTRUCTION_MODES",
    "KOSMOS2_BASE_CONFIG",
    "MVLA_SECTION",
    "NORMALIZATIONS",
    "PRESET_BACKBONE_CONFIGS",
    "TINY_KOSMOS2_CONFIG",
    "TOKEN_LAYOUTS",
    "FORWARD_PATHS",
    "FORWARD_PATH_LAYOUTS",
    "DEFAULT_FORWARD_PATH",
    "FORWARD_PATH_EVIDENCE",
    "forward_path_of",
    "TrainingConfig",
    "TrainingRecipe",
    "UnsupportedConfigError",
    "VLAConfig",
]
