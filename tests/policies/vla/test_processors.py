"""Pre/post-processing outside the model: frames, prompt and tokens, token layout, action decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mvla_sim.facts import INSTRUCTION_KO, INSTRUCTIONS, KEY_ACTION_VALUE
from policies.vla.config import CLASS_MAPS, CLIP_MEAN, CLIP_STD, DEFAULT_PROMPT_TEMPLATE, VLAConfig
from policies.vla.processors import (
    action_classes,
    check_image,
    collate_layouts,
    decode_action,
    instruction_for,
    layout_tokens,
    normalize_actions,
    preprocess_frame,
    prompt_text,
    resize_frame,
    to_pixels,
    tokenize_prompt,
)
from policies.vla.profiles import InferenceSettings
from policies.vla.tokenizer_tiny import TINY_TOKENIZER_PATH, build_tiny_tokenizer_json, load_tiny_tokenizer
from policies.vla.transport import jpeg_round_trip

FORK = Path(__file__).resolve().parents[2] / "fixtures" / "fork_reference"
K = KEY_ACTION_VALUE
TRAINED = InferenceSettings()  # as_trained's decode: x 1.15, clip 1.15, no zeroing, no drive rule
DEPLOYED = InferenceSettings(profile="as_deployed", first_action_zero=True, action_clip=1.5)


@pytest.fixture(scope="module")
def kosmos_tokenizer():
    """The fixture Kosmos-2 folder's tokenizer: XLM-R ids, sub-word pieces, Kosmos-2's added tokens."""
    from policies.vla.model import load_tokenizer

    return load_tokenizer(VLAConfig(backbone=str(FORK / ".vlms" / "kosmos-2-tiny")))


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return load_tiny_tokenizer()


def _image(seed: int = 0, shape: tuple[int, int] = (36, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ images
def test_resize_keeps_the_full_16_9_frame():
    image = np.zeros((72, 128, 3), dtype=np.uint8)
    image[:, :64] = 255  # left half white: stays the left half after squashing (no crop)
    out = resize_frame(image, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[:, :15] == 255).all() and (out[:, 17:] == 0).all()


@pytest.mark.parametrize("method, pil", [("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)])
def test_resize_is_pil_on_uint8(method, pil):
    image = _image()
    expected = np.asarray(Image.fromarray(image).resize((24, 24), pil))
    np.testing.assert_array_equal(resize_frame(image, 24, method), expected)


def test_bilinear_and_bicubic_differ_and_same_size_is_untouched():
    image = _image()
    assert not np.array_equal(resize_frame(image, 24, "bilinear"), resize_frame(image, 24, "bicubic"))
    square = _image(shape=(24, 24))
    np.testing.assert_array_equal(resize_frame(square, 24, "bicubic"), square)


def test_to_pixels_divides_by_255_then_clip():
    image = _image(shape=(4, 4))
    plain = to_pixels(image)
    assert plain.shape == (3, 4, 4) and plain.dtype == torch.float32
    torch.testing.assert_close(plain, torch.from_numpy(image).permute(2, 0, 1).float() / 255.0)
    clip = to_pixels(image, "clip")
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    torch.testing.assert_close(clip, (plain - mean) / std)
    white = to_pixels(np.full((1, 1, 3), 255, np.uint8), "clip")
    expected = [(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)]
    np.testing.assert_allclose(white.flatten().numpy(), expected, rtol=1e-6)


def test_to_pixels_channel_order_and_batches():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    image[..., 0] = 200  # red
    rgb, bgr = to_pixels(image, channel_order="rgb"), to_pixels(image, channel_order="bgr")
    assert rgb[0].mean() == pytest.approx(200 / 255) and rgb[2].abs().max() == 0
    assert bgr[2].mean() == pytest.approx(200 / 255) and bgr[0].abs().max() == 0
    batch = np.stack([_image(i, (4, 4)) for i in range(3)])
    out = to_pixels(torch.from_numpy(batch))
    assert out.shape == (3, 3, 4, 4)
    torch.testing.assert_close(out[1], to_pixels(batch[1]))


@pytest.mark.parametrize(
    "kwargs, match", [({"normalization": "zscore"}, "normalization"), ({"channel_order": "grb"}, "grb")]
)
def test_to_pixels_rejects_unknown_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_pixels(_image(shape=(2, 2)), **kwargs)


def test_preprocess_frame_chains_transport_resize_and_pixels():
    image = _image(shape=(72, 128))
    deployed = InferenceSettings(transport="jpeg", resize="bicubic", normalization="clip")
    expected = to_pixels(resize_frame(jpeg_round_trip(image), 32, "bicubic"), "clip")
    torch.testing.assert_close(preprocess_frame(image, deployed, 32), expected)
    trained = InferenceSettings(resize="bilinear", normalization="none")
    plain = preprocess_frame(image, trained, 32)
    torch.testing.assert_close(plain, to_pixels(resize_frame(image, 32, "bilinear")))
    without_jpeg = preprocess_frame(image, InferenceSettings(resize="bicubic", normalization="clip"), 32)
    assert plain.shape == (3, 32, 32) and not torch.equal(without_jpeg, expected)


@pytest.mark.parametrize(
    "image, error",
    [
        (np.zeros((8, 8, 3), dtype=np.float32), ValueError),
        (np.zeros((8, 8), dtype=np.uint8), ValueError),
        (np.zeros((8, 8, 4), dtype=np.uint8), ValueError),
        ([[0, 0, 0]], TypeError),
    ],
)
def test_check_image_rejects_bad_frames(image, error):
    with pytest.raises(error, match="obs\\['image'\\]"):
        check_image(image)


# ------------------------------------------------------------------------------ prompt
def test_instruction_is_the_envs_or_the_eras_constant():
    assert instruction_for("go left", InferenceSettings(instruction="verbatim")) == "go left"
    constant = InferenceSettings(instruction="constant")
    assert instruction_for(INSTRUCTIONS["right"], constant) == "Navigate to the target location"
    for bad in ("", "   ", None):
        with pytest.raises(ValueError, match="instruction"):
            instruction_for(bad, constant)


def test_prompt_text_like_the_forks_text_function_and_the_server():
    assert prompt_text("  go left ", DEFAULT_PROMPT_TEMPLATE) == "<grounding>An image of a robot go left"
    assert prompt_text("<grounding>custom prompt", DEFAULT_PROMPT_TEMPLATE) == "<grounding>custom prompt"
    assert prompt_text("An image of a robot go left", DEFAULT_PROMPT_TEMPLATE) == (
        "<grounding>An image of a robot go left"
    )
    assert prompt_text("go left", "Robot: {instruction}.") == "Robot: go left."


# ------------------------------------------------------------------------------ tokens
def test_kosmos_tokenizer_fixture_behaves_like_the_real_one(kosmos_tokenizer):
    tok = kosmos_tokenizer
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    grounding = tok.convert_tokens_to_ids("<grounding>")
    ids, _ = tokenize_prompt(tok, "<grounding>An image of a robot go left")
    assert ids[0] == 0 and ids[1] == grounding and ids[-1] == 2


@pytest.mark.parametrize("name", ["lstm_decoder", "mobile_vla_lstm"])
def test_tokens_equal_the_forks_collater(kosmos_tokenizer, name):
    ref = np.load(FORK / name / "reference.npz")
    prompt = prompt_text(str(ref["as_trained_instruction"]), DEFAULT_PROMPT_TEMPLATE)
    ids, mask = tokenize_prompt(kosmos_tokenizer, prompt)
    assert ids == ref["as_trained_input_ids"].tolist()
    assert mask == ref["as_trained_attention_mask"].tolist()


def test_tokens_padded_to_max_text_len_equal_the_servers(kosmos_tokenizer):
    ref = np.load(FORK / "classification" / "reference.npz")
    prompt = prompt_text(INSTRUCTIONS["left"], DEFAULT_PROMPT_TEMPLATE)
    ids, mask = tokenize_prompt(kosmos_tokenizer, prompt, pad_to=256)
    assert ids == ref["as_deployed_input_ids"].tolist() and mask == ref["as_deployed_attention_mask"].tolist()
    assert len(ids) == 256 and ids[sum(mask)] == kosmos_tokenizer.pad_token_id


def test_tokenize_truncates_keeping_the_end_token(tiny_tokenizer):
    ids, mask = tokenize_prompt(tiny_tokenizer, INSTRUCTIONS["left"], pad_to=5)
    full, _ = tokenize_prompt(tiny_tokenizer, INSTRUCTIONS["left"])
    assert len(ids) == 5 and ids[-1] == tiny_tokenizer.eos_token_id and ids[:4] == full[:4]
    assert mask == [1] * 5


def test_tiny_tokenizer_asset_matches_builder():
    assert TINY_TOKENIZER_PATH.read_text(encoding="utf-8").strip() == build_tiny_tokenizer_json().strip()


@pytest.mark.parametrize("instruction", [*INSTRUCTIONS.values(), INSTRUCTION_KO])
def test_tiny_tokenizer_knows_every_instruction_word(tiny_tokenizer, instruction):
    tok = tiny_tokenizer
    ids = tok(DEFAULT_PROMPT_TEMPLATE.format(instruction=instruction), add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert ids[0] == tok.convert_tokens_to_ids("<grounding>")
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]


# ------------------------------------------------------------------------------ token layout
def test_fork_layout_pads_to_the_image_slots_and_appends_the_action():
    ids, mask = [0, 11, 12, 13, 2], [1, 1, 1, 1, 1]
    lay = layout_tokens(ids, mask, layout="fork", num_image_tokens=8, text="p")
    assert lay.input_ids.tolist() == [0, 11, 12, 13, 2, 0, 0, 0, 0]
    assert lay.attention_mask.tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 1]
    assert lay.image_mask.tolist() == [True] * 8 + [False]
    assert lay.action_index == 8 and len(lay) == 9 and lay.text == "p"


def test_fork_layout_of_a_long_prompt_is_not_padded():
    ids = [0, *range(10, 20), 2]
    lay = layout_tokens(ids, [1] * 12, layout="fork", num_image_tokens=4)
    assert lay.input_ids.tolist() == [*ids, 0] and lay.attention_mask.tolist() == [1] * 13
    assert lay.image_mask.tolist() == [True] * 4 + [False] * 9 and lay.action_index == 12


def test_fork_layout_keeps_the_servers_padding():
    ids, mask = [0, 11, 2, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    lay = layout_tokens(ids, mask, layout="fork", num_image_tokens=4)
    assert lay.input_ids.tolist() == [*ids, 0] and lay.attention_mask.tolist() == [*mask, 1]
    assert lay.action_index == 10


def test_upstream_layout_puts_the_image_after_bos_and_keeps_the_prompt():
    ids, mask = [0, 11, 12, 13, 2], [1] * 5
    lay = layout_tokens(ids, mask, layout="upstream", num_image_tokens=3)
    assert lay.input_ids.tolist()[0] == 0 and lay.input_ids.tolist()[4:] == [11, 12, 13, 0]
    assert lay.image_mask.tolist() == [False, True, True, True, False, False, False, False]
    assert lay.attention_mask.tolist() == [1] * 8 and lay.action_index == 7


def test_upstream_layout_of_a_padded_prompt_inserts_the_action_before_the_last_pad_as_the_fork():
    """The fork inserts the action token before the last token of the padded ids: the padding stays
    (masked) between the prompt and the action token, so the action token's position counts it."""
    ids, mask = [0, 11, 12, 13, 2, 1, 1], [1, 1, 1, 1, 1, 0, 0]
    lay = layout_tokens(ids, mask, layout="upstream", num_image_tokens=3)
    assert lay.input_ids.tolist()[4:] == [11, 12, 13, 2, 1, 0]
    assert lay.attention_mask.tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 0, 1] and lay.action_index == 9


