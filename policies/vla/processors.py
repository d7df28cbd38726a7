"""Explicit pre- and post-processing of the Mobile VLA policy, outside the model.

What reaches the network, step by step (each a small, tested function), as
:class:`policies.vla.profiles.InferenceSettings` says:

1. transport (``as_deployed``): :func:`policies.vla.transport.jpeg_round_trip`;
2. :func:`resize_frame`: the **full** frame (16:9, no crop) resized to a square
   ``image_size`` with PIL on uint8, ``BILINEAR`` (the fork's dataset) or ``BICUBIC`` (the
   server); objects look horizontally squeezed exactly as in the real pipeline;
3. :func:`to_pixels`: channel order, ``x / 255``, then CLIP ``(x - mean) / std`` when the
   normalization is ``"clip"``;
4. :func:`tokenize_prompt`: ``<s> <grounding>An image of a robot {instruction} </s>`` with the
   backbone's tokenizer, optionally right-padded to ``max_text_len`` (the server);
5. :func:`layout_tokens`: where the image features and the action token go (``"fork"`` or
   ``"upstream"``, see :data:`policies.vla.config.TOKEN_LAYOUTS`).

And back to the env, :func:`decode_action`: the newest step's first chunk element, x 1.15 for a
regression head (the data's 1.15 was clamped to 1.0 for training) or the class map for a
classification head, the sign of an ``abs_action`` model's linear_y, the first call zeroed, the
clip, then the robot client's drive rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from mvla_sim.facts import KEY_ACTION_VALUE
from policies.vla.config import CLIP_MEAN, CLIP_STD
from policies.vla.profiles import InferenceSettings
from policies.vla.transport import jpeg_round_trip

_PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


# ---------------------------------------------------------------------------------- images
def check_image(image: Any) -> np.ndarray:
    """Validate an env frame: uint8 array of shape (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"obs['image'] must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"obs['image'] must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"obs['image'] must be uint8 (0-255), got {image.dtype}")
    return image


def resize_frame(image: np.ndarray, size: int, method: str = "bilinear") -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3): the whole frame, PIL ``method``, on uint8."""
    img = check_image(image)
    if img.shape[:2] == (size, size):
        return img
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size, size), _PIL_FILTERS[method]))


def to_pixels(
    image: np.ndarray | torch.Tensor,
    normalization: str = "none",
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    channel_order: str = "rgb",
) -> torch.Tensor:
    """uint8 (..., S, S, 3) RGB -> float32 (..., 3, S, S): channel order, /255, optional CLIP."""
    x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image, dtype=np.uint8))
    if channel_order == "bgr":
        x = x.flip(-1)
    elif channel_order != "rgb":
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    x = x.movedim(-1, -3).float() / 255.0
    if normalization == "none":
        return x
    if normalization == "clip":
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x - m) / s
    raise ValueError(f"normalization must be 'none' or 'clip', got {normalization!r}")


def preprocess_frame(
    image: np.ndarray,
    settings: InferenceSettings,
    image_size: int,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> torch.Tensor:
    """One env frame (uint8 RGB, H x W x 3) -> the network's float32 (3, S, S) pixels."""
    img = check_image(image)
    if settings.transport == "jpeg":
        img = jpeg_round_trip(img)
    img = resize_frame(img, image_size, settings.resize)
    return to_pixels(img, settings.normalization, mean, std, settings.channel_order)


