"""Typed configuration of the Mobile VLA model (Kosmos-2 + LoRA + LSTM action head).

This module owns :class:`VLAConfig`, the one place where the model's architecture, its
pre/post-processing defaults and its LoRA/training setup are written down, and its two-way
mapping to the RoboVLMs config JSON that real runs store in their checkpoints
(``hyper_parameters["configs"]``; see ``shared/reference/mobile_vla_20251114_lora.json``).

It imports neither torch nor transformers, so configs can be read and validated anywhere.

Backbones
---------
``VLAConfig.backbone`` is either a preset name or a local folder:

* ``"tiny"``: a randomly initialised Kosmos-2 of the same architecture class, small enough for
  a 2-core CPU, with a word-level tokenizer shipped in ``assets/tokenizer/tiny`` (no download).
* ``"kosmos2-base"``: the real Kosmos-2 *sizes* (vision 24 x 1024, text 24 x 2048, 64 latent
  tokens, vocabulary 65037) with random weights and the tiny tokenizer: for latency and memory
  estimates only.
* any other string: a local folder holding ``microsoft/kosmos-2-patch14-224`` (``config.json``,
  weights and processor files), loaded with ``local_files_only=True``.

RoboVLMs keys that have no equivalent in RoboVLMs itself (the preset, the channel order, the
normalization actually used, the prompt template) are written under a ``"mvla_sim"`` section
of the JSON, which RoboVLMs ignores.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

BACKBONE_PRESETS: tuple[str, ...] = ("tiny", "kosmos2-base")
HEAD_TYPES: tuple[str, ...] = ("LSTMDecoder", "MobileVLALSTMDecoder")
NORMALIZATIONS: tuple[str, ...] = ("clip", "none")
CHANNEL_ORDERS: tuple[str, ...] = ("rgb", "bgr")
LORA_BIASES: tuple[str, ...] = ("none", "all", "lora_only")

DEFAULT_PROMPT_TEMPLATE = "<grounding>An image of a robot {instruction}"
"""RoboVLMs' Kosmos text function wraps every instruction in this prompt."""

MVLA_SECTION = "mvla_sim"
"""Key of the JSON section holding this project's extra settings."""

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

