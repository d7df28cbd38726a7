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
  the robot's logs;
* ``start_episode(instruction)`` and ``act_batch(episodes, observations)`` (the batched contract,
  :class:`policies.base.BatchPolicy`): N live episodes, each with its own :class:`VLAEpisode`
  (prompt, history or feature cache, action queue), one backbone forward per step for all of
  their frames; the head then runs over each episode's own history (a few per cent of the
  compute; it keeps every episode's actions bit-identical to one policy's on CPU).
  ``act(obs)`` is ``act_batch`` over the policy's own episode.

Every setting in force, the profile, the era and why, the overrides, the checkpoint and its key
report are returned by ``settings()``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from policies.vla.config import VLAConfig
from policies.vla.model import MobileVLAModel
from policies.vla.processors import (
    TextLayout,
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

__all__ = ["DTYPES", "PROFILES", "ProfileError", "VLAEpisode", "VLAPolicy"]


@dataclass(eq=False)
class VLAEpisode:
    """One live episode of a :class:`VLAPolicy`: its prompt and everything the fork's loop keeps.

    ``features`` (with the feature cache) or ``frames`` hold the head's history (the last
    ``window_size`` frames), ``queue`` the chunk actions still to serve, ``chunks`` the recent
    chunks for temporal ensembling.
    """

    instruction: str
    prompt: str
    layout: TextLayout
    text: dict[str, torch.Tensor]
    """``collate_layouts([layout])`` on the model's device."""
    window: int
    chunk: int
    features: deque[torch.Tensor] = field(init=False)
    frames: deque[torch.Tensor] = field(init=False)
    queue: deque[np.ndarray] = field(default_factory=deque)
    chunks: deque[tuple[int, np.ndarray]] = field(init=False)
    step: int = 0
    predictions: int = 0
    frames_encoded: int = 0
    last_output: np.ndarray | None = None
    """The head's output at the newest step of the last prediction, [chunk, out]."""
    warned_instruction: bool = False
    tracing: bool = False

    def __post_init__(self) -> None:
        self.features = deque(maxlen=self.window)
        self.frames = deque(maxlen=self.window)
        self.chunks = deque(maxlen=self.chunk)


def _episode_field(name: str, default: Any = None) -> property:
    """A :class:`VLAPolicy` attribute that is its own episode's (``default`` before any reset)."""

    def get(self: VLAPolicy) -> Any:
        return default if self._episode is None else getattr(self._episode, name)

    def put(self: VLAPolicy, value: Any) -> None:
        if self._episode is None:
            raise RuntimeError(f"VLAPolicy.{name} is an episode's: call reset(instruction) first")
        setattr(self._episode, name, value)

    return property(get, put, doc=f"The current episode's ``{name}`` (:class:`VLAEpisode`).")


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
        self._episode: VLAEpisode | None = None

    _features = _episode_field("features")
    _frames = _episode_field("frames")
    _queue = _episode_field("queue")
    _chunks = _episode_field("chunks")
    _text = _episode_field("text")
    prompt = _episode_field("prompt")
    instruction = _episode_field("instruction")
    last_output = _episode_field("last_output")
    step = _episode_field("step", 0)
    predictions = _episode_field("predictions", 0)
    frames_encoded = _episode_field("frames_encoded", 0)

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
        self._episode = self.start_episode(instruction)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """One control step: the env action float32 (2,) [linear_x, linear_y] in data units."""
        if self._episode is None:
            raise RuntimeError("VLAPolicy.act() called before reset(instruction)")
        return self.act_batch([self._episode], [obs])[0]

    # ---------------------------------------------------------------- BatchPolicy protocol
    def start_episode(self, instruction: str, *, seed: int = 0, env: Any = None) -> VLAEpisode:
        """A new episode's state: the prompt laid out for ``instruction``, an empty history.

        ``seed`` and ``env`` are part of the batched contract and unused (the model is deterministic).
        """
        s = self.options
        if self.model.tokenizer is None:
            raise RuntimeError("this model was built without a tokenizer (meta build); it cannot act")
        prompt = prompt_text(instruction_for(instruction, s), s.prompt_template)
        pad_to = self.config.max_text_len if s.text_padding == "max_length" else None
        ids, mask = tokenize_prompt(self.model.tokenizer, prompt, pad_to=pad_to)
        layout = layout_tokens(
            ids, mask, layout=s.token_layout, num_image_tokens=self.model.num_image_tokens, text=prompt
        )
        text = {k: v.to(self.model.device) for k, v in collate_layouts([layout]).items()}
        return VLAEpisode(
            instruction, prompt, layout, text, self.config.window_size, self.config.fwd_pred_next_n
        )

    def act_batch(self, episodes: Sequence[VLAEpisode], observations: Sequence[dict[str, Any]]) -> np.ndarray:
        """One control step of N live episodes: float32 [N, 2] actions, one backbone forward for all.

        Each episode keeps its own history, queue and counters; its actions equal those of a
        policy running it alone (bit for bit on CPU).
        """
        if len(episodes) != len(observations):
            raise ValueError(f"act_batch got {len(episodes)} episodes and {len(observations)} observations")
        if not episodes:
            return np.zeros((0, 2), dtype=np.float32)
        for episode, obs in zip(episodes, observations, strict=True):
            self._check_obs(episode, obs)
        cfg, s = self.config, self.options
        pixels = torch.stack(
            [
                preprocess_frame(o["image"], s, cfg.image_size, cfg.image_mean, cfg.image_std)
                for o in observations
            ]
        ).to(self.model.device, self.model.dtype)
        with torch.no_grad():
            if s.use_feature_cache:
                features = self._encode(pixels, list(episodes))
            for row, episode in enumerate(episodes):
                copies = 2 if (episode.step == 0 and s.episode_start and not episode.tracing) else 1
                if s.use_feature_cache:
                    episode.features.extend([features[row]] * copies)
                    episode.frames_encoded += 1
                else:
                    episode.frames.extend([pixels[row]] * copies)
            due = [e for e in episodes if s.temporal_ensemble or not e.queue]
            outputs = dict(zip(map(id, due), self._predict(due), strict=True))
            return np.stack([self._next_action(e, outputs.get(id(e))) for e in episodes])

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
        self._episode.tracing = True
        for frame in frames:
            actions.append(self.act({"image": np.asarray(frame), "instruction": instruction}))
            chunks.append(self.last_output)
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
    def _check_obs(self, episode: VLAEpisode, obs: Any) -> None:
        if not isinstance(obs, dict) or "image" not in obs:
            raise ValueError("obs must be a dict with an 'image' entry (uint8 H x W x 3 RGB)")
        if (
            obs.get("instruction", episode.instruction) != episode.instruction
            and not episode.warned_instruction
        ):
            logger.warning(
                "obs instruction %r differs from the reset() instruction %r; the model keeps using the latter",
                obs["instruction"],
                episode.instruction,
            )
            episode.warned_instruction = True

    def _encode(self, pixels: torch.Tensor, episodes: list[VLAEpisode]) -> torch.Tensor:
        """Features [N, D] of N frames, row i with ``episodes[i]``'s prompt, in one backbone forward."""
        layouts = [e.layout for e in episodes]
        if all(e.prompt == episodes[0].prompt for e in episodes):
            text = episodes[0].text  # one row shared by every frame
        else:
            text = {k: v.to(self.model.device) for k, v in collate_layouts(layouts).items()}
        return self.model.encode_frames(pixels, text)

    def _predict(self, episodes: list[VLAEpisode]) -> list[np.ndarray]:
        """The head's chunk at each episode's newest step [chunk, out], over the fork's head history."""
        if not episodes:
            return []
        if self.options.use_feature_cache:
            histories = [torch.stack(list(e.features)) for e in episodes]
        else:  # every episode's whole window through the backbone, in one forward
            rows = [(e, frame) for e in episodes for frame in e.frames]
            encoded = self._encode(torch.stack([f for _, f in rows]), [e for e, _ in rows])
            histories = list(torch.split(encoded, [len(e.frames) for e in episodes]))
            for e in episodes:
                e.frames_encoded += len(e.frames)
        outputs = []
        for episode, feats in zip(episodes, histories, strict=True):
            out = self.model.head(feats[None])[0, -1].float().cpu().numpy()
            episode.last_output = out
            episode.predictions += 1
            outputs.append(out)
        return outputs

    def _next_action(self, episode: VLAEpisode, output: np.ndarray | None) -> np.ndarray:
        """Serve the episode's next action from its new chunk, its queue or its ensemble; decode it."""
        s = self.options
        if s.temporal_ensemble:
            episode.chunks.append((episode.step, output))
            raw = self._ensembled(episode)
        else:
            if not episode.queue:
                episode.queue.extend(output[: s.execute_steps])
            raw = episode.queue.popleft()
        action = decode_action(
            raw,
            s,
            class_map=self._class_map,
            norm_action=self.config.norm_action,
            instruction=episode.instruction or "",
            first_call=episode.step == 0,
        )
        episode.step += 1
        return action

    def _ensembled(self, episode: VLAEpisode | None = None) -> np.ndarray:
        episode = episode or self._episode
        preds = [
            chunk[episode.step - t0] for t0, chunk in episode.chunks if 0 <= episode.step - t0 < len(chunk)
        ]
        weights = np.exp(-self.options.ensemble_decay * np.arange(len(preds)))
        return (np.stack(preds) * (weights / weights.sum())[:, None]).sum(axis=0)

    @property
    def inference_settings(self) -> InferenceSettings:
        return self.options