# ------------------------------------------------------------------------------------ text
def instruction_for(instruction: str, settings: InferenceSettings) -> str:
    """The instruction the model is given: the env's, or the era's constant one."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
    return settings.constant_instruction if settings.instruction == "constant" else instruction


def prompt_text(instruction: str, template: str) -> str:
    """The prompt string: the fork's Kosmos text function (``s.strip()`` in the template).

    Like the team's server, a prompt that already starts with ``<grounding>`` is kept, and one
    that starts with "An image of a robot" only gets ``<grounding>`` in front.
    """
    text = instruction.strip()
    if text.startswith("<grounding>"):
        return text
    head = template.split("{instruction}", 1)[0]
    if head.startswith("<grounding>") and text.startswith(head[len("<grounding>") :].strip()):
        return "<grounding>" + text
    return template.format(instruction=text)


def tokenize_prompt(tokenizer: Any, text: str, *, pad_to: int | None = None) -> tuple[list[int], list[int]]:
    """``<s> text </s>`` token ids and attention mask, right-padded with ``<pad>`` to ``pad_to``.

    As the Kosmos-2 (XLM-R) tokenizer with ``add_special_tokens=True``; ``pad_to`` also truncates
    (keeping ``</s>``), like ``padding="max_length", truncation=True``.
    """
    body = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]
    if pad_to is not None and len(ids) > pad_to:
        ids = ids[: pad_to - 1] + [tokenizer.eos_token_id]
    mask = [1] * len(ids)
    if pad_to is not None and len(ids) < pad_to:
        n = pad_to - len(ids)
        ids += [tokenizer.pad_token_id] * n
        mask += [0] * n
    return ids, mask


@dataclass
class TextLayout:
    """One frame's backbone sequence (1-D tensors of equal length).

    ``input_ids`` are embedded; positions in ``image_mask`` are then overwritten by the frame's
    image features and position ``action_index`` by the learned action token, whose final hidden
    state is the frame's feature.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    image_mask: torch.Tensor
    action_index: int
    text: str = ""

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def layout_tokens(
    ids: Sequence[int],
    mask: Sequence[int],
    *,
    layout: str,
    num_image_tokens: int,
    text: str = "",
) -> TextLayout:
    """Place the image features and the action token around a tokenized prompt.

    ``"fork"`` (the team's fork, its Kosmos-2 path): the ids, right-padded with id 0 and mask 0
    to at least ``num_image_tokens``; the image features over positions ``0..Q-1`` (over ``<s>``
    and the prompt when it is shorter than Q: the prompt's words never reach the model, only its
    length through the attention mask); the action token appended (mask 1).

    ``"upstream"`` (upstream RoboVLMs, the fork's patched forward path, this project's runs):
    ``<s>``, Q image slots, the prompt's tokens, the action token, inserted as the fork does before
    the last token of the (possibly padded) ids: ``<s> [image] prompt [action] </s>``, or with
    padding ``<s> [image] prompt </s> <pad>... [action] <pad>`` (padding masked, but counted by the
    sequential positions). The token after the action token cannot change its state (attention is
    causal) and is left out.
    """
    q = num_image_tokens
    ids, mask = list(ids), list(mask)
    if layout == "fork":
        if len(ids) < q:
            ids += [0] * (q - len(ids))
            mask += [0] * (q - len(mask))
        n = len(ids) + 1
        image = torch.zeros(n, dtype=torch.bool)
        image[:q] = True
        return TextLayout(
            input_ids=torch.tensor([*ids, 0], dtype=torch.long),
            attention_mask=torch.tensor([*mask, 1], dtype=torch.long),
            image_mask=image,
            action_index=n - 1,
            text=text,
        )
    if layout == "upstream":
        seq = [ids[0], *range(4, 4 + q), *ids[1:-1], 0]
        seq_mask = [mask[0], *([1] * q), *mask[1:-1], 1]
        n = len(seq)
        image = torch.zeros(n, dtype=torch.bool)
        image[1 : 1 + q] = True
        return TextLayout(
            input_ids=torch.tensor(seq, dtype=torch.long),
            attention_mask=torch.tensor(seq_mask, dtype=torch.long),
            image_mask=image,
            action_index=n - 1,
            text=text,
        )
    raise ValueError(f"token layout must be 'fork' or 'upstream', got {layout!r}")


