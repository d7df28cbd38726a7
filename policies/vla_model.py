"""The Mobile VLA network: Kosmos-2 backbone + peft LoRA + action token + LSTM action head.

This module owns :class:`MobileVLAModel`, laid out like RoboVLMs' ``RoboKosMos`` so that real
checkpoints load by name:

* ``backbone``: a transformers ``Kosmos2ForConditionalGeneration``. With ``lora_enable`` the
  base weights are frozen and peft's ``get_peft_model`` injects LoRA (r 32, alpha 16, dropout
  0.1, bias none) into **every** ``nn.Linear`` except ``lm_head``: with Kosmos-2 that includes
  the vision encoder and the image-to-text projection (RoboVLMs' rule that skips vision parts
  matches other models' module names, not Kosmos-2's).
* ``model``: the peft wrapper, registered a second time (as RoboVLMs does), so the state dict
  holds the same tensors as ``backbone.<path>`` and ``model.base_model.model.<path>``.
* ``action_token``: one learned vector of the text hidden size, appended after the text.
* ``act_head``: ``rnn`` (a 4-layer LSTM, hidden 512) and MLPs 1024-512-256:
  ``actions.mlp.{0,2,4,6}`` (tanh) + ``gripper.mlp.{0,2,4,6}`` (unbounded) for
  ``LSTMDecoder``, concatenated into [linear_x, linear_y]; or ``velocities.mlp.{0,2,4,6}``
  (tanh, both values) for ``MobileVLALSTMDecoder``. Output: a chunk of ``fwd_pred_next_n`` x 2
  normalized actions per frame.

history_type "post": every frame of the window goes through the backbone on its own, with the
prompt ``<s> [image] <grounding>An image of a robot {instruction} [action]``; the hidden state
at the action slot is the frame's feature; the LSTM runs over the window's features. Frames
being independent through the backbone, inference caches per-frame features
(:class:`FrameFeatureCache`) and encodes only the newest frame each step; the result equals a
full recompute of the padded window (tested).

Layout caveat: the prompt and slot layout follow upstream RoboVLMs (image features right after
``<s>``, action token at the end of the text). The Mobile VLA fork's Kosmos-2 fallback path
wrote the image features over the first 64 text positions instead; a real checkpoint trained
that way would see a different sequence here. Checkpoints trained by this project's ``train/``
use this module, so training and evaluation agree by construction.

For the Lightning module (``train/``)::

    class MobileVLAModule(L.LightningModule):
        def __init__(self, configs: dict):            # the RoboVLMs JSON
            super().__init__()
            self.save_hyperparameters({"configs": configs})   # -> hyper_parameters["configs"]
            self.model = MobileVLAModel.build(VLAConfig.from_robovlms(configs))
            # state-dict keys then read "model.backbone...", "model.model.base_model.model...",
            # "model.act_head...", "model.action_token" like the real checkpoints.

        def training_step(self, batch, _):
            # rgb: [B, 8, 3, 224, 224] from processors.preprocess_frame (the policy's own path)
            # text: processors.collate_text([self.model.text_inputs(s) for s in lang], pad_id)
            # action_chunck: [B, 8, 10, 2] = processors.normalize_actions(actions) (1.15 -> 1.0)
            # chunck_mask: [B, 8, 10], 0 past the episode's end
            t = batch["text"]
            pred = self.model(batch["rgb"], t["input_ids"], t["attention_mask"],
                              t["image_embeds_position_mask"], t["action_token_mask"])
            out = self.model.compute_loss(pred, batch["action_chunck"], batch["chunck_mask"])
            self.log_dict({f"train_{k}": v for k, v in out.items()})
            # -> train_loss, train_loss_velocity_act, train_rmse_velocity_act (RoboVLMs' names)
            return out["loss"]

        def configure_optimizers(self):
            return torch.optim.AdamW(self.model.trainable_parameters(), lr=..., weight_decay=...)

Use ``config.to_robovlms()`` for ``configs`` when the run starts from a :class:`VLAConfig`.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from policies.processors import TextInputs, pad_window, tokenize_instruction
from policies.vla_config import VLAConfig

logger = logging.getLogger(__name__)

HEAD_MLP_WIDTHS: tuple[int, int, int] = (1024, 512, 256)


class BackboneNotFoundError(FileNotFoundError):
    """The configured Kosmos-2 folder does not exist or is incomplete."""


# ------------------------------------------------------------------------------- the head
class MLPHead(nn.Module):
    """``mlp``: Linear-ReLU x 3 (widths 1024-512-256) then Linear, with an optional Tanh.

    Parameter names ``mlp.{0,2,4,6}`` match RoboVLMs' MLPTanhHead / MLPNohHead.
    """

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


class LSTMActionHead(nn.Module):
    """RoboVLMs' ``LSTMDecoder`` / ``MobileVLALSTMDecoder`` for a 2-D action.

    Input: per-frame features [B, T, D]; output: [B, T, chunk, 2] normalized actions.
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        num_layers: int,
        chunk: int,
        action_dim: int,
        head_type: str,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.head_type = head_type
        self.chunk = chunk
        self.action_dim = action_dim
        self.rnn = nn.LSTM(
            input_size=in_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        if head_type == "LSTMDecoder":
            self.actions = MLPHead(hidden_size, chunk * (action_dim - 1), tanh=True)
            self.gripper = MLPHead(hidden_size, chunk, tanh=False)
        elif head_type == "MobileVLALSTMDecoder":
            self.velocities = MLPHead(hidden_size, chunk * action_dim, tanh=True)
        else:
            raise ValueError(f"head_type must be 'LSTMDecoder' or 'MobileVLALSTMDecoder', got {head_type!r}")
        self._init_mlps()

    def _init_mlps(self) -> None:
        # RoboVLMs' initialize_param: xavier-uniform weights, zero biases on the MLP linears.
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
            actions = self.actions(x).view(b, t, self.chunk, self.action_dim - 1)
            gripper = self.gripper(x).view(b, t, self.chunk, 1)
            return torch.cat([actions, gripper], dim=-1)
        return self.velocities(x).view(b, t, self.chunk, self.action_dim)


# --------------------------------------------------------------------------- the backbone
def lora_target_modules(backbone: nn.Module) -> list[str]:
    """Last name component of every ``nn.Linear`` except ``lm_head`` (RoboVLMs' rule).

    For Kosmos-2: q/k/v/out_proj, fc1, fc2 (text and vision) and dense (image-to-text).
    """
    names = {
        name.rsplit(".", 1)[-1] for name, module in backbone.named_modules() if isinstance(module, nn.Linear)
    }
    names.discard("lm_head")
    return sorted(names)


def kosmos2_config(config: VLAConfig):  # -> transformers.Kosmos2Config
    """The backbone's ``Kosmos2Config``: from the preset/explicit dict, or the folder's config.json."""
    from transformers import Kosmos2Config

    kwargs = config.resolved_backbone_config()
    if kwargs is not None:
        return Kosmos2Config(**kwargs)
    folder = check_backbone_folder(config.backbone)
    return Kosmos2Config.from_pretrained(str(folder), local_files_only=True)


def check_backbone_folder(backbone: str) -> Path:
    """The Kosmos-2 folder as a Path; :class:`BackboneNotFoundError` (naming it and the fix) if absent."""
    folder = Path(backbone).expanduser()
    if not (folder / "config.json").is_file():
        raise BackboneNotFoundError(
            f"Kosmos-2 backbone folder {str(folder)!r} not found or has no config.json. The real runs load "
            "microsoft/kosmos-2-patch14-224 from a local folder (.vlms/kosmos-2-patch14-224 under the "
            "training repo). Fix: place a copy of that model there and pass backbone_dir=/path/to/"
            "kosmos-2-patch14-224 (CLI: --backbone-dir), or use the 'tiny' preset for a random model."
        )
    return folder


def _load_tokenizer(config: VLAConfig) -> Any:
    if config.is_preset:
        from policies.tokenizer_tiny import load_tiny_tokenizer

        return load_tiny_tokenizer()
    folder = check_backbone_folder(config.backbone)
    from transformers import AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("AutoProcessor failed for %s (%s); falling back to AutoTokenizer", folder, exc)
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    # Kosmos2Processor wraps the tokenizer; a folder without processor files yields the tokenizer itself
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

    tokenizer = _load_tokenizer(config)
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
    """Kosmos-2 + LoRA + action token + LSTM head, with RoboVLMs' parameter names."""

    def __init__(
        self, config: VLAConfig, backbone: nn.Module, tokenizer: Any = None, backbone_source: str = "random"
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.backbone_source = backbone_source
        self.backbone = backbone
        text_cfg = backbone.config.text_config
        self.text_hidden_size: int = int(text_cfg.embed_dim)
        self.num_image_tokens: int = int(backbone.config.latent_query_num)
        self.act_head = LSTMActionHead(
            in_features=self.text_hidden_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_lstm_layers,
            chunk=config.fwd_pred_next_n,
            action_dim=config.action_dim,
            head_type=config.head_type,
            dropout=config.lstm_dropout,
        )
        self.action_token = nn.Parameter(torch.zeros(self.text_hidden_size))
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
            from policies.vla_config import KOSMOS2_BASE_CONFIG

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

            lora_config = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                bias=cfg.lora_bias,
                target_modules=lora_target_modules(backbone),
                task_type="CAUSAL_LM",
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                # get_peft_model injects LoRA into `backbone` in place; registering the wrapper
                # as `model` gives the second name of every backbone tensor (RoboVLMs layout).
                self.model = get_peft_model(backbone, lora_config)
        backbone.get_input_embeddings().requires_grad_(cfg.train_text_embedding)
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

    # ---------------------------------------------------------------- text
    def text_inputs(self, instruction: str) -> TextInputs:
        """Tokenize one instruction into this model's prompt layout."""
        if self.tokenizer is None:
            raise RuntimeError("this model was built without a tokenizer (meta build); it cannot tokenize")
        return tokenize_instruction(
            self.tokenizer,
            instruction,
            num_image_tokens=self.num_image_tokens,
            prompt_template=self.config.prompt_template,
            max_text_len=self.config.max_text_len,
        )

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

    def encode_frames(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_embeds_position_mask: torch.Tensor | None = None,
        action_token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run frames through the backbone on their own; return the action-slot hidden states.

        Args:
            pixel_values: [N, 3, H, W] preprocessed frames.
            input_ids, attention_mask: [N, L] or [1, L] / [L] (broadcast to all frames), laid
                out by :func:`policies.processors.tokenize_instruction`, right padded.
            image_embeds_position_mask, action_token_mask: [N or 1, L] bool; derived from the
                layout when omitted (image slots 1..Q, action slot = last non-pad token).

        Returns:
            [N, text hidden] features, one per frame.
        """
        n = pixel_values.shape[0]
        input_ids, attention_mask = _rows(input_ids, n), _rows(attention_mask, n)
        if image_embeds_position_mask is None:
            image_embeds_position_mask = torch.zeros_like(input_ids, dtype=torch.bool)
            image_embeds_position_mask[:, 1 : 1 + self.num_image_tokens] = True
        if action_token_mask is None:
            last = attention_mask.long().sum(dim=1) - 1
            action_token_mask = torch.zeros_like(input_ids, dtype=torch.bool)
            action_token_mask[torch.arange(n), last] = True
        image_mask, action_mask = (
            _rows(image_embeds_position_mask, n).bool(),
            _rows(action_token_mask, n).bool(),
        )
        if not bool((action_mask.sum(dim=1) == 1).all()):
            raise ValueError("every row needs exactly one action slot in action_token_mask")
        if not bool((image_mask.sum(dim=1) == self.num_image_tokens).all()):
            raise ValueError(
                f"every row needs exactly {self.num_image_tokens} image slots in image_embeds_position_mask"
            )

        text_transformer = self.backbone.text_model.model
        embeds = text_transformer.embed_tokens(input_ids)
        action = self.action_token.to(embeds.dtype).view(1, 1, -1).expand_as(embeds)
        embeds = torch.where(action_mask.unsqueeze(-1), action, embeds)
        out = text_transformer(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            image_embeds=self.image_embeds(pixel_values),
            image_embeds_position_mask=image_mask,
            use_cache=False,
        )
        return out.last_hidden_state[action_mask]

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame features [B, T, D] -> action chunks [B, T, chunk, 2] (normalized)."""
        return self.act_head(features)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_embeds_position_mask: torch.Tensor | None = None,
        action_token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training/full forward: [B, T, 3, H, W] frames + [B, L] text -> [B, T, chunk, 2]."""
        if pixel_values.ndim != 5:
            raise ValueError(f"pixel_values must be [B, T, 3, H, W], got shape {tuple(pixel_values.shape)}")
        b, t = pixel_values.shape[:2]

        def per_frame(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            x = x.unsqueeze(0) if x.ndim == 1 else x
            return x.repeat_interleave(t, dim=0) if x.shape[0] == b else x

        feats = self.encode_frames(
            pixel_values.flatten(0, 1),
            per_frame(input_ids),
            per_frame(attention_mask),
            per_frame(image_embeds_position_mask),
            per_frame(action_token_mask),
        )
        return self.decode(feats.view(b, t, -1))

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def predict_window(self, frames: Sequence[torch.Tensor] | torch.Tensor, text: TextInputs) -> torch.Tensor:
        """Full recompute: the last ``window_size`` frames (padded with the first) through the
        backbone, the LSTM over them; returns the last frame's chunk [chunk, 2]."""
        window = torch.stack(pad_window(list(frames), self.config.window_size)).to(self.device)
        pred = self(window.unsqueeze(0), *_text_tensors(text, self.device))
        return pred[0, -1]

    @torch.no_grad()
    def predict_cached(self, cache: FrameFeatureCache, text: TextInputs) -> torch.Tensor:
        """Incremental inference: encode only frames not yet in ``cache``; returns [chunk, 2]."""
        feats = cache.window_features(self, text)
        return self.decode(feats.unsqueeze(0))[0, -1]

    # ---------------------------------------------------------------- training helpers
    @staticmethod
    def compute_loss(
        pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Masked Huber loss on [B, T, chunk, 2] with RoboVLMs' metric names.

        Returns ``loss`` (the sum of loss terms: here the one), ``loss_velocity_act`` and
        ``rmse_velocity_act`` = sqrt(Huber), which RoboVLMs logs as "rmse" (not a true RMSE).
        ``target`` must be normalized (:func:`policies.processors.normalize_actions`); ``mask``
        is [B, T, chunk] (1 = a real future action, 0 = past the episode's end).
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        huber = F.huber_loss(pred.float(), target.float(), reduction="none")
        if mask is None:
            loss = huber.mean()
        else:
            if mask.shape != pred.shape[:-1]:
                raise ValueError(f"mask must have shape {tuple(pred.shape[:-1])}, got {tuple(mask.shape)}")
            m = mask.bool()
            loss = huber[m].mean() if bool(m.any()) else huber.sum() * 0.0
        return {"loss": loss, "loss_velocity_act": loss, "rmse_velocity_act": torch.sqrt(loss.detach())}


class FrameFeatureCache:
    """Backbone features of the frames in the current window, each computed once.

    ``append`` stores a preprocessed frame; ``window_features`` encodes the frames that have no
    feature yet (one backbone batch) and returns the window's [window_size, D] features, padded
    with the first frame's feature like the frames themselves.
    """

    def __init__(self, window_size: int) -> None:
        self.window_size = window_size
        self._entries: deque[list[torch.Tensor | None]] = deque(maxlen=window_size)
        self.frames_encoded = 0

    def reset(self) -> None:
        self._entries.clear()
        self.frames_encoded = 0

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, pixels: torch.Tensor) -> None:
        """Add the newest preprocessed frame [3, H, W]."""
        self._entries.append([pixels, None])

    def window_features(self, model: MobileVLAModel, text: TextInputs) -> torch.Tensor:
        if not self._entries:
            raise RuntimeError("the frame window is empty: append a frame first")
        todo = [e for e in self._entries if e[1] is None]
        if todo:
            pixels = torch.stack([e[0] for e in todo]).to(model.device)
            ids, mask, img_mask, act_mask = _text_tensors(text, model.device)
            feats = model.encode_frames(pixels, ids, mask, img_mask, act_mask)
            for entry, feat in zip(todo, feats, strict=True):
                entry[0], entry[1] = None, feat
            self.frames_encoded += len(todo)
        feats = [e[1] for e in self._entries]
        return torch.stack(pad_window(feats, self.window_size))


def _rows(x: torch.Tensor, n: int) -> torch.Tensor:
    x = x.unsqueeze(0) if x.ndim == 1 else x
    if x.shape[0] == n:
        return x
    if x.shape[0] == 1:
        return x.expand(n, -1)
    raise ValueError(f"text tensors have {x.shape[0]} rows for {n} frames")


def _text_tensors(text: TextInputs, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(
        t.unsqueeze(0).to(device)
        for t in (
            text.input_ids,
            text.attention_mask,
            text.image_embeds_position_mask,
            text.action_token_mask,
        )
    )


__all__ = [
    "BackboneNotFoundError",
    "FrameFeatureCache",
    "LSTMActionHead",
    "MLPHead",
    "MobileVLAModel",
    "build_backbone",
    "check_backbone_folder",
    "kosmos2_config",
    "lora_target_modules",
]
