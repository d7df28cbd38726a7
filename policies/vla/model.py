"""The Mobile VLA network: Kosmos-2 backbone + peft LoRA + action token + action head.

This module owns :class:`MobileVLAModel`, laid out like the fork's ``RoboKosMos`` so that real
checkpoints load by name, and computing like the fork's newest code (checked number for number
against it, ``tests/policies/test_fork_equivalence.py``):

* ``backbone``: a transformers ``Kosmos2ForConditionalGeneration``. With ``lora_enable`` the
  base weights are frozen and peft's ``get_peft_model`` injects LoRA into the config's
  ``lora_target_modules``, or by the fork's rule into **every** ``nn.Linear`` but ``lm_head``
  (its rule that skips vision parts matches other models' names: with Kosmos-2 the vision
  encoder and the image-to-text projection get LoRA too);
* ``model``: the peft wrapper, registered a second time (as the fork does), so the state dict
  holds the same tensors as ``backbone.<path>`` and ``model.base_model.model.<path>``;
* ``action_token``: one learned vector of the text hidden size;
* ``act_head``: ``rnn`` (an LSTM) then ``actions.mlp`` (tanh) + ``gripper.mlp`` (unbounded) for
  ``LSTMDecoder``, ``velocities.mlp`` (tanh) for ``MobileVLALSTMDecoder``, ``logits`` (a Linear
  to chunk x classes) for ``MobileVLAClassificationDecoder``; MLP widths 1024-512-256.

history_type "post": every frame goes through the backbone on its own (:meth:`encode_frames`):
Kosmos-2's image features (vision encoder, post-layernorm over all tokens, L2 normalisation,
image-to-text projection) are written into the sequence that :func:`policies.vla.processors.
layout_tokens` lays out, the action token's final hidden state is the frame's feature, and the
head's LSTM runs over the frames' features (:meth:`head`). Positions are sequential (the fork
passes embeddings, never token ids, so Kosmos-2 numbers every slot, padding included).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from policies.vla.config import KOSMOS2_BASE_CONFIG, VLAConfig

logger = logging.getLogger(__name__)

HEAD_MLP_WIDTHS: tuple[int, int, int] = (1024, 512, 256)


class BackboneNotFoundError(FileNotFoundError):
    """The configured Kosmos-2 folder does not exist or is incomplete."""


# ------------------------------------------------------------------------------- the head
class MLPHead(nn.Module):
    """``mlp``: Linear-ReLU x 3 (widths 1024-512-256) then Linear, with an optional Tanh
    (the fork's ``MLPTanhHead`` / its ``MLPSigmoidHead``, whose sigmoid is commented out)."""

    def __init__(self, in_features: int, out_features: int, tanh: bool) -> None:
        super().__init__()
        w1, w2, w3 = HEAD_MLP_WIDTHS
        layers: list[nn.Module] = [
            nn.Linear(in_features, w1),
            nn.ReLU(),
            nn.Linear(w1, w2),
            nn.ReLU(),
            nn.Linear(w2, w3),
            nn.ReLU(),
            nn.Linear(w3, out_features),
        ]
        if tanh:
            layers.append(nn.Tanh())
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class ActionHead(nn.Module):
    """The fork's three Mobile VLA heads: per-frame features [B, T, D] -> [B, T, chunk, out].

    ``out`` is 2 ([linear_x, linear_y]) for the regression heads (``LSTMDecoder`` concatenates its
    ``actions`` and ``gripper`` outputs, as RoboVLMs does) and ``num_classes`` logits for the
    classification head. The LSTM runs from a zero state over the frames it is given.
    """

    def __init__(self, config: VLAConfig, in_features: int) -> None:
        super().__init__()
        self.head_type = config.head_type
        self.chunk = config.fwd_pred_next_n
        self.out_dim = config.head_output_dim
        hidden = config.hidden_size
        # The fork passes the dropout to nn.LSTM whatever the layer count.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.rnn = nn.LSTM(
                input_size=in_features,
                hidden_size=hidden,
                num_layers=config.num_lstm_layers,
                batch_first=True,
                dropout=config.lstm_dropout,
            )
        if config.head_type == "LSTMDecoder":
            self.actions = MLPHead(hidden, self.chunk * (config.action_dim - 1), tanh=True)
            self.gripper = MLPHead(hidden, self.chunk, tanh=False)
        elif config.head_type == "MobileVLALSTMDecoder":
            self.velocities = MLPHead(hidden, self.chunk * config.action_dim, tanh=True)
        else:
            self.logits = nn.Linear(hidden, self.chunk * config.num_classes)
            if config.class_weights is not None:
                self.register_buffer(
                    "class_weights_tensor", torch.tensor(config.class_weights, dtype=torch.float)
                )
        self._init_params()

    def _init_params(self) -> None:
        # The fork's initialize_param: xavier-uniform weights, zero biases on modules with a
        # 'weight' (the MLP and logit linears; the LSTM keeps PyTorch's init).
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    module.bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 3:
            raise ValueError(f"action head expects features [B, T, D], got shape {tuple(features.shape)}")
        b, t = features.shape[:2]
        x, _ = self.rnn(features.to(self.rnn.weight_ih_l0.dtype))
        if self.head_type == "LSTMDecoder":
            actions = self.actions(x).view(b, t, self.chunk, -1)
            gripper = self.gripper(x).view(b, t, self.chunk, 1)
            return torch.cat([actions, gripper], dim=-1)
        if self.head_type == "MobileVLALSTMDecoder":
            return self.velocities(x).view(b, t, self.chunk, self.out_dim)
        return self.logits(x).view(b, t, self.chunk, self.out_dim)


