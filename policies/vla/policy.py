"""The Mobile VLA as a closed-loop :class:`policies.base.Policy`, reproduced under a profile.

This module owns :class:`VLAPolicy`: a :class:`~policies.vla.model.MobileVLAModel` plus the
:class:`~policies.vla.profiles.InferenceSettings` of a profile (``as_trained`` or ``as_deployed``,
see :mod:`policies.vla.profiles`), and the loop around them:

* ``reset(instruction)`` lays out the prompt (the era's instruction, the tokenizer, padding,
  token layout) and clears the frame history and the action queue;
* ``act(obs)`` preprocesses the frame (:mod:`policies.vla.processors`), encodes it once (its feature
  is cached), runs the head over the history the fork's head keeps (every frame since the reset
  for the first ``window_size`` frames, then the last ``window_size`` from a zero state), and
  decodes the newest step's first chunk element into ``[linear_x, linear_y]``
  (``execute_steps`` > 1 serves several chunk elements before predicting again;
  ``temporal_ensemble`` averages overlapping chunks with ACT's weights);
* ``trace(frames, instruction)`` runs that loop over a sequence of frames after a reset and
  returns the raw head outputs at every step and the actions: the view a user compares with
  the robot's logs.

Every setting in force, the profile, the era and why, the overrides, the checkpoint and its key
report are returned by ``settings()``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from policies.vla.config import VLAConfig
from policies.vla.model import MobileVLAModel
from policies.vla.processors import (
    collate_layouts,
    decode_action,
    instruction_for,
    layout_tokens,
    preprocess_frame,
    prompt_text,
    tokenize_prompt,
)
from policies.vla.profiles import (
    DEFAULT_PROFILE,
    PROFILES,
    InferenceSettings,
    ProfileError,
    Resolution,
    resolve,
)

logger = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

__all__ = ["DTYPES", "PROFILES", "ProfileError", "VLAPolicy"]


class VLAPolicy:
    """Closed-loop Mobile VLA policy: ``reset(instruction)`` then ``act(obs)`` -> float32 (2,)."""

    name = "vla"

    def __init__(
        self,
        model: MobileVLAModel,
        resolution: Resolution,
        *,
        checkpoint_path: str | None = None,
        key_report: dict[str, Any] | None = None,
        source: str = "config",
    ) -> None:
        self.config: VLAConfig = model.config
        self.resolution = resolution
        s = self.options = resolution.settings
        if s.device.startswith("cuda") and not torch.cuda.is_available():
            raise ProfileError(f"device {s.device!r} requested but CUDA is not available")
        if s.cpu_threads is not None:
            torch.set_num_threads(s.cpu_threads)
        self.model = model.to(device=s.device, dtype=DTYPES[s.dtype]).eval()
        if s.device.startswith("cuda") and s.dtype != "float32":
            self.model.act_head.float()  # cuDNN LSTM: no bf16 weight flattening; the head is small
        self.model.act_head.rnn.flatten_parameters()
        self.model.set_lora_merged(s.merge_lora)
        self.checkpoint_path = checkpoint_path
        self.key_report = key_report
        self.source = source
        self._class_map = self.config.resolved_class_map() if self.config.is_classification else None
        window = self.config.window_size
        self._features: deque[torch.Tensor] = deque(maxlen=window)
        self._frames: deque[torch.Tensor] = deque(maxlen=window)
        self._queue: deque[np.ndarray] = deque()
        self._chunks: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.fwd_pred_next_n)
        self._text: dict[str, torch.Tensor] | None = None
        self.prompt: str | None = None
        self.instruction: str | None = None
        self._warned_instruction = False
        self.last_output: np.ndarray | None = None
        """The head's output at the newest step of the last prediction, [chunk, out]."""
        self.step = 0
        self.predictions = 0
        self.frames_encoded = 0
        self._tracing = False

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_config(
        cls, config: VLAConfig, profile: str = DEFAULT_PROFILE, seed: int = 0, **overrides: Any
    ) -> VLAPolicy:
        """A policy with randomly initialised weights (tests, latency, smoke runs)."""
        resolution = resolve(config, profile, overrides=overrides)
        return cls(MobileVLAModel.build(config, seed=seed), resolution, source=f"random init (seed {seed})")

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        profile: str = DEFAULT_PROFILE,
        *,
        config_path: str | os.PathLike[str] | None = None,
        backbone_dir: str | os.PathLike[str] | None = None,
        config_root: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> VLAPolicy:
        """Load a Lightning checkpoint (:func:`policies.vla.checkpoint.load_model`) under ``profile``.

        ``overrides`` are :class:`~policies.vla.profiles.InferenceSettings` fields (plus ``era``);
        they are applied on top of the profile and recorded.
        """
        from policies.vla.checkpoint import load_model

        loaded = load_model(path, config_path=config_path, backbone_dir=backbone_dir, config_root=config_root)
        resolution = resolve(loaded.config, profile, checkpoint=path, overrides=overrides)
        return cls(
            loaded.model,
            resolution,
            checkpoint_path=loaded.path,
            key_report=loaded.report.summary(),
            source="checkpoint",
        )

    # ---------------------------------------------------------------- Policy protocol
    def reset(self, instruction: str) -> None:
        """Start an episode: lay out the prompt, clear the history and the action queue."""
        s = self.options
        if self.model.tokenizer is None:
            raise RuntimeError("this model was built without a tokenizer (meta build); it cannot act")
        given = instruction_for(instruction, s)
        self.prompt = prompt_text(given, s.prompt_template)
        pad_to = self.config.max_text_len if s.text_padding == "max_length" else None
        ids, mask = tokenize_prompt(self.model.tokenizer, self.prompt, pad_to=pad_to)
        layout = layout_tokens(
            ids, mask, layout=s.token_layout, num_image_tokens=self.model.num_image_tokens, text=self.prompt
        )
        self._text = {k: v.to(self.model.device) for k, v in collate_layouts([layout]).items()}
        self.instruction = instruction
        self._warned_instruction = False
        self._features.clear()
        self._frames.clear()
        self._queue.clear()
        self._chunks.clear()
        self.last_output = None
        self.step = 0
        self.predictions = 0
        self.frames_encoded = 0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """One control step: the env action float32 (2,) [linear_x, linear_y] in data units."""
        if self._text is None:
            raise RuntimeError("VLAPolicy.act() called before reset(instruction)")
        if not isinstance(obs, dict) or "image" not in obs:
            raise ValueError("obs must be a dict with an 'image' entry (uint8 H x W x 3 RGB)")
        if obs.get("instruction", self.instruction) != self.instruction and not self._warned_instruction:
            logger.warning(
                "obs instruction %r differs from the reset() instruction %r; the model keeps using the latter",
                obs["instruction"],
                self.instruction,
            )
            self._warned_instruction = True
        cfg, s = self.config, self.options
        pixels = preprocess_frame(obs["image"], s, cfg.image_size, cfg.image_mean, cfg.image_std)
        pixels = pixels.to(self.model.device, self.model.dtype)
        copies = 2 if (self.step == 0 and s.episode_start and not self._tracing) else 1
        with torch.no_grad():
            if s.use_feature_cache:
                feature = self.model.encode_frames(pixels[None], self._text)[0]
                self._features.extend([feature] * copies)
                self.frames_encoded += 1
            else:
                self._frames.extend([pixels] * copies)
            if s.temporal_ensemble:
                self._chunks.append((self.step, self._predict()))
                raw = self._ensembled()
            else:
                if not self._queue:
                    self._queue.extend(self._predict()[: s.execute_steps])
                raw = self._queue.popleft()
        action = decode_action(
            raw,
            s,
            class_map=self._class_map,
            norm_action=cfg.norm_action,
            instruction=self.instruction or "",
            first_call=self.step == 0,
        )
        self.step += 1
        return action

    def trace(self, frames: Sequence[np.ndarray] | np.ndarray, instruction: str) -> dict[str, np.ndarray]:
        """Reset, then act on every frame: the raw head outputs and the actions.

        The frames are the model's frames, e.g. an episode file's (frame 0 its ``episode_start``):
        the closed-loop ``episode_start`` duplication does not apply.

        Returns:
            ``{"chunks": float32 [T, chunk, out], "actions": float32 [T, 2]}``: at each step the
            head's output at its newest position (before decoding) and what ``act()`` returned.
        """
        if self.options.execute_steps != 1 or self.options.temporal_ensemble:
            raise ProfileError(
                "trace() records one prediction per step: use execute_steps=1 without temporal_ensemble"
            )
        self.reset(instruction)
        chunks, actions = [], []
        self._tracing = True
        try:
            for frame in frames:
                actions.append(self.act({"image": np.asarray(frame), "instruction": instruction}))
                chunks.append(self.last_output)
        finally:
            self._tracing = False
        return {
            "chunks": np.stack(chunks).astype(np.float32),
            "actions": np.stack(actions).astype(np.float32),
        }

    def settings(self) -> dict[str, Any]:
        """Every setting in force, the profile and era, the model config and the checkpoint."""
        cfg, s = self.config, self.options
        return {
            "policy": self.name,
            "profile": s.profile,
            "transport": s.transport,
            "device": s.device,
            "source": self.source,
            "checkpoint": self.checkpoint_path,
            "key_report": self.key_report,
            "era": self.resolution.era.to_dict(),
            "overrides": dict(self.resolution.overrides),
            "warnings": list(self.resolution.warnings),
            "settings": s.to_dict(),
            "prompt": self.prompt,
            "model": {
                "backbone": cfg.backbone,
                "head_type": cfg.head_type,
                "window_size": cfg.window_size,
                "fwd_pred_next_n": cfg.fwd_pred_next_n,
                "image_size": cfg.image_size,
                "num_classes": cfg.num_classes if cfg.is_classification else None,
                "history_type": cfg.history_type,
                "lora": {"enable": cfg.lora_enable, "r": cfg.lora_r, "alpha": cfg.lora_alpha},
                "recipe": cfg.recipe.to_dict() if cfg.recipe is not None else None,
                "abs_action": cfg.abs_action,
            },
            "cpu_threads": torch.get_num_threads(),
        }

    # ---------------------------------------------------------------- internals
    def _predict(self) -> np.ndarray:
        """The head's chunk at the newest step [chunk, out], over the fork's head history."""
        if self.options.use_feature_cache:
            feats = torch.stack(list(self._features))
        else:
            feats = self.model.encode_frames(torch.stack(list(self._frames)), self._text)
            self.frames_encoded += len(self._frames)
        out = self.model.head(feats[None])[0, -1].float().cpu().numpy()
        self.last_output = out
        self.predictions += 1
        return out

    def _ensembled(self) -> np.ndarray:
        preds = [chunk[self.step - t0] for t0, chunk in self._chunks if 0 <= self.step - t0 < len(chunk)]
        weights = np.exp(-self.options.ensemble_decay * np.arange(len(preds)))
        return (np.stack(preds) * (weights / weights.sum())[:, None]).sum(axis=0)

    @property
    def inference_settings(self) -> InferenceSettings:
        return self.options