# The layout of the real run's RoboVLMs config (reference/mobile_vla_20251114_lora.json). It is
# the starting point of `VLAConfig.to_robovlms()` so that a team using RoboVLMs recognises every
# key; values are overwritten from the VLAConfig.
_ROBOVLMS_TEMPLATE: dict[str, Any] = {
    "robovlm_name": "RoboKosMos",
    "exp_name": "mobile_vla_lora",
    "parent": None,
    "task_name": "mobile_vla_finetune",
    "model": "kosmos",
    "model_url": "https://huggingface.co/microsoft/kosmos-2-patch14-224",
    "seq_len": 1,
    "image_size": 224,
    "image_mean": list(CLIP_MEAN),
    "image_std": list(CLIP_STD),
    "window_size": 8,
    "fwd_pred_next_n": 10,
    "arm_gripper_loss_ratio": 0.0,
    "cap_loss_ratio": 0.0,
    "fwd_loss_ratio": 0,
    "seed": 123,
    "batch_size": 1,
    "num_workers": 2,
    "data_scale": 1,
    "optimizer": "adamw",
    "learning_rate": 1e-4,
    "min_lr_scale": 1e-3,
    "weight_decay": 0.01,
    "warmup_epochs": 0.1,
    "warmup_steps": 0,
    "warmup_ratio": None,
    "use_hand_rgb": False,
    "use_time_causal_attn": False,
    "use_mim_obs_loss": False,
    "use_pixel_loss": False,
    "use_obs_queries": True,
    "use_vision_resampler": False,
    "vision_masked_ratio": 0.9,
    "use_tube_mask": False,
    "output_root": "runs/mobile_vla_lora",
    "log_root": "runs/mobile_vla_lora",
    "cache_root": "runs/cache",
    "model_load_path": None,
    "model_load_source": "torch",
    "resume": None,
    "model_path": ".vlms/kosmos-2-patch14-224",
    "model_config": ".vlms/kosmos-2-patch14-224/config.json",
    "gpus": 1,
    "num_nodes": 1,
    "train_setup": {
        "precision": "16-mixed",
        "predict_action": True,
        "predict_forward": False,
        "predict_forward_hand": False,
        "predict_caption": False,
        "train_vision": False,
        "bits": -1,
        "freeze_mm_mlp_adapter": False,
        "freeze_backbone": True,
        "freeze_resampler": False,
        "tune_mm_mlp_adapter": False,
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "gradient_checkpointing": False,
        "lora_enable": True,
        "mm_projector_lr": 1e-4,
        "lora_r": 32,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "lora_bias": "none",
        "train_text_embedding": False,
    },
    "vision_resampler": {"vis_dim": 1024, "depth": 8, "dim_head": 64, "heads": 8, "num_latents": 64},
    "act_encoder": None,
    "act_head": {
        "type": "LSTMDecoder",
        "hidden_size": 512,
        "action_dim": 2,
        "down_sample": "none",
        "latent": 1,
        "fwd_pred_next_n": 1,
        "window_size": 1,
        "action_space": "continuous",
        "with_history": True,
        "history_type": "post",
    },
    "fwd_head": None,
    "tokenizer": {
        "type": "AutoProcessor",
        "pretrained_model_name_or_path": ".vlms/kosmos-2-patch14-224",
        "tokenizer_type": "kosmos",
        "max_text_len": 256,
        "additional_special_tokens": None,
    },
    "vlm": {
        "type": "AutoModelForVision2Seq",
        "name": "kosmos",
        "pretrained_model_name_or_path": ".vlms/kosmos-2-patch14-224",
    },
    "trainer": {
        "accelerator": "gpu",
        "strategy": "auto",
        "precision": "16-mixed",
        "logger": ["tensorboard", "csv"],
        "gradient_clip_val": 1.0,
        "use_distributed_sampler": False,
        "log_every_n_steps": 5,
        "max_epochs": 20,
        "val_check_interval": None,
        "check_val_every_n_epoch": 1,
        "max_steps": -1,
        "accumulate_grad_batches": 8,
    },
    "train_dataset": {
        "type": "MobileVLAH5Dataset",
        "data_dir": "ROS_action/mobile_vla_dataset",
        "episode_pattern": "episode_*.h5",
        "shift_first": False,
        "model_name": "kosmos",
        "rgb_pad": 10,
        "train_split": 0.8,
    },
    "val_dataset": {
        "type": "MobileVLAH5Dataset",
        "data_dir": "ROS_action/mobile_vla_dataset",
        "episode_pattern": "episode_*.h5",
        "model_name": "kosmos",
        "train_split": 0.8,
        "is_validation": True,
    },
    "norm_action": True,
    "norm_min": -1.0,
    "norm_max": 1.0,
}


class ConfigError(ValueError):
    """A config value is missing, unknown or inconsistent (the message names it)."""


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
    """Optimisation settings of a run (carried for the Lightning module; unused at inference)."""

    learning_rate: float = 1e-4
    """AdamW learning rate."""
    weight_decay: float = 0.01
    warmup_epochs: float = 0.1
    """Linear warm-up length in epochs."""
    min_lr_scale: float = 1e-3
    max_epochs: int = 20
    batch_size: int = 1
    accumulate_grad_batches: int = 8
    gradient_clip_val: float = 1.0
    precision: str = "16-mixed"
    """Lightning precision string ("16-mixed", "bf16-mixed", "32")."""
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
        _require(self.optimizer == "adamw", f"optimizer must be 'adamw', got {self.optimizer!r}")