# --------------------------------------------------------------------------- the backbone
def lora_target_modules(backbone: nn.Module) -> list[str]:
    """Last name component of every ``nn.Linear`` except ``lm_head`` (the fork's rule).

    For Kosmos-2: q/k/v/out_proj, fc1, fc2 (text and vision) and dense (image-to-text).
    """
    names = {
        name.rsplit(".", 1)[-1] for name, module in backbone.named_modules() if isinstance(module, nn.Linear)
    }
    names.discard("lm_head")
    return sorted(names)


def check_backbone_folder(backbone: str) -> Path:
    """The Kosmos-2 folder as a Path; :class:`BackboneNotFoundError` (naming it and the fix) if absent."""
    folder = Path(backbone).expanduser()
    if not (folder / "config.json").is_file():
        raise BackboneNotFoundError(
            f"Kosmos-2 backbone folder {str(folder)!r} not found or has no config.json. Runs load "
            "microsoft/kosmos-2-patch14-224 from a local folder (.vlms/kosmos-2-patch14-224 under the "
            "training repo; nothing is downloaded at run time). Fix: pass --backbone-dir /path/to/"
            "kosmos-2-patch14-224 (or set MVLA_KOSMOS2_DIR), or use the 'tiny' preset for a random model."
        )
    return folder


def kosmos2_config(config: VLAConfig):  # -> transformers.Kosmos2Config
    """The backbone's ``Kosmos2Config``: from the preset/explicit dict, or the folder's config.json."""
    from transformers import Kosmos2Config

    kwargs = config.resolved_backbone_config()
    if kwargs is not None:
        return Kosmos2Config(**kwargs)
    folder = check_backbone_folder(config.backbone)
    return Kosmos2Config.from_pretrained(str(folder), local_files_only=True)


def load_tokenizer(config: VLAConfig) -> Any:
    """The backbone's tokenizer: the tiny preset's, or the folder's (through its Kosmos-2 processor)."""
    if config.is_preset:
        from policies.vla.tokenizer_tiny import load_tiny_tokenizer

        return load_tiny_tokenizer()
    folder = check_backbone_folder(config.backbone)
    from transformers import AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("AutoProcessor failed for %s (%s); falling back to AutoTokenizer", folder, exc)
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return getattr(processor, "tokenizer", processor)