@dataclass(frozen=True)
class InstructionVisibility:
    """Whether the words of the instruction reach the model under some settings, and why."""

    visible: bool
    token_layout: str
    forward_path: str
    prompt_tokens: int | None
    """Unpadded tokens of ``<s> prompt </s>`` (``None`` without a tokenizer)."""
    image_positions: int
    reason: str

    def line(self) -> str:
        """One line: verdict, layout, the prompt's length against the image positions, the reason."""
        verdict = "sees its instruction" if self.visible else "cannot see its instruction"
        count = "?" if self.prompt_tokens is None else str(self.prompt_tokens)
        return (
            f"{verdict}: token_layout {self.token_layout} (forward_path {self.forward_path}), prompt "
            f"{count} tokens vs {self.image_positions} image positions: {self.reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "line": self.line()}


def instruction_visibility(
    settings: InferenceSettings, tokenizer: Any, instruction: str, num_image_tokens: int
) -> InstructionVisibility:
    """Whether ``instruction``'s words reach the model under ``settings`` (a layout fact, no weights).

    ``"fork"`` (fallback): the image features overwrite positions 0..Q-1, so a prompt of at most Q
    real tokens is hidden whole (only its length counts); ``"upstream"`` (patched): the prompt follows
    the image. An era that gave a constant instruction never shows the episode's.
    """
    ids = None
    if tokenizer is not None:
        text = prompt_text(instruction_for(instruction, settings), settings.prompt_template)
        ids, _ = tokenize_prompt(tokenizer, text)
    n, q = (None if ids is None else len(ids)), num_image_tokens
    fields = {"token_layout": settings.token_layout, "forward_path": settings.forward_path}
    if settings.instruction == "constant":
        reason = f"the era gives every episode {settings.constant_instruction!r}, which names no side"
        return InstructionVisibility(False, **fields, prompt_tokens=n, image_positions=q, reason=reason)
    if settings.token_layout == "upstream":
        reason = f"the prompt follows the {q} image features (<s> [image] prompt [action])"
        return InstructionVisibility(True, **fields, prompt_tokens=n, image_positions=q, reason=reason)
    if n is None:
        reason = (
            f"the image features overwrite positions 0-{q - 1}; the prompt's length is unknown (no tokenizer)"
        )
        return InstructionVisibility(False, **fields, prompt_tokens=None, image_positions=q, reason=reason)
    if n <= q:
        reason = f"the image features overwrite positions 0-{q - 1}, the whole prompt: only its length reaches the model"
        return InstructionVisibility(False, **fields, prompt_tokens=n, image_positions=q, reason=reason)
    reason = (
        f"the image features overwrite positions 0-{q - 1}; the prompt's last {n - q} tokens stay visible"
    )
    return InstructionVisibility(True, **fields, prompt_tokens=n, image_positions=q, reason=reason)


def collate_layouts(items: Sequence[TextLayout]) -> dict[str, torch.Tensor]:
    """Right-pad layouts into [B, L] tensors. Padding follows each row's action token, is masked
    and (attention being causal) cannot change any row's features."""
    if not items:
        raise ValueError("collate_layouts needs at least one item")
    length = max(len(it) for it in items)
    out = {
        "input_ids": torch.zeros((len(items), length), dtype=torch.long),
        "attention_mask": torch.zeros((len(items), length), dtype=torch.long),
        "image_mask": torch.zeros((len(items), length), dtype=torch.bool),
        "action_index": torch.tensor([it.action_index for it in items], dtype=torch.long),
    }
    for row, it in enumerate(items):
        n = len(it)
        out["input_ids"][row, :n] = it.input_ids
        out["attention_mask"][row, :n] = it.attention_mask
        out["image_mask"][row, :n] = it.image_mask
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


def action_classes(actions: np.ndarray | torch.Tensor, num_classes: int = 9, threshold: float = 0.3):
    """The fork's classification labels of [linear_x, linear_y] actions (components beyond
    +-``threshold`` count as pressed): 9 classes (stop, F, B, L, R, FL, FR, BL, BR) or 6 (stop, F,
    L, R, FL, FR; backward motions map to stop)."""
    a = torch.as_tensor(actions)
    xp, xn = a[..., 0] > threshold, a[..., 0] < -threshold
    yp, yn = a[..., 1] > threshold, a[..., 1] < -threshold
    xz, yz = ~(xp | xn), ~(yp | yn)
    if num_classes == 9:
        table = [
            (xp & yz, 1),
            (xn & yz, 2),
            (xz & yp, 3),
            (xz & yn, 4),
            (xp & yp, 5),
            (xp & yn, 6),
            (xn & yp, 7),
            (xn & yn, 8),
        ]
    elif num_classes == 6:
        table = [(xp & yz, 1), (xz & yp, 2), (xz & yn, 3), (xp & yp, 4), (xp & yn, 5)]
    else:
        raise ValueError(f"num_classes must be 6 or 9, got {num_classes}")
    labels = torch.zeros(a.shape[:-1], dtype=torch.long)
    for cond, label in table:
        labels[cond] = label
    return labels


def _side_sign(instruction: str) -> float:
    words = instruction.lower().replace(",", " ").replace(".", " ").split()
    if "left" in words and "right" not in words:
        return 1.0
    if "right" in words and "left" not in words:
        return -1.0
    raise ValueError(
        f"abs_action_side='instruction' needs an instruction naming one side (left or right), got {instruction!r}"
    )


def decode_action(
    step_output: np.ndarray | torch.Tensor,
    settings: InferenceSettings,
    *,
    class_map: dict[int, tuple[float, float]] | None = None,
    norm_action: bool = False,
    instruction: str = "",
    first_call: bool = False,
) -> np.ndarray:
    """The head's output for one chunk step -> the env action float32 (2,) [linear_x, linear_y].

    Regression: the first two values x 1.15 (the server's ``unnoramalize_action`` to +-1.15 when
    the config sets ``norm_action``: the same map); classification: the argmax class's entry of
    ``class_map``. Then the abs_action sign, the first call zeroed, the gain and dead zone knobs,
    the clip, the drive rule.
    """
    if isinstance(step_output, torch.Tensor):
        step_output = step_output.detach().float().cpu().numpy()
    v = np.asarray(step_output, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"network produced a non-finite output {v.tolist()}")
    if settings.decode == "classification":
        if class_map is None:
            raise ValueError("decode='classification' needs the head's class map")
        a = np.array(class_map[int(np.argmax(v))], dtype=np.float64)
    else:
        raw = v[:2]
        a = (
            0.5 * (raw + 1.0) * (2 * KEY_ACTION_VALUE) - KEY_ACTION_VALUE
            if norm_action
            else raw * KEY_ACTION_VALUE
        )
    if settings.abs_action_side == "instruction":
        a[1] = abs(a[1]) * _side_sign(instruction)
    if first_call and settings.first_action_zero:
        a = np.zeros(2)
    a = a * settings.gain
    a = np.clip(a, -settings.action_clip, settings.action_clip)
    return a.astype(np.float32)


__all__ = [
    "InstructionVisibility",
    "TextLayout",
    "action_classes",
    "check_image",
    "collate_layouts",
    "decode_action",
    "instruction_for",
    "instruction_visibility",
    "layout_tokens",
    "normalize_actions",
    "preprocess_frame",
    "prompt_text",
    "resize_frame",
    "to_pixels",
    "tokenize_prompt",
]
