"""The LightningModule that fine-tunes the Mobile VLA (LoRA through peft) with RoboVLMs' metrics.

The network is held as ``self.model`` so that state-dict keys carry the ``model.`` prefix of the
real checkpoints; ``hyper_parameters["configs"]`` holds the whole RoboVLMs config JSON of the run,
including the recipe (``mvla_sim.recipe``: pixel normalization, token layout, instruction) that
the ``as_trained`` profile reproduces. Frames arrive resized (PIL bilinear on uint8, by the
dataset, as the fork's loader does); pixels and prompts then go through ``policies.vla.processors``,
the functions the policy itself uses, so training sees exactly what ``as_trained`` inference sees.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from mvla_sim.facts import KEY_ACTION_VALUE
from policies.vla.config import TrainingRecipe
from policies.vla.model import MobileVLAModel
from policies.vla.processors import (
    action_classes,
    collate_layouts,
    layout_tokens,
    normalize_actions,
    prompt_text,
    to_pixels,
    tokenize_prompt,
)
from policies.vla.robovlms_config import parse as parse_robovlms

METRIC_NAMES = ("loss", "loss_velocity_act", "rmse_velocity_act", "true_rmse")
"""Logged as ``train_*`` / ``val_*``. The first three are RoboVLMs' (its "rmse" is sqrt of the
loss); ``true_rmse`` is the real root-mean-square error in the data's units (x 1.15; regression
heads), the classification heads log their accuracy as ``true_rmse``'s sibling ``acc``."""

DEFAULT_RECIPE = TrainingRecipe(normalization="clip", token_layout="fork", source="config")
"""A run of this project whose config records no recipe trains like the fork's newest code."""


def causal_windows(features: torch.Tensor, window: int, head) -> torch.Tensor:
    """Head outputs at every frame of whole episodes, as inference computes them.

    ``features`` [B, L, D] -> [B, L, chunk, out]: frames 0..W-1 from one pass over the first W
    frames (causal LSTM), every later frame t from a pass over frames t-W+1..t from a zero state
    (the fork's head history at inference).
    """
    b, length = features.shape[:2]
    first = head(features[:, : min(window, length)])
    if length <= window:
        return first
    idx = torch.arange(window, length, device=features.device)[:, None] + torch.arange(
        -window + 1, 1, device=features.device
    )
    later = head(features[:, idx].flatten(0, 1))[:, -1]  # [B * (L - W), chunk, out]
    return torch.cat([first, later.view(b, length - window, *later.shape[1:])], dim=1)


class MobileVLAModule(L.LightningModule):
    """Fine-tunes :class:`MobileVLAModel`; ``configs`` is the run's RoboVLMs config dict."""

    def __init__(self, configs: dict[str, Any], init_seed: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"configs": configs})
        self.vla_config = parse_robovlms(configs)
        self.recipe = self.vla_config.recipe or DEFAULT_RECIPE
        self.model = MobileVLAModel.build(self.vla_config, seed=init_seed)
        self._text_cache: dict[str, Any] = {}

    def _text(self, instructions: list[str]) -> dict[str, torch.Tensor]:
        items = []
        for instruction in instructions:
            if instruction not in self._text_cache:
                given = (
                    self.recipe.constant_instruction if self.recipe.instruction == "constant" else instruction
                )
                text = prompt_text(given, self.vla_config.prompt_template)
                ids, mask = tokenize_prompt(self.model.tokenizer, text)
                self._text_cache[instruction] = layout_tokens(
                    ids,
                    mask,
                    layout=self.recipe.token_layout,
                    num_image_tokens=self.model.num_image_tokens,
                    text=text,
                )
            items.append(self._text_cache[instruction])
        return {k: v.to(self.device) for k, v in collate_layouts(items).items()}

    def encode_batch(self, batch: dict[str, Any]) -> torch.Tensor:
        """Per-frame action-token features [B, T, D] of a batch's frames (each frame on its own)."""
        images = batch["images"]  # (B, T, 3, S, S) uint8, resized by the dataset
        cfg = self.vla_config
        if images.shape[-1] != cfg.image_size or images.shape[-2] != cfg.image_size:
            raise ValueError(
                f"frames are {tuple(images.shape[-2:])}, the model takes {cfg.image_size}: build the dataset "
                f"with image_size={cfg.image_size}"
            )
        b, length = images.shape[:2]
        pixels = to_pixels(
            images.permute(0, 1, 3, 4, 2),
            self.recipe.normalization,
            cfg.image_mean,
            cfg.image_std,
            self.recipe.channel_order,
        ).to(self.model.dtype)
        text = self._text(batch["instruction"])
        rows = {k: v.repeat_interleave(length, dim=0) for k, v in text.items()}
        return self.model.encode_frames(pixels.flatten(0, 1), rows).view(b, length, -1)

    def _targets(self, actions: torch.Tensor) -> torch.Tensor:
        cfg = self.vla_config
        if cfg.is_classification:
            return action_classes(actions, cfg.num_classes).to(actions.device)
        return normalize_actions(actions, cfg.norm_min, cfg.norm_max)

    def _predict(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pred, target, mask) for a batch of windows, or of whole episodes (every frame's output
        as inference computes it: see :func:`causal_windows`)."""
        feats = self.encode_batch(batch)
        target = self._targets(batch["actions"])
        mask = batch["action_mask"] * batch["frame_mask"].unsqueeze(-1)
        pred = causal_windows(feats, self.vla_config.window_size, self.model.head)
        return pred, target, mask

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
        out = self.model.compute_loss(pred, target, mask)
        m = mask.bool()
        if cfg.is_classification:
            hit = (pred.argmax(-1) == target).float()[m]
            out["true_rmse"] = hit.mean().detach() if bool(m.any()) else torch.zeros(())
        else:
            sq = (pred.float() - target.float()).pow(2)[m]
            scale = KEY_ACTION_VALUE * (cfg.norm_max - cfg.norm_min) / 2  # normalized 1.0 = a key press
            out["true_rmse"] = sq.mean().sqrt().detach() * scale if bool(m.any()) else torch.zeros(())
        batch_size = int(batch["images"].shape[0])
        on_step = stage == "train"
        for name in METRIC_NAMES:
            log_name = "acc" if (name == "true_rmse" and cfg.is_classification) else name
            self.log(
                f"{stage}_{log_name}",
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
