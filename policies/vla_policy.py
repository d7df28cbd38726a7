"""The Mobile VLA as a closed-loop :class:`policies.base.Policy`.

This module owns :class:`VLAPolicy`, which reproduces the real inference loop around a
:class:`~policies.vla_model.MobileVLAModel`:

* ``reset(instruction)`` tokenizes the instruction and clears the frame window, the per-frame
  feature cache and the action queue;
* ``act(obs)`` preprocesses the frame (:mod:`policies.processors`), keeps the last
  ``window_size`` frames (padded with the first), and when the action queue is empty predicts a
  chunk of ``fwd_pred_next_n`` actions from the window (the newest frame's prediction) and
  queues its first ``execute_steps`` actions (1 = re-plan every step, as deployed); with
  ``temporal_ensemble`` it predicts every step and averages all chunks' predictions for the
  current step with ACT's weights ``exp(-k * i)`` (i = 0 for the oldest chunk);
* the queued action is post-processed (scale to data units, gain, dead zone, inversion, clamp)
  and returned as float32 (2,) ``[linear_x, linear_y]``.

Every setting in force, the checkpoint and its key report are returned by ``settings()``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from policies.processors import (
    PostprocessSettings,
    PreprocessSettings,
    pad_window,
    postprocess_action,
    preprocess_frame,
)
from policies.transport import jpeg_round_trip
from policies.vla_config import CHANNEL_ORDERS, NORMALIZATIONS, VLAConfig
from policies.vla_model import FrameFeatureCache, MobileVLAModel

logger = logging.getLogger(__name__)

PROFILES: tuple[str, ...] = ("as_trained", "as_deployed")
TRANSPORTS: tuple[str, ...] = ("jpeg", "none")

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclass(frozen=True)
class VLAPolicySettings:
    """Run-time settings of :class:`VLAPolicy` (all recorded by ``settings()``)."""

    execute_steps: int = 1
    """Actions of a predicted chunk executed before predicting again (1 = every step, as deployed)."""
    temporal_ensemble: bool = False
    """ACT-style temporal ensembling: predict every step, average overlapping chunk predictions."""
    ensemble_decay: float = 0.01
    """k in the ensemble weights exp(-k * i), i = 0 for the oldest prediction (ACT's default)."""
    gain: float = 1.0
    dead_zone: float = 0.15
    invert_linear_x: bool = False
    invert_linear_y: bool = False
    channel_order: str | None = None
    """``None`` = the checkpoint config's order; ``"rgb"``/``"bgr"`` overrides it."""
    normalization: str | None = None
    """``None`` = the checkpoint config's; ``"clip"``/``"none"`` overrides it."""
    device: str = "cpu"
    dtype: str = "float32"
    use_feature_cache: bool = True
    """Encode only the newest frame per step (identical results; off = 8 backbone passes)."""
    merge_lora: bool = False
    """Merge LoRA into the base weights for inference (faster; equal up to float rounding)."""
    cpu_threads: int | None = None
    """If set, ``torch.set_num_threads`` (process-wide). 1 is best for parallel rollout workers:
    several threads per process on a shared 2-core machine can stall for seconds."""
    profile: str = "as_trained"
    """``"as_trained"`` (what the model saw in training) or ``"as_deployed"`` (the team's server
    and robot client)."""
    transport: str | None = None
    """``"jpeg"``: the robot client's 224x224 resize + JPEG + the server's decode before the
    model (:func:`policies.transport.jpeg_round_trip`); ``"none"``: the frame as is. ``None`` =
    the profile's default (``"jpeg"`` for ``as_deployed``)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.execute_steps, int) and self.execute_steps >= 1):
            raise ValueError(f"execute_steps must be an integer >= 1, got {self.execute_steps!r}")
        if self.temporal_ensemble and self.execute_steps != 1:
            raise ValueError(
                f"temporal_ensemble predicts every step: execute_steps must be 1, got {self.execute_steps!r}"
            )
        if not (math.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0):
            raise ValueError(f"ensemble_decay must be >= 0, got {self.ensemble_decay!r}")
        if self.channel_order is not None and self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(
                f"channel_order must be one of {list(CHANNEL_ORDERS)} or None, got {self.channel_order!r}"
            )
        if self.normalization is not None and self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {list(NORMALIZATIONS)} or None, got {self.normalization!r}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but CUDA is not available")
        if self.cpu_threads is not None and not (isinstance(self.cpu_threads, int) and self.cpu_threads >= 1):
            raise ValueError(f"cpu_threads must be an integer >= 1 or None, got {self.cpu_threads!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {list(PROFILES)}, got {self.profile!r}")
        if self.transport is not None and self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {list(TRANSPORTS)} or None, got {self.transport!r}")
        if self.device == "cpu" and self.dtype == "float16":
            raise ValueError("dtype 'float16' is not supported on CPU; use 'float32' or 'bfloat16'")

    @classmethod
    def split(cls, options: dict[str, Any]) -> tuple[VLAPolicySettings, dict[str, Any]]:
        """(settings from the keys this class knows, the remaining keys)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names}), {
            k: v for k, v in options.items() if k not in names
        }