def test_unknown_layout_fails():
    with pytest.raises(ValueError, match="'llava'"):
        layout_tokens([0, 2], [1, 1], layout="llava", num_image_tokens=2)


def test_collate_layouts_right_pads_and_keeps_each_action_slot():
    short = layout_tokens([0, 11, 2], [1, 1, 1], layout="upstream", num_image_tokens=2)
    long = layout_tokens([0, 11, 12, 13, 14, 2], [1] * 6, layout="upstream", num_image_tokens=2)
    batch = collate_layouts([short, long])
    assert batch["input_ids"].shape == (2, len(long)) and batch["image_mask"].dtype == torch.bool
    assert batch["action_index"].tolist() == [len(short) - 1, len(long) - 1]
    assert batch["attention_mask"][0].tolist() == [1] * len(short) + [0] * (len(long) - len(short))
    assert batch["image_mask"].sum(dim=1).tolist() == [2, 2]
    assert batch["input_ids"][1].tolist() == long.input_ids.tolist()
    with pytest.raises(ValueError, match="at least one"):
        collate_layouts([])


# ------------------------------------------------------------------------------ training targets
def test_normalize_actions_clamps_the_key_value_to_one():
    np.testing.assert_allclose(normalize_actions(np.array([K, -K, 0.5])), [1.0, -1.0, 0.5])
    torch.testing.assert_close(normalize_actions(torch.tensor([1.15, 0.0])), torch.tensor([1.0, 0.0]))
    np.testing.assert_allclose(normalize_actions(np.array([0.0, 2.0, 1.0]), 0.0, 2.0), [-1.0, 1.0, 0.0])


