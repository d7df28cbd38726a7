"""Explicit pre- and post-processing of the Mobile VLA policy, outside the model.

What reaches the network, step by step (each a small, tested function):

1. :func:`pad_window` keeps the last ``window_size`` frames and pads the front with the
   first frame (the real inference node does the same at the start of an episode).
2. :func:`preprocess_frame` takes the env's uint8 RGB frame (16:9, any size), resizes the
   **full frame** to a square ``image_size`` x ``image_size`` (aspect ratio not kept, no crop:
   the real pipeline resizes 1280x720 straight to 224x224, so objects look horizontally
   squeezed exactly as in training), with bilinear, antialiased interpolation (PIL's BILINEAR
   of the real dataset loader); then puts channels in the configured order (env frames are RGB;
   ``"bgr"`` swaps them, for checkpoints trained on the raw ``bgr8`` frames); then scales to
   [0, 1] and, with ``normalization="clip"``, applies the CLIP mean/std of the config.
3. :func:`tokenize_instruction` lays the text out as RoboVLMs does for Kosmos-2:
   ``<s>`` + the image slots (filled with the image features through
   ``image_embeds_position_mask``) + the prompt-wrapped instruction + one action slot whose
   embedding is the learned ``action_token``; the backbone's hidden state there is the frame's
   feature.

And back to the env:

4. :func:`postprocess_action` un-normalizes the network output from [-1, 1] to data units
   (x 1.15: the data's key value; training clamps 1.15 to 1.0 with norm_min -1 / norm_max 1,
   so a full-scale prediction is mapped back to a full key press), multiplies by the gain,
   zeroes values inside the dead zone (0.15 like the deployed node), optionally inverts axes,
   and clamps to +-1.15.

Training uses :func:`normalize_actions` (the clamp) on targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from mvla_sim.facts import KEY_ACTION_VALUE
from policies.vla_config import CHANNEL_ORDERS, CLIP_MEAN, CLIP_STD, NORMALIZATIONS, VLAConfig

T = TypeVar("T")

RESIZE_METHOD = "bilinear-antialias, full frame squashed to square (no crop)"


# ---------------------------------------------------------------------------------- images
def pad_window(frames: Sequence[T], window_size: int) -> list[T]:
    """The last ``window_size`` frames, front-padded with the first frame when fewer exist.

    >>> pad_window(["f0", "f1"], 4)
    ['f0', 'f0', 'f0', 'f1']
    """
    if window_size <= 0:
        raise ValueError(f"window_size must be positive, got {window_size!r}")
    if len(frames) == 0:
        raise ValueError("pad_window needs at least one frame")
    last = list(frames[-window_size:])
    return [last[0]] * (window_size - len(last)) + last


@dataclass(frozen=True)
class PreprocessSettings:
    """How an env frame becomes the network's pixel tensor (recorded with every result)."""

    image_size: int = 224
    """Square side in pixels; the full 16:9 frame is resized to it (no crop)."""
    channel_order: str = "rgb"
    """Order the network expects; env frames are RGB."""
    normalization: str = "clip"
    """``"clip"``: (x/255 - mean)/std; ``"none"``: x/255."""
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    window_size: int = 8

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(
                f"channel_order must be one of {list(CHANNEL_ORDERS)}, got {self.channel_order!r}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {list(NORMALIZATIONS)}, got {self.normalization!r}"
            )
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size!r}")

    @classmethod
    def from_config(cls, config: VLAConfig, **overrides: Any) -> PreprocessSettings:
        values = dict(
            image_size=config.image_size,
            channel_order=config.channel_order,
            normalization=config.normalization,
            image_mean=tuple(config.image_mean),
            image_std=tuple(config.image_std),
            window_size=config.window_size,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_mean"] = list(self.image_mean)
        out["image_std"] = list(self.image_std)
        out["resize"] = RESIZE_METHOD
        out["input_channel_order"] = "rgb"
        return out


def check_image(image: Any) -> np.ndarray:
    """Validate an env frame: uint8 array of shape (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"obs['image'] must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"obs['image'] must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"obs['image'] must be uint8 (0-255), got {image.dtype}")
    return image


def resize_frame(
    image: np.ndarray, image_size: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, S, S) in [0, 255]: the full frame resized to a square.

    With ``device``, the uint8 frame is moved there first (a GPU resizes a camera frame faster).
    """
    x = torch.from_numpy(np.ascontiguousarray(check_image(image)))
    if device is not None:
        x = x.to(device, non_blocking=False)
    x = x.permute(2, 0, 1).unsqueeze(0).float()
    if x.shape[-2:] != (image_size, image_size):
        x = torch.nn.functional.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
    return x[0].clamp_(0.0, 255.0)


def apply_channel_order(x: torch.Tensor, channel_order: str) -> torch.Tensor:
    """(3, H, W) RGB -> the network's order (``"bgr"`` reverses the channels)."""
    if channel_order == "rgb":
        return x
    if channel_order == "bgr":
        return x.flip(0)
    raise ValueError(f"channel_order must be one of {list(CHANNEL_ORDERS)}, got {channel_order!r}")


def normalize_pixels(
    x: torch.Tensor,
    normalization: str,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> torch.Tensor:
    """(3, H, W) in [0, 255] -> x/255, then (x - mean)/std for ``"clip"``.

    Mean/std are given in the network's channel order (as the config stores them).
    """
    x = x / 255.0
    if normalization == "none":
        return x
    if normalization == "clip":
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x - m) / s
    raise ValueError(f"normalization must be one of {list(NORMALIZATIONS)}, got {normalization!r}")


def preprocess_frame(
    image: np.ndarray, settings: PreprocessSettings, device: torch.device | str | None = None
) -> torch.Tensor:
    """One env frame (uint8 RGB, H x W x 3) -> the network's float32 (3, S, S) pixel tensor."""
    x = resize_frame(image, settings.image_size, device)
    x = apply_channel_order(x, settings.channel_order)
    return normalize_pixels(x, settings.normalization, settings.image_mean, settings.image_std)


# ------------------------------------------------------------------------------------ text
@dataclass
class TextInputs:
    """Token layout of one prompt (1-D tensors of equal length) for the backbone.

    ``input_ids`` hold placeholders at the image slots and the action slot: their embeddings
    are replaced by the image features and the action token.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    image_embeds_position_mask: torch.Tensor
    action_token_mask: torch.Tensor
    text: str = ""

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def tokenize_instruction(
    tokenizer: Any,
    instruction: str,
    *,
    num_image_tokens: int,
    prompt_template: str,
    max_text_len: int = 256,
) -> TextInputs:
    """Lay out ``<s> [image x N] <prompt with instruction> [action]`` for one frame.

    RoboVLMs inserts the image features right after ``<s>`` and the action token at the end of
    the text; since attention is causal, the trailing ``</s>`` cannot change the action
    token's hidden state and is left out. Image slots use the ids the Kosmos-2 processor uses
    (``unk + 1 ...``); both placeholders are overwritten before the first layer.
    """
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
    text = prompt_template.format(instruction=instruction.strip())
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_text_len]
    bos = tokenizer.bos_token_id
    first_image_id = tokenizer.unk_token_id + 1
    image_ids = list(range(first_image_id, first_image_id + num_image_tokens))
    action_id = tokenizer.pad_token_id
    ids = [bos, *image_ids, *text_ids, action_id]
    n = len(ids)
    image_mask = torch.zeros(n, dtype=torch.bool)
    image_mask[1 : 1 + num_image_tokens] = True
    action_mask = torch.zeros(n, dtype=torch.bool)
    action_mask[n - 1] = True
    return TextInputs(
        input_ids=torch.tensor(ids, dtype=torch.long),
        attention_mask=torch.ones(n, dtype=torch.long),
        image_embeds_position_mask=image_mask,
        action_token_mask=action_mask,
        text=text,
    )


def collate_text(items: Sequence[TextInputs], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad several :class:`TextInputs` into [B, L] tensors (the action slot stays at each
    row's end of text; padding after it is masked and, attention being causal, inert)."""
    if not items:
        raise ValueError("collate_text needs at least one item")
    length = max(len(it) for it in items)
    out = {
        "input_ids": torch.full((len(items), length), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(items), length), dtype=torch.long),
        "image_embeds_position_mask": torch.zeros((len(items), length), dtype=torch.bool),
        "action_token_mask": torch.zeros((len(items), length), dtype=torch.bool),
    }
    for row, it in enumerate(items):
        n = len(it)
        out["input_ids"][row, :n] = it.input_ids
        out["attention_mask"][row, :n] = it.attention_mask
        out["image_embeds_position_mask"][row, :n] = it.image_embeds_position_mask
        out["action_token_mask"][row, :n] = it.action_token_mask
    return out