@dataclass
class VLAConfig:
    """The Mobile VLA model: Kosmos-2 backbone, LoRA, action token and LSTM action head.

    Defaults are the values of the real run in the team's report (FACTS.md).
    """

    backbone: str = "tiny"
    """Preset name (``"tiny"``, ``"kosmos2-base"``) or a local Kosmos-2 folder."""
    backbone_config: dict[str, Any] | None = None
    """Explicit Kosmos2Config keyword arguments; ``None`` uses the preset's (or the folder's)."""
    window_size: int = 8
    """Frames of history fed to the LSTM (the last 8 frames, padded with the first)."""
    fwd_pred_next_n: int = 10
    """Action chunk length predicted per frame."""
    image_size: int = 224
    """Square side (pixels) every frame is resized to."""
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    normalization: str = "clip"
    """``"clip"``: (x/255 - mean)/std as the config says; ``"none"``: x/255 only (the real
    inference test script and the fork's dataset)."""
    channel_order: str = "rgb"
    """Channel order the network expects; env frames are RGB, ``"bgr"`` swaps them."""
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    """Text given to the backbone; ``{instruction}`` is replaced by the instruction."""
    max_text_len: int = 256
    """Maximum number of text tokens (instruction + prompt) before truncation."""
    head_type: str = "LSTMDecoder"
    """``"LSTMDecoder"`` (actions tanh + gripper unbounded) or ``"MobileVLALSTMDecoder"``."""
    hidden_size: int = 512
    """LSTM hidden size of the action head."""
    num_lstm_layers: int = 4
    lstm_dropout: float = 0.0
    action_dim: int = 2
    """[linear_x, linear_y]."""
    down_sample: str = "none"
    latent: int = 1
    """Number of action tokens per frame (only 1 is supported)."""
    action_space: str = "continuous"
    history_type: str = "post"
    """``"post"``: every frame goes through the backbone alone; the LSTM fuses the window."""
    lora_enable: bool = True
    lora_r: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_bias: str = "none"
    freeze_backbone: bool = True
    train_vision: bool = False
    """Vision encoder base weights trainable (LoRA is applied to it either way, as in the real run)."""
    train_text_embedding: bool = False
    norm_action: bool = True
    norm_min: float = -1.0
    """Actions are clamped to [norm_min, norm_max] for training (1.15 becomes 1.0)."""
    norm_max: float = 1.0
    seed: int = 123
    training: TrainingConfig = field(default_factory=TrainingConfig)
    robovlms_source: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The RoboVLMs JSON this config was parsed from (kept so ``to_robovlms`` round-trips it)."""

    def __post_init__(self) -> None:
        _require(
            isinstance(self.backbone, str) and self.backbone.strip() != "",
            f"backbone must be a preset name {list(BACKBONE_PRESETS)} or a local folder, got {self.backbone!r}",
        )
        if self.backbone_config is not None:
            _require(
                isinstance(self.backbone_config, dict),
                f"backbone_config must be a dict of Kosmos2Config arguments, got {self.backbone_config!r}",
            )
        for name in (
            "window_size",
            "fwd_pred_next_n",
            "image_size",
            "max_text_len",
            "hidden_size",
            "num_lstm_layers",
            "lora_r",
        ):
            _positive_int(name, getattr(self, name))
        self.image_mean = tuple(float(v) for v in self.image_mean)  # type: ignore[assignment]
        self.image_std = tuple(float(v) for v in self.image_std)  # type: ignore[assignment]
        _require(len(self.image_mean) == 3, f"image_mean must have 3 values, got {self.image_mean!r}")
        _require(
            len(self.image_std) == 3 and all(s > 0 for s in self.image_std),
            f"image_std must be 3 positive values, got {self.image_std!r}",
        )
        _choice("normalization", self.normalization, NORMALIZATIONS)
        _choice("channel_order", self.channel_order, CHANNEL_ORDERS)
        _choice("head_type", self.head_type, HEAD_TYPES)
        _require(
            "{instruction}" in self.prompt_template,
            f"prompt_template must contain '{{instruction}}', got {self.prompt_template!r}",
        )
        _require(
            self.action_dim == 2,
            f"action_dim must be 2 ([linear_x, linear_y] of the omni-wheel base), got {self.action_dim!r}",
        )
        _require(
            self.down_sample == "none",
            f"down_sample must be 'none' (the only mode of the real runs), got {self.down_sample!r}",
        )
        _require(self.latent == 1, f"latent must be 1 (one action token per frame), got {self.latent!r}")
        _require(
            self.action_space == "continuous", f"action_space must be 'continuous', got {self.action_space!r}"
        )
        _require(
            self.history_type == "post",
            f"history_type must be 'post' (each frame through the backbone alone); {self.history_type!r} is not supported",
        )
        _require(0.0 <= self.lstm_dropout < 1.0, f"lstm_dropout must be in [0, 1), got {self.lstm_dropout!r}")
        _require(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        _require(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha!r}")
        _choice("lora_bias", self.lora_bias, LORA_BIASES)
        _require(
            self.norm_min < self.norm_max,
            f"norm_min must be < norm_max, got {self.norm_min!r} >= {self.norm_max!r}",
        )
        _require(
            isinstance(self.training, TrainingConfig),
            f"training must be a TrainingConfig, got {type(self.training).__name__}",
        )

    # ------------------------------------------------------------------ backbone helpers
    @property
    def is_preset(self) -> bool:
        """Whether the backbone is a built-in preset (random weights, no files needed)."""
        return self.backbone in BACKBONE_PRESETS

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
        out["image_mean"] = list(self.image_mean)
        out["image_std"] = list(self.image_std)
        return out

    # ------------------------------------------------------------------ RoboVLMs schema
    @classmethod
    def from_robovlms(
        cls,
        config: dict[str, Any] | str | os.PathLike[str],
        config_root: str | os.PathLike[str] | None = None,
        backbone_dir: str | os.PathLike[str] | None = None,
    ) -> VLAConfig:
        """Parse a RoboVLMs config (dict, JSON text or JSON file path).

        Args:
            config: the config dict, or a path to its JSON file.
            config_root: the training repository root that relative backbone paths such as
                ``.vlms/kosmos-2-patch14-224`` are resolved against.
            backbone_dir: a local Kosmos-2 folder that replaces the config's backbone path.

        Raises:
            ConfigError: on a missing key, an unsupported feature or a mismatched value.
        """
        if isinstance(config, (str, os.PathLike)) and not (
            isinstance(config, str) and config.lstrip().startswith("{")
        ):
            path = Path(config)
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"cannot read RoboVLMs config {str(path)!r}: {exc}") from exc
        elif isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"RoboVLMs config text is not valid JSON: {exc}") from exc
        if not isinstance(config, dict):
            raise ConfigError(f"a RoboVLMs config must be a JSON object, got {type(config).__name__}")
        cfg: dict[str, Any] = config

        def get(d: dict[str, Any], key: str, where: str) -> Any:
            if key not in d:
                raise ConfigError(f"RoboVLMs config lacks {where}{key!r}")
            return d[key]

        model_name = cfg.get("model", cfg.get("vlm", {}).get("name"))
        _require(
            model_name == "kosmos",
            f"only Kosmos-2 backbones are supported: config 'model' is {model_name!r}, expected 'kosmos'",
        )
        robovlm_name = cfg.get("robovlm_name", "RoboKosMos")
        _require(robovlm_name == "RoboKosMos", f"robovlm_name must be 'RoboKosMos', got {robovlm_name!r}")
        for flag in ("use_hand_rgb", "use_vision_resampler", "use_state"):
            _require(
                not cfg.get(flag, False),
                f"{flag}=true is not supported by this wrapper (the Mobile VLA runs use false)",
            )
        _require(
            cfg.get("fwd_head") in (None, {}),
            f"fwd_head must be null (no forward-prediction head), got {cfg.get('fwd_head')!r}",
        )

        head = get(cfg, "act_head", "")
        _require(isinstance(head, dict), f"act_head must be an object, got {head!r}")
        _require(
            head.get("with_history", True) is True,
            f"act_head.with_history must be true, got {head.get('with_history')!r}",
        )
        train_setup = cfg.get("train_setup", {})
        tok = cfg.get("tokenizer", {}) or {}
        tok_type = tok.get("tokenizer_type", "kosmos")
        _require(tok_type == "kosmos", f"tokenizer.tokenizer_type must be 'kosmos', got {tok_type!r}")
        extra = cfg.get(MVLA_SECTION, {}) or {}
        _require(isinstance(extra, dict), f"{MVLA_SECTION} section must be an object, got {extra!r}")

        if backbone_dir is not None:
            backbone = str(backbone_dir)
        elif extra.get("backbone"):
            backbone = str(extra["backbone"])
        else:
            raw = cfg.get("vlm", {}).get("pretrained_model_name_or_path") or cfg.get("model_path")
            _require(
                bool(raw),
                "RoboVLMs config names no backbone: neither vlm.pretrained_model_name_or_path nor model_path is set",
            )
            backbone = str(raw)
        if (
            backbone_dir is None
            and backbone not in BACKBONE_PRESETS
            and not os.path.isabs(backbone)
            and config_root is not None
        ):
            backbone = str(Path(config_root) / backbone)

        backbone_config = extra.get("backbone_config")
        if backbone_config is not None and backbone_config == PRESET_BACKBONE_CONFIGS.get(backbone):
            backbone_config = None  # the preset's own sizes, written out for self-description

        trainer = cfg.get("trainer", {}) or {}
        train_ds = cfg.get("train_dataset", {}) or {}
        training = TrainingConfig(
            learning_rate=float(cfg.get("learning_rate", 1e-4)),
            weight_decay=float(cfg.get("weight_decay", 0.01)),
            warmup_epochs=float(cfg.get("warmup_epochs", 0.1)),
            min_lr_scale=float(cfg.get("min_lr_scale", 1e-3)),
            max_epochs=int(trainer.get("max_epochs", 20)),
            batch_size=int(cfg.get("batch_size", 1)),
            accumulate_grad_batches=int(trainer.get("accumulate_grad_batches", 1)),
            gradient_clip_val=float(trainer.get("gradient_clip_val", 1.0) or 0.0),
            precision=str(trainer.get("precision", train_setup.get("precision", "32"))),
            train_split=float(train_ds.get("train_split", 0.8)),
            optimizer=str(cfg.get("optimizer", "adamw")),
            exp_name=str(cfg.get("exp_name", "mobile_vla_lora")),
            task_name=str(cfg.get("task_name", "mobile_vla_finetune")),
        )
        return cls(
            backbone=backbone,
            backbone_config=backbone_config,
            window_size=get(cfg, "window_size", ""),
            fwd_pred_next_n=get(cfg, "fwd_pred_next_n", ""),
            image_size=cfg.get("image_size", 224),
            image_mean=tuple(cfg.get("image_mean", CLIP_MEAN)),
            image_std=tuple(cfg.get("image_std", CLIP_STD)),
            normalization=extra.get("normalization", "clip"),
            channel_order=extra.get("channel_order", "rgb"),
            prompt_template=extra.get("prompt_template", DEFAULT_PROMPT_TEMPLATE),
            max_text_len=int(tok.get("max_text_len", 256)),
            head_type=get(head, "type", "act_head."),
            hidden_size=head.get("hidden_size", 512),
            num_lstm_layers=head.get("num_layers", 4),
            lstm_dropout=float(head.get("policy_rnn_dropout_p", 0.0)),
            action_dim=head.get("action_dim", 2),
            down_sample=head.get("down_sample", "none"),
            latent=head.get("latent", 1),
            action_space=head.get("action_space", "continuous"),
            history_type=head.get("history_type", "post"),
            lora_enable=bool(train_setup.get("lora_enable", False)),
            lora_r=int(train_setup.get("lora_r", 32)),
            lora_alpha=train_setup.get("lora_alpha", 16),
            lora_dropout=float(train_setup.get("lora_dropout", 0.1)),
            lora_bias=train_setup.get("lora_bias", "none"),
            freeze_backbone=bool(train_setup.get("freeze_backbone", True)),
            train_vision=bool(train_setup.get("train_vision", False)),
            train_text_embedding=bool(train_setup.get("train_text_embedding", False)),
            norm_action=bool(cfg.get("norm_action", True)),
            norm_min=float(cfg.get("norm_min", -1.0)),
            norm_max=float(cfg.get("norm_max", 1.0)),
            seed=int(cfg.get("seed", 123)),
            training=training,
            robovlms_source=copy.deepcopy(cfg),
        )

    def to_robovlms(self) -> dict[str, Any]:
        """The RoboVLMs config JSON (as stored in ``hyper_parameters["configs"]``).

        Starts from the parsed source (if any) or the real run's layout, so every key a
        RoboVLMs user expects is there; this config's values overwrite it.
        """
        out = (
            copy.deepcopy(self.robovlms_source) if self.robovlms_source else copy.deepcopy(_ROBOVLMS_TEMPLATE)
        )
        t = self.training
        out.update(
            {
                "robovlm_name": "RoboKosMos",
                "model": "kosmos",
                "exp_name": t.exp_name,
                "task_name": t.task_name,
                "image_size": self.image_size,
                "image_mean": list(self.image_mean),
                "image_std": list(self.image_std),
                "window_size": self.window_size,
                "fwd_pred_next_n": self.fwd_pred_next_n,
                "seed": self.seed,
                "batch_size": t.batch_size,
                "optimizer": t.optimizer,
                "learning_rate": t.learning_rate,
                "min_lr_scale": t.min_lr_scale,
                "weight_decay": t.weight_decay,
                "warmup_epochs": t.warmup_epochs,
                "model_path": self.backbone,
                "model_config": self.backbone if self.is_preset else str(Path(self.backbone) / "config.json"),
                "norm_action": self.norm_action,
                "norm_min": self.norm_min,
                "norm_max": self.norm_max,
            }
        )
        ts = out.setdefault("train_setup", {})
        ts.update(
            {
                "precision": t.precision,
                "train_vision": self.train_vision,
                "freeze_backbone": self.freeze_backbone,
                "lora_enable": self.lora_enable,
                "lora_r": self.lora_r,
                "lora_alpha": self.lora_alpha,
                "lora_dropout": self.lora_dropout,
                "lora_bias": self.lora_bias,
                "train_text_embedding": self.train_text_embedding,
            }
        )
        head = out.setdefault("act_head", {})
        head.update(
            {
                "type": self.head_type,
                "hidden_size": self.hidden_size,
                "action_dim": self.action_dim,
                "down_sample": self.down_sample,
                "latent": self.latent,
                "action_space": self.action_space,
                "with_history": True,
                "history_type": self.history_type,
                "num_layers": self.num_lstm_layers,
                "policy_rnn_dropout_p": self.lstm_dropout,
            }
        )
        tok = out.setdefault("tokenizer", {})
        tok.update(
            {
                "type": "AutoProcessor",
                "pretrained_model_name_or_path": self.backbone,
                "tokenizer_type": "kosmos",
                "max_text_len": self.max_text_len,
            }
        )
        vlm = out.setdefault("vlm", {})
        vlm.update(
            {
                "type": "AutoModelForVision2Seq",
                "name": "kosmos",
                "pretrained_model_name_or_path": self.backbone,
            }
        )
        trainer = out.setdefault("trainer", {})
        trainer.update(
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
        out[MVLA_SECTION] = {
            "backbone": self.backbone,
            "backbone_config": self.resolved_backbone_config(),
            "normalization": self.normalization,
            "channel_order": self.channel_order,
            "prompt_template": self.prompt_template,
        }
        return out


__all__ = [
    "BACKBONE_PRESETS",
    "CHANNEL_ORDERS",
    "CLIP_MEAN",
    "CLIP_STD",
    "ConfigError",
    "DEFAULT_PROMPT_TEMPLATE",
    "HEAD_TYPES",
    "KOSMOS2_BASE_CONFIG",
    "NORMALIZATIONS",
    "PRESET_BACKBONE_CONFIGS",
    "TINY_KOSMOS2_CONFIG",
    "TrainingConfig",
    "VLAConfig",
]