def build_backbone(config: VLAConfig, *, load_weights: bool = True) -> tuple[nn.Module, Any, str]:
    """Build the Kosmos-2 backbone and its tokenizer.

    Presets are randomly initialised from their config (seed the global torch RNG first). A
    folder is loaded with ``from_pretrained(..., local_files_only=True)``; with
    ``load_weights=False`` only its ``config.json`` is read (a full checkpoint supplies every
    backbone weight anyway).

    Returns:
        (backbone, tokenizer, source) where source is ``"random"`` or ``"pretrained"``.
    """
    from transformers import Kosmos2ForConditionalGeneration

    tokenizer = load_tokenizer(config)
    if config.is_preset or not load_weights:
        backbone = Kosmos2ForConditionalGeneration(kosmos2_config(config))
        source = "random"
    else:
        folder = check_backbone_folder(config.backbone)
        backbone = Kosmos2ForConditionalGeneration.from_pretrained(
            str(folder), local_files_only=True, **_float32_kwargs()
        )
        source = "pretrained"
    vocab = backbone.config.text_config.vocab_size
    if len(tokenizer) > vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the backbone's vocabulary is {vocab}")
    return backbone.float(), tokenizer, source


def _float32_kwargs() -> dict[str, Any]:
    """``from_pretrained`` keyword for float32 weights (``dtype`` in transformers 5, ``torch_dtype`` before)."""
    import transformers

    major = int(transformers.__version__.split(".", 1)[0])
    return {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}