@pytest.mark.parametrize("num_classes", [6, 9])
def test_action_classes_invert_the_class_maps(num_classes):
    table = CLASS_MAPS[num_classes]
    actions = torch.tensor([table[k] for k in range(num_classes)])
    assert action_classes(actions, num_classes).tolist() == list(range(num_classes))
    # below the threshold is no key press
    assert action_classes(torch.tensor([[0.2, -0.2]]), num_classes).tolist() == [0]


def test_six_classes_map_backward_to_stop_and_batches_keep_shape():
    backward = torch.tensor([[-K, 0.0], [-K, K], [-K, -K]])
    assert action_classes(backward, 6).tolist() == [0, 0, 0]
    assert action_classes(torch.zeros(2, 3, 2), 9).shape == (2, 3)
    with pytest.raises(ValueError, match="6 or 9"):
        action_classes(backward, 5)


# ------------------------------------------------------------------------------ decode
def test_regression_decode_scales_to_data_units():
    out = decode_action(np.array([0.5, -0.2]), TRAINED)
    assert out.dtype == np.float32 and out.shape == (2,)
    np.testing.assert_allclose(out, [0.5 * K, -0.2 * K], rtol=1e-6)
    # norm_action's unnormalize to +-1.15 is the same map; LSTMDecoder's extra values are not read
    np.testing.assert_allclose(
        decode_action(torch.tensor([0.5, -0.2, 9.0]), TRAINED, norm_action=True), out, rtol=1e-6
    )


