"""The LightningModule that fine-tunes the Mobile VLA (LoRA through peft) with RoboVLMs' metrics.

The network is held as ``self.model`` so that state-dict keys carry the ``model.`` prefix of the
real checkpoints; ``hyper_parameters["configs"]`` holds the whole RoboVLMs config JSON of the run.
Pre-processing of frames goes through ``policies.processors`` so that training sees exactly what
the deployed policy sees.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch.nn import functional as F

from policies.processors import (
    PreprocessSettings,
    collate_text,
    normalize_actions,
    normalize_pixels,
)
from policies.vla_config import VLAConfig
from policies.vla_model import MobileVLAModel

METRIC_NAMES = ("loss", "loss_velocity_act", "rmse_velocity_act", "true_rmse")
"""Logged as ``train_*`` / ``val_*``. The first three are RoboVLMs' (its "rmse" is sqrt of the
Huber loss); ``true_rmse`` is the real root-mean-square error in the data's units (x 1.15)."""

DATA_UNITS_PER_NORMALIZED = 1.15
"""A normalized action of 1.0 is a key press's 1.15 in the data."""


def preprocess_batch(images: torch.Tensor, settings: PreprocessSettings) -> torch.Tensor:
    """uint8 frames (B, T, 3, H, W) -> network pixels (B, T, 3, S, S), as ``preprocess_frame``."""
    b, t = images.shape[:2]
    x = images.flatten(0, 1).float()
    size = settings.image_size
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp_(0.0, 255.0)
    if settings.channel_order == "bgr":
        x = x.flip(1)
    x = normalize_pixels(x, settings.normalization, settings.image_mean, settings.image_std)
    return x.view(b, t, *x.shape[1:])


class MobileVLAModule(L.LightningModule):
    """Fine-tunes :class:`MobileVLAModel`; ``configs`` is the run's RoboVLMs config dict."""

    def __init__(self, configs: dict[str, Any], init_seed: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"configs": configs})
        self.vla_config = VLAConfig.from_robovlms(configs)
        self.model = MobileVLAModel.build(self.vla_config, seed=init_seed)
        self.preprocess = PreprocessSettings.from_config(self.vla_config)
        self._text_cache: dict[str, Any] = {}

    def _text(self, instructions: list[str]) -> dict[str, torch.Tensor]:
        items = []
        for text in instructions:
            if text not in self._text_cache:
                self._text_cache[text] = self.model.text_inputs(text)
            items.append(self._text_cache[text])
        batch = collate_text(items, pad_token_id=self.model.tokenizer.pad_token_id)
        return {k: v.to(self.device) for k, v in batch.items()}

    def encode_batch(self, batch: dict[str, Any]) -> torch.Tensor:
        """Per-frame action-token features [B, L, D] of a batch's frames (each frame on its own)."""
        pixels = preprocess_batch(batch["images"], self.preprocess).to(self.model.dtype)
        text = self._text(batch["instruction"])
        b, length = pixels.shape[:2]
        rows = {k: v.repeat_interleave(length, dim=0) for k, v in text.items()}
        return self.model.encode_frames(
            pixels.flatten(0, 1),
            rows["input_ids"],
            rows["attention_mask"],
            rows["image_embeds_position_mask"],
            rows["action_token_mask"],
        ).view(b, length, -1)

    def _predict(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pred, target, mask) for a batch of windows, or of whole episodes to unfold."""
        feats = self.encode_batch(batch)
        b, length = feats.shape[:2]
        cfg = self.vla_config
        target = normalize_actions(batch["actions"], cfg.norm_min, cfg.norm_max)
        mask = batch["action_mask"] * batch["frame_mask"].unsqueeze(-1)
        w = cfg.window_size
        if length <= w:
            return self.model.decode(feats), target, mask
        # Whole episodes: the window ending at frame t holds frames t-w+1..t, padded with frame 0
        # (the deployed policy's window); supervise every real position of every real window.
        raw = (
            torch.arange(length, device=feats.device)[:, None]
            + torch.arange(-w + 1, 1, device=feats.device)[None, :]
        )
        idx = raw.clamp(min=0)  # [L, w]
        pred = self.model.decode(feats[:, idx].flatten(0, 1)).view(b, length, w, *target.shape[2:])
        window_ok = batch["frame_mask"].bool()[:, :, None]  # [B, L, 1]: the window's last frame is real
        pos_ok = batch["frame_mask"].bool()[:, idx] & (raw >= 0)  # [B, L, w]
        unfolded_mask = mask[:, idx] * (window_ok & pos_ok).unsqueeze(-1)
        return pred, target[:, idx], unfolded_mask

    @torch.no_grad()
    def standardize_features(self, batches: list[dict[str, Any]], min_std: float = 1e-2) -> dict[str, float]:
        """Data-dependent init of the text model's final LayerNorm: per-dimension zero-mean, unit-std
        action-token features over ``batches`` (for randomly initialised presets only).

        A random tiny backbone gives features dominated by one constant vector, and the LSTM head
        then sits on the mean-action plateau for hundreds of steps; folding the features' mean and
        std into the LayerNorm's (frozen) weight and bias removes that without any new parameter,
        so the checkpoint layout is unchanged and inference sees the same features.
        """
        was_training = self.training
        self.eval()
        feats = []
        for batch in batches:
            f = self.encode_batch(batch).flatten(0, 1)
            feats.append(f[batch["frame_mask"].flatten().bool()])
        f = torch.cat(feats)
        mean, std = f.mean(0), f.std(0).clamp(min=min_std)
        norm = self.model.backbone.text_model.model.layer_norm
        norm.weight.div_(std)
        norm.bias.sub_(mean).div_(std)
        self.train(was_training)
        return {"frames": int(len(f)), "mean_abs": float(mean.abs().mean()), "std_mean": float(std.mean())}

    def _shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        pred, target, mask = self._predict(batch)
        cfg = self.vla_config
        out = self.model.compute_loss(pred.flatten(0, 1), target.flatten(0, 1), mask.flatten(0, 1))
        m = mask.bool()
        sq = (pred.float() - target.float()).pow(2)[m]
        scale = DATA_UNITS_PER_NORMALIZED * (cfg.norm_max - cfg.norm_min) / 2
        out["true_rmse"] = sq.mean().sqrt().detach() * scale if bool(m.any()) else torch.zeros(())
        batch_size = int(batch["images"].shape[0])
        on_step = stage == "train"
        for name in METRIC_NAMES:
            self.log(
                f"{stage}_{name}",
                out[name],
                on_step=on_step,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=batch_size,
            )
        return out["loss"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        t = self.vla_config.training
        optimizer = torch.optim.AdamW(
            self.model.trainable_parameters(), lr=t.learning_rate, weight_decay=t.weight_decay
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        warmup = min(total - 1, int(round(t.warmup_epochs * per_epoch)))

        def lr_lambda(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
            return t.min_lr_scale + (1.0 - t.min_lr_scale) * cosine

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