class VLAPolicy:
    """Closed-loop Mobile VLA policy: ``reset(instruction)`` then ``act(obs)`` -> float32 (2,)."""

    name = "vla"

    def __init__(
        self,
        model: MobileVLAModel,
        settings: VLAPolicySettings | None = None,
        *,
        checkpoint_path: str | None = None,
        key_report: dict[str, Any] | None = None,
        source: str = "config",
    ) -> None:
        self.config: VLAConfig = model.config
        self.options = settings or VLAPolicySettings()
        if self.options.cpu_threads is not None:
            torch.set_num_threads(self.options.cpu_threads)
        self.model = model.to(device=self.options.device, dtype=DTYPES[self.options.dtype]).eval()
        if self.options.device.startswith("cuda") and self.options.dtype != "float32":
            self.model.act_head.float()  # cuDNN LSTM: no bf16 weight flattening; the head is small
        self.model.act_head.rnn.flatten_parameters()
        self.model.set_lora_merged(self.options.merge_lora)
        self.checkpoint_path = checkpoint_path
        self.key_report = key_report
        self.source = source
        self.preprocess = PreprocessSettings.from_config(
            self.config, channel_order=self.options.channel_order, normalization=self.options.normalization
        )
        self.postprocess = PostprocessSettings(
            gain=self.options.gain,
            dead_zone=self.options.dead_zone,
            invert_linear_x=self.options.invert_linear_x,
            invert_linear_y=self.options.invert_linear_y,
        )
        self._cache = FrameFeatureCache(self.config.window_size)
        self._frames: deque[torch.Tensor] = deque(maxlen=self.config.window_size)
        self._queue: deque[np.ndarray] = deque()
        self._chunks: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.fwd_pred_next_n)
        self._text = None
        self.instruction: str | None = None
        self._warned_instruction = False
        self.step = 0
        self.predictions = 0
        self.transport = self.options.transport or ("jpeg" if self.options.profile == "as_deployed" else "none")

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_config(cls, config: VLAConfig, seed: int = 0, **options: Any) -> VLAPolicy:
        """A policy with randomly initialised weights (tests, latency, smoke runs)."""
        settings, rest = VLAPolicySettings.split(options)
        if rest:
            raise TypeError(f"unknown VLAPolicy settings: {sorted(rest)}")
        return cls(MobileVLAModel.build(config, seed=seed), settings, source=f"random init (seed {seed})")

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        profile: str = "as_trained",
        *,
        config_path: str | os.PathLike[str] | None = None,
        backbone_dir: str | os.PathLike[str] | None = None,
        config_root: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> VLAPolicy:
        """Load a Lightning checkpoint (see :func:`policies.checkpoint.load_model`); the keyword
        options are :class:`VLAPolicySettings` fields."""
        from policies.checkpoint import load_model

        settings, rest = VLAPolicySettings.split({**options, "profile": profile})
        if rest:
            raise TypeError(f"unknown VLAPolicy settings: {sorted(rest)}")
        loaded = load_model(path, config_path=config_path, backbone_dir=backbone_dir, config_root=config_root)
        return cls(
            loaded.model,
            settings,
            checkpoint_path=loaded.path,
            key_report=loaded.report.summary(),
            source="checkpoint",
        )

    # ---------------------------------------------------------------- Policy protocol
    def reset(self, instruction: str) -> None:
        """Start an episode: tokenize the instruction, clear window, feature cache and queue."""
        self._text = self.model.text_inputs(instruction)
        self.instruction = instruction
        self._warned_instruction = False
        self._cache.reset()
        self._frames.clear()
        self._queue.clear()
        self._chunks.clear()
        self.step = 0
        self.predictions = 0

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
        image = obs["image"]
        if self.transport == "jpeg":
            image = jpeg_round_trip(image)
        pixels = preprocess_frame(image, self.preprocess, device=self.model.device)
        with torch.no_grad():
            if self.options.use_feature_cache:
                self._cache.append(pixels)
            else:
                self._frames.append(pixels)
            if self.options.temporal_ensemble:
                self._chunks.append((self.step, self._predict()))
                raw = self._ensembled_action()
            else:
                if not self._queue:
                    chunk = self._predict()
                    self._queue.extend(chunk[: self.options.execute_steps])
                raw = self._queue.popleft()
        self.step += 1
        if self.options.profile == "as_deployed" and self.step == 1:
            return np.zeros(2, dtype=np.float32)  # the team's server zeroes the first call after a reset
        return postprocess_action(raw, self.postprocess)

    def settings(self) -> dict[str, Any]:
        """Every pre/post-processing setting in force, the model config and the checkpoint."""
        cfg = self.config
        return {
            "policy": self.name,
            "profile": self.options.profile,
            "transport": self.transport,
            "source": self.source,
            "checkpoint": self.checkpoint_path,
            "key_report": self.key_report,
            "model": {
                "backbone": cfg.backbone,
                "head_type": cfg.head_type,
                "window_size": cfg.window_size,
                "fwd_pred_next_n": cfg.fwd_pred_next_n,
                "history_type": cfg.history_type,
                "prompt_template": cfg.prompt_template,
                "lora": {"enable": cfg.lora_enable, "r": cfg.lora_r, "alpha": cfg.lora_alpha},
                "config_normalization": cfg.normalization,
                "config_channel_order": cfg.channel_order,
            },
            "preprocess": self.preprocess.as_dict(),
            "postprocess": self.postprocess.as_dict(),
            "execute_steps": self.options.execute_steps,
            "temporal_ensemble": self.options.temporal_ensemble,
            "ensemble_decay": self.options.ensemble_decay,
            "use_feature_cache": self.options.use_feature_cache,
            "merge_lora": self.options.merge_lora,
            "cpu_threads": torch.get_num_threads(),
            "device": self.options.device,
            "dtype": self.options.dtype,
            "options": asdict(self.options),
        }

    # ---------------------------------------------------------------- internals
    def _predict(self) -> np.ndarray:
        """The newest frame's chunk [chunk, 2] (normalized), from the cache or a full window."""
        if self.options.use_feature_cache:
            chunk = self.model.predict_cached(self._cache, self._text)
        else:
            chunk = self.model.predict_window(
                pad_window(list(self._frames), self.config.window_size), self._text
            )
        self.predictions += 1
        return chunk.float().cpu().numpy()

    def _ensembled_action(self) -> np.ndarray:
        preds = [chunk[self.step - t0] for t0, chunk in self._chunks if 0 <= self.step - t0 < len(chunk)]
        weights = np.exp(-self.options.ensemble_decay * np.arange(len(preds)))
        return (np.stack(preds) * (weights / weights.sum())[:, None]).sum(axis=0)

    @property
    def frames_encoded(self) -> int:
        """Backbone frame passes made since the last reset (cached mode only)."""
        return self._cache.frames_encoded


__all__ = ["DTYPES", "VLAPolicy", "VLAPolicySettings"]
