"""Pre/post-processing of the VLA policy: window padding, image path, tokens, action mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvla_sim.facts import INSTRUCTION_KO, INSTRUCTIONS, KEY_ACTION_VALUE
from policies.processors import (
    PostprocessSettings,
    PreprocessSettings,
    apply_channel_order,
    check_image,
    collate_text,
    normalize_actions,
    normalize_pixels,
    pad_window,
    postprocess_action,
    preprocess_frame,
    tokenize_instruction,
)
from policies.tokenizer_tiny import TINY_TOKENIZER_PATH, build_tiny_tokenizer_json, load_tiny_tokenizer
from policies.vla_config import CLIP_MEAN, CLIP_STD, DEFAULT_PROMPT_TEMPLATE


# ------------------------------------------------------------------------------ window
def test_pad_window_pads_front_with_first_frame():
    assert pad_window(["f0"], 4) == ["f0", "f0", "f0", "f0"]
    assert pad_window(["f0", "f1", "f2"], 4) == ["f0", "f0", "f1", "f2"]


def test_pad_window_keeps_last_frames():
    frames = [f"f{i}" for i in range(10)]
    assert pad_window(frames, 8) == frames[2:]


@pytest.mark.parametrize("frames, size", [([], 8), (["f0"], 0)])
def test_pad_window_rejects_bad_input(frames, size):
    with pytest.raises(ValueError):
        pad_window(frames, size)


# ------------------------------------------------------------------------------ images
def test_preprocess_resizes_full_16_9_frame_to_square():
    image = np.zeros((72, 128, 3), dtype=np.uint8)
    image[:, :64] = 255  # left half white: stays the left half after squashing (no crop)
    x = preprocess_frame(image, PreprocessSettings(image_size=32, normalization="none"))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.allclose(x[:, :, :14], torch.ones(3, 32, 14))
    assert torch.allclose(x[:, :, 18:], torch.zeros(3, 32, 14))


def test_channel_order_bgr_swaps_channels():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[..., 0] = 200  # red
    rgb = preprocess_frame(image, PreprocessSettings(image_size=8, normalization="none", channel_order="rgb"))
    bgr = preprocess_frame(image, PreprocessSettings(image_size=8, normalization="none", channel_order="bgr"))
    assert rgb[0].mean() == pytest.approx(200 / 255) and rgb[2].abs().max() == 0
    assert bgr[2].mean() == pytest.approx(200 / 255) and bgr[0].abs().max() == 0
    assert torch.equal(apply_channel_order(rgb, "bgr"), bgr)


def test_normalization_none_and_clip():
    x = torch.full((3, 2, 2), 255.0)
    assert torch.allclose(normalize_pixels(x, "none"), torch.ones(3, 2, 2))
    clip = normalize_pixels(x, "clip", CLIP_MEAN, CLIP_STD)
    expected = torch.tensor([(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
    assert torch.allclose(clip[:, 0, 0], expected)
    with pytest.raises(ValueError, match="normalization"):
        normalize_pixels(x, "zscore")


@pytest.mark.parametrize(
    "image, error",
    [
        (np.zeros((8, 8, 3), dtype=np.float32), ValueError),
        (np.zeros((8, 8), dtype=np.uint8), ValueError),
        ([[0, 0, 0]], TypeError),
    ],
)
def test_check_image_rejects_bad_frames(image, error):
    with pytest.raises(error):
        check_image(image)


def test_preprocess_settings_validation_quotes_value():
    with pytest.raises(ValueError, match="'grb'"):
        PreprocessSettings(channel_order="grb")


# ------------------------------------------------------------------------------ text
def test_tiny_tokenizer_asset_matches_builder():
    assert TINY_TOKENIZER_PATH.read_text(encoding="utf-8").strip() == build_tiny_tokenizer_json().strip()


@pytest.mark.parametrize("instruction", [*INSTRUCTIONS.values(), INSTRUCTION_KO])
def test_tiny_tokenizer_knows_every_instruction_word(instruction):
    tok = load_tiny_tokenizer()
    ids = tok(DEFAULT_PROMPT_TEMPLATE.format(instruction=instruction), add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert ids[0] == tok.convert_tokens_to_ids("<grounding>")


def test_tokenize_layout_bos_image_slots_text_action():
    tok = load_tiny_tokenizer()
    t = tokenize_instruction(
        tok, INSTRUCTIONS["left"], num_image_tokens=5, prompt_template=DEFAULT_PROMPT_TEMPLATE
    )
    assert t.input_ids[0] == tok.bos_token_id
    assert t.image_embeds_position_mask.tolist()[:7] == [False, True, True, True, True, True, False]
    assert int(t.image_embeds_position_mask.sum()) == 5
    assert t.action_token_mask.nonzero().flatten().tolist() == [len(t) - 1]
    assert t.attention_mask.tolist() == [1] * len(t)
    left = tokenize_instruction(
        tok, INSTRUCTIONS["left"], num_image_tokens=5, prompt_template=DEFAULT_PROMPT_TEMPLATE
    )
    right = tokenize_instruction(
        tok, INSTRUCTIONS["right"], num_image_tokens=5, prompt_template=DEFAULT_PROMPT_TEMPLATE
    )
    assert not torch.equal(left.input_ids, right.input_ids)


def test_tokenize_truncates_text_and_rejects_empty():
    tok = load_tiny_tokenizer()
    t = tokenize_instruction(
        tok, INSTRUCTIONS["left"], num_image_tokens=3, prompt_template="{instruction}", max_text_len=4
    )
    assert len(t) == 1 + 3 + 4 + 1
    with pytest.raises(ValueError, match="instruction"):
        tokenize_instruction(tok, "  ", num_image_tokens=3, prompt_template="{instruction}")


def test_collate_text_right_pads_and_keeps_action_slot_per_row():
    tok = load_tiny_tokenizer()
    short = tokenize_instruction(tok, "go left", num_image_tokens=2, prompt_template="{instruction}")
    long = tokenize_instruction(
        tok, INSTRUCTIONS["right"], num_image_tokens=2, prompt_template="{instruction}"
    )
    batch = collate_text([short, long], tok.pad_token_id)
    assert batch["input_ids"].shape == (2, len(long))
    assert batch["attention_mask"][0].sum() == len(short)
    assert batch["action_token_mask"][0].nonzero().item() == len(short) - 1
    assert batch["action_token_mask"][1].nonzero().item() == len(long) - 1


# ------------------------------------------------------------------------------ actions
def test_normalize_actions_clamps_key_value_to_one():
    out = normalize_actions(np.array([KEY_ACTION_VALUE, -KEY_ACTION_VALUE, 0.5]))
    assert np.allclose(out, [1.0, -1.0, 0.5])
    assert torch.allclose(normalize_actions(torch.tensor([1.15, 0.0])), torch.tensor([1.0, 0.0]))


def test_postprocess_scales_to_data_units():
    out = postprocess_action(np.array([1.0, -1.0]), PostprocessSettings())
    assert out.dtype == np.float32 and out.shape == (2,)
    assert np.allclose(out, [KEY_ACTION_VALUE, -KEY_ACTION_VALUE])


def test_postprocess_dead_zone_gain_invert_and_clamp():
    settings = PostprocessSettings(dead_zone=0.15)
    assert np.allclose(postprocess_action([0.1, 0.5], settings), [0.0, 0.575])  # 0.115 < 0.15
    assert np.allclose(postprocess_action([0.1, 0.5], PostprocessSettings(gain=2.0)), [0.23, 1.15])  # clamped
    inverted = PostprocessSettings(invert_linear_x=True, invert_linear_y=True, dead_zone=0.0)
    assert np.allclose(postprocess_action([0.5, -0.5], inverted), [-0.575, 0.575])
    # the unbounded "gripper" column of LSTMDecoder is clipped to [-1, 1] first
    assert np.allclose(postprocess_action(torch.tensor([0.0, 3.0]), settings), [0.0, KEY_ACTION_VALUE])


def test_postprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        postprocess_action([np.nan, 0.0], PostprocessSettings())
    with pytest.raises(ValueError, match="shape"):
        postprocess_action([0.0, 0.0, 0.0], PostprocessSettings())
    with pytest.raises(ValueError, match="dead_zone"):
        PostprocessSettings(dead_zone=-0.1)
    with pytest.raises(ValueError, match="gain"):
        PostprocessSettings(gain=0.0)