# ------------------------------------------------------------------------------ the model
class MobileVLAModel(nn.Module):
    """Kosmos-2 + LoRA + action token + action head, with the fork's parameter names."""

    def __init__(
        self, config: VLAConfig, backbone: nn.Module, tokenizer: Any = None, backbone_source: str = "random"
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.backbone_source = backbone_source
        self.backbone = backbone
        self.text_hidden_size: int = int(backbone.config.text_config.embed_dim)
        self.num_image_tokens: int = int(backbone.config.latent_query_num)
        self.act_head = ActionHead(config, self.text_hidden_size)
        # The fork's init: Xavier-scaled normal (std sqrt(2 / (D + D))).
        std = (2.0 / (2 * self.text_hidden_size)) ** 0.5
        self.action_token = nn.Parameter(torch.randn(self.text_hidden_size) * std)
        self._setup_trainable()

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(
        cls, config: VLAConfig, seed: int | None = None, *, load_backbone_weights: bool = True
    ) -> MobileVLAModel:
        """Build from a config: backbone (preset or folder), head, LoRA. ``seed`` fixes random init."""
        if seed is not None:
            torch.manual_seed(seed)
        backbone, tokenizer, source = build_backbone(config, load_weights=load_backbone_weights)
        return cls(config, backbone, tokenizer, backbone_source=source)

    @classmethod
    def build_meta(cls, config: VLAConfig) -> MobileVLAModel:
        """The model's structure on the ``meta`` device (names and shapes, no memory, no tokenizer).

        For a folder backbone without its files, the real Kosmos-2 sizes are assumed.
        """
        from transformers import Kosmos2ForConditionalGeneration

        try:
            kcfg = kosmos2_config(config)
        except BackboneNotFoundError:
            logger.warning("backbone folder %s missing: assuming the real Kosmos-2 sizes", config.backbone)
            kcfg = kosmos2_config(
                config.replace(backbone="kosmos2-base", backbone_config=KOSMOS2_BASE_CONFIG)
            )
        with torch.device("meta"):
            return cls(config, Kosmos2ForConditionalGeneration(kcfg), tokenizer=None, backbone_source="meta")

    def _setup_trainable(self) -> None:
        cfg = self.config
        backbone = self.backbone
        backbone.config.use_cache = False
        backbone.requires_grad_(not cfg.freeze_backbone)
        backbone.vision_model.requires_grad_(cfg.train_vision)
        if cfg.lora_enable:
            from peft import LoraConfig, get_peft_model

            targets = (
                list(cfg.lora_target_modules) if cfg.lora_target_modules else lora_target_modules(backbone)
            )
            lora_config = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                bias=cfg.lora_bias,
                target_modules=targets,
                task_type="CAUSAL_LM",
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                # get_peft_model injects LoRA into `backbone` in place; registering the wrapper
                # as `model` gives the second name of every backbone tensor (the fork's layout).
                self.model = get_peft_model(backbone, lora_config)
        backbone.get_input_embeddings().requires_grad_(cfg.train_text_embedding)
        if cfg.tune_mm_projector:
            backbone.image_to_text_projection.requires_grad_(True)
        self.act_head.requires_grad_(True)
        self.action_token.requires_grad_(True)

    # ---------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return self.action_token.device

    @property
    def dtype(self) -> torch.dtype:
        return self.action_token.dtype

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates (LoRA, head, action token, plus any unfrozen base)."""
        return [p for p in self.parameters() if p.requires_grad]

    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) of the trainable parameters, names in the ``backbone.`` form."""
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    def parameter_counts(self) -> dict[str, int]:
        """Unique parameter counts: total, trainable, lora, head, action_token, backbone_base."""
        counts = {"total": 0, "trainable": 0, "lora": 0, "head": 0, "action_token": 0, "backbone_base": 0}
        for name, p in self.named_parameters():
            n = p.numel()
            counts["total"] += n
            counts["trainable"] += n if p.requires_grad else 0
            if "lora_" in name:
                counts["lora"] += n
            elif name.startswith("act_head."):
                counts["head"] += n
            elif name == "action_token":
                counts["action_token"] += n
            else:
                counts["backbone_base"] += n
        return counts

    def lora_merged(self) -> bool:
        """Whether the LoRA deltas are currently merged into the base weights."""
        return any(getattr(m, "merged", False) for m in self.backbone.modules() if hasattr(m, "lora_A"))

    def set_lora_merged(self, merged: bool) -> None:
        """Merge (inference speed: no extra LoRA matmuls) or unmerge the LoRA deltas.

        Merged, the base weights hold W + scale * B @ A: never save or train a merged model.
        Outputs equal the unmerged model's up to float rounding.
        """
        if not self.config.lora_enable or merged == self.lora_merged():
            return
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if merged:
                self.model.merge_adapter()
            else:
                self.model.unmerge_adapter()

    # ---------------------------------------------------------------- backbone passes
    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, latent_query_num, text hidden]: Kosmos-2's image features.

        vision encoder -> post_layernorm over all tokens -> L2 normalize -> image-to-text
        projection (latent queries), as ``Kosmos2ForConditionalGeneration`` does.
        """
        backbone = self.backbone
        vision_out = backbone.vision_model(pixel_values=pixel_values.to(self.dtype))
        feats = backbone.vision_model.model.post_layernorm(vision_out[0])
        feats = F.normalize(feats, dim=-1)
        embeds, _ = backbone.image_to_text_projection(feats)
        return embeds

    def encode_frames(self, pixel_values: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run frames through the backbone on their own; return their action-slot hidden states.

        Args:
            pixel_values: [N, 3, H, W] preprocessed frames.
            text: :func:`policies.vla.processors.collate_layouts` of one layout per frame (N rows) or
                of one layout shared by every frame (1 row).

        Returns:
            [N, text hidden] features, one per frame.
        """
        n = pixel_values.shape[0]
        ids, mask, image_mask = (
            _rows(text[k].to(self.device), n) for k in ("input_ids", "attention_mask", "image_mask")
        )
        action_index = text["action_index"].to(self.device)
        action_index = action_index.expand(n) if action_index.numel() == 1 else action_index
        if action_index.shape != (n,):
            raise ValueError(f"text layouts have {action_index.numel()} rows for {n} frames")
        if not bool((image_mask.sum(dim=1) == self.num_image_tokens).all()):
            raise ValueError(f"every row needs exactly {self.num_image_tokens} image slots in image_mask")
        text_transformer = self.backbone.text_model.model
        embeds = text_transformer.embed_tokens(ids)
        rows = torch.arange(n, device=embeds.device)
        embeds = embeds.clone()
        embeds[rows, action_index] = self.action_token.to(embeds.dtype)
        out = text_transformer(
            inputs_embeds=embeds,
            attention_mask=mask,
            image_embeds=self.image_embeds(pixel_values),
            image_embeds_position_mask=image_mask,
            use_cache=False,
        )
        return out.last_hidden_state[rows, action_index]

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame features [B, T, D] -> head outputs [B, T, chunk, out] (LSTM from zero)."""
        return self.act_head(features)

    def forward(self, pixel_values: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training/full forward: [B, T, 3, H, W] frames + one layout per window (B rows) -> [B, T, chunk, out]."""
        if pixel_values.ndim != 5:
            raise ValueError(f"pixel_values must be [B, T, 3, H, W], got shape {tuple(pixel_values.shape)}")
        b, t = pixel_values.shape[:2]
        per_frame = {
            k: (v.repeat_interleave(t, dim=0) if v.shape[0] == b and b > 1 else v) for k, v in text.items()
        }
        feats = self.encode_frames(pixel_values.flatten(0, 1), per_frame)
        return self.head(feats.view(b, t, -1))

    # ---------------------------------------------------------------- training helpers
    def compute_loss(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Masked loss with the fork's metric names.

        Regression heads: Huber on normalized [B, T, chunk, 2] targets
        (:func:`policies.vla.processors.normalize_actions`); classification: cross-entropy (with the
        head's class weights) on [B, T, chunk] class labels. Returns ``loss`` (the sum of terms:
        here the one), ``loss_velocity_act`` and ``rmse_velocity_act`` = sqrt(loss), which the fork
        logs as "rmse" (not a true RMSE). ``mask`` is [B, T, chunk] (0 past the episode's end).
        """
        if self.config.is_classification:
            logits = pred.float().flatten(0, -2)
            labels = target.long().flatten()
            if mask is not None:
                keep = mask.bool().flatten()
                logits, labels = logits[keep], labels[keep]
            weights = getattr(self.act_head, "class_weights_tensor", None)
            loss = F.cross_entropy(logits, labels, weight=weights) if len(labels) else pred.sum() * 0.0
        else:
            if pred.shape != target.shape:
                raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
            huber = F.huber_loss(pred.float(), target.float(), reduction="none")
            if mask is None:
                loss = huber.mean()
            else:
                if mask.shape != pred.shape[:-1]:
                    raise ValueError(
                        f"mask must have shape {tuple(pred.shape[:-1])}, got {tuple(mask.shape)}"
                    )
                m = mask.bool()
                loss = huber[m].mean() if bool(m.any()) else huber.sum() * 0.0
        return {"loss": loss, "loss_velocity_act": loss, "rmse_velocity_act": torch.sqrt(loss.detach())}


def _rows(x: torch.Tensor, n: int) -> torch.Tensor:
    x = x.unsqueeze(0) if x.ndim == 1 else x
    if x.shape[0] == n:
        return x
    if x.shape[0] == 1:
        return x.expand(n, -1)
    raise ValueError(f"text tensors have {x.shape[0]} rows for {n} frames")


__all__ = [
    "ActionHead",
    "BackboneNotFoundError",
    "MLPHead",
    "MobileVLAModel",
    "build_backbone",
    "check_backbone_folder",
    "kosmos2_config",
    "load_tokenizer",
    "lora_target_modules",
]