# --------------------------------------------------------------------------------- actions
def normalize_actions(actions: np.ndarray | torch.Tensor, norm_min: float = -1.0, norm_max: float = 1.0):
    """Training targets: clamp to [norm_min, norm_max] and map linearly to [-1, 1].

    With the real run's norm_min -1 / norm_max 1 this is the clamp 1.15 -> 1.0.
    """
    if isinstance(actions, torch.Tensor):
        a = actions.clamp(norm_min, norm_max)
    else:
        a = np.clip(np.asarray(actions, dtype=np.float32), norm_min, norm_max)
    return 2.0 * (a - norm_min) / (norm_max - norm_min) - 1.0


@dataclass(frozen=True)
class PostprocessSettings:
    """How a normalized network action becomes the env action (recorded with every result)."""

    scale: float = KEY_ACTION_VALUE
    """[-1, 1] -> data units: a full-scale output becomes a full key press (1.15)."""
    gain: float = 1.0
    """Multiplier applied after un-normalizing (hand-tuned on the real robot)."""
    dead_zone: float = 0.15
    """Per-axis values with |v| below this (data units, after gain) become 0."""
    invert_linear_x: bool = False
    invert_linear_y: bool = False
    clamp: float = KEY_ACTION_VALUE
    """Final per-axis clamp, the env's action bound."""

    def __post_init__(self) -> None:
        for name in ("scale", "gain", "clamp"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (isinstance(self.dead_zone, (int, float)) and 0.0 <= self.dead_zone < self.clamp):
            raise ValueError(f"dead_zone must be in [0, clamp={self.clamp}), got {self.dead_zone!r}")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["order"] = "clip[-1,1] -> x scale -> x gain -> dead zone -> invert -> clamp"
        return out


def postprocess_action(
    raw: np.ndarray | torch.Tensor | Sequence[float], settings: PostprocessSettings
) -> np.ndarray:
    """Network output (2,) in [-1, 1] (the gripper-style column may exceed it) -> env action.

    Returns float32 (2,) [linear_x, linear_y] in data units within +-clamp.
    """
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().float().cpu().numpy()
    a = np.asarray(raw, dtype=np.float64).reshape(-1)
    if a.shape != (2,):
        raise ValueError(f"expected a 2-D action [linear_x, linear_y], got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"network produced a non-finite action {a.tolist()}")
    a = np.clip(a, -1.0, 1.0) * settings.scale * settings.gain
    a[np.abs(a) < settings.dead_zone] = 0.0
    if settings.invert_linear_x:
        a[0] = -a[0]
    if settings.invert_linear_y:
        a[1] = -a[1]
    return np.clip(a, -settings.clamp, settings.clamp).astype(np.float32)


__all__ = [
    "PostprocessSettings",
    "PreprocessSettings",
    "RESIZE_METHOD",
    "TextInputs",
    "apply_channel_order",
    "check_image",
    "collate_text",
    "normalize_actions",
    "normalize_pixels",
    "pad_window",
    "postprocess_action",
    "preprocess_frame",
    "resize_frame",
    "tokenize_instruction",
]