def test_decode_clips_to_the_profiles_bound():
    raw = np.array([1.2, -3.0])  # the unbounded gripper column of LSTMDecoder can exceed 1
    np.testing.assert_allclose(decode_action(raw, TRAINED), [K, -K])
    np.testing.assert_allclose(decode_action(raw, DEPLOYED), [1.2 * K, -1.5], rtol=1e-6)


@pytest.mark.parametrize("num_classes", [6, 9])
def test_classification_decode_is_the_argmax_class(num_classes):
    settings = InferenceSettings(decode="classification", action_clip=1.5)
    for k, action in CLASS_MAPS[num_classes].items():
        logits = np.full(num_classes, -1.0)
        logits[k] = 3.0
        np.testing.assert_allclose(decode_action(logits, settings, class_map=CLASS_MAPS[num_classes]), action)
    with pytest.raises(ValueError, match="class map"):
        decode_action(np.zeros(num_classes), settings)


def test_first_call_is_zeroed_only_as_deployed():
    raw = np.array([0.8, 0.4])
    assert np.all(decode_action(raw, DEPLOYED, first_call=True) == 0)
    np.testing.assert_allclose(decode_action(raw, DEPLOYED, first_call=False), raw * K, rtol=1e-6)
    np.testing.assert_allclose(decode_action(raw, TRAINED, first_call=True), raw * K, rtol=1e-6)


@pytest.mark.parametrize("side, sign", [("left", 1.0), ("right", -1.0)])
def test_abs_action_side_from_the_instruction(side, sign):
    settings = InferenceSettings(abs_action_side="instruction")
    out = decode_action(np.array([0.5, -0.4]), settings, instruction=INSTRUCTIONS[side])
    np.testing.assert_allclose(out, [0.5 * K, sign * 0.4 * K], rtol=1e-6)


@pytest.mark.parametrize("instruction", ["go forward", "left or right", ""])
def test_abs_action_side_needs_one_side(instruction):
    with pytest.raises(ValueError, match="one side"):
        decode_action(
            np.array([0.5, 0.4]), InferenceSettings(abs_action_side="instruction"), instruction=instruction
        )


def test_gain_knob():
    np.testing.assert_allclose(
        decode_action(np.array([0.1, 0.5]), InferenceSettings(gain=2.0)), [0.23, K], rtol=1e-6
    )


def test_decode_rejects_non_finite_outputs():
    with pytest.raises(ValueError, match="non-finite"):
        decode_action(np.array([np.nan, 0.0]), TRAINED)


def test_decode_answers_the_servers_action_the_robot_side_applies_the_client():
    """The policy answers what the team's server answers (clipped to 1.5); the dead zone and the
    whole-degree heading are the robot client's, applied by the simulator's drive."""
    settings = InferenceSettings(action_clip=1.5)
    np.testing.assert_allclose(decode_action(np.array([0.05, 0.5]), settings), [0.0575, 0.575], rtol=1e-6)
    np.testing.assert_allclose(decode_action(np.array([0.05, 0.05]), settings), [0.0575, 0.0575], rtol=1e-6)
