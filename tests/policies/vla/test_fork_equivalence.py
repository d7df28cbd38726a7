"""Number-for-number equivalence with the team's fork (minuum/RoboVLMs, newest commit).

The fixtures in ``tests/fixtures/fork_reference`` were produced by the fork's own code (see its
README): three tiny runs made by its trainer, one per head type, each in a run folder of a
different training era, with LoRA, the action token and the head perturbed before training so
that a wrapper ignoring any of them cannot pass; the reference outputs are the fork's
``inference()`` on its own dataset pipeline of the era (``as_trained``) and on the team's
server pipeline fed by frames the real client's OpenCV encoded (``as_deployed``). ``patched.npz``
holds the fork's outputs with its own ``tools/modeling_kosmos2.py`` in site-packages (the patched
forward path, the instruction visible).

The fixtures' runs were trained on simulator episodes stored in RGB, which the fork read as they
were: they are reproduced with ``channel_order="rgb"`` (``as_trained`` of a real-data run swaps red
and blue, as its training did).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policies.vla.policy import VLAPolicy
from policies.vla.profiles import ProfileError
from policies.vla.transport import client_resize, decode_jpeg, encode_jpeg, jpeg_round_trip

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fork_reference"
INSTRUCTION = "Navigate around obstacles and reach the front of the beverage bottle on the left"
TOLERANCE = 1e-4
FIXTURE_COLOURS = {"channel_order": "rgb"}
"""The fixtures' training episodes were stored RGB (a real-data run's as_trained swaps to BGR)."""
HEADS = {
    "lstm_decoder": ("LSTMDecoder", "constant_instruction"),
    "mobile_vla_lstm": ("MobileVLALSTMDecoder", "file_instruction"),
    "classification": ("MobileVLAClassificationDecoder", "clip_normalized"),
}


def _frames() -> np.ndarray:
    return np.load(FIXTURES / "frames_left.npz")["frames"]


def _reference(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / name / "reference.npz"))


def _checkpoint(name: str) -> Path:
    return FIXTURES / (FIXTURES / name / "checkpoint.txt").read_text().strip()


def _client_jpegs(ref: dict[str, np.ndarray]) -> list[bytes]:
    data, off = ref["client_jpeg"].tobytes(), ref["client_jpeg_offsets"]
    return [data[off[i] : off[i + 1]] for i in range(len(off) - 1)]


@pytest.fixture(scope="module")
def policies_as_trained() -> dict[str, VLAPolicy]:
    return {
        name: VLAPolicy.from_checkpoint(_checkpoint(name), "as_trained", **FIXTURE_COLOURS) for name in HEADS
    }


@pytest.mark.parametrize("name", list(HEADS))
def test_as_trained_equals_fork_at_every_step(name, policies_as_trained):
    policy = policies_as_trained[name]
    ref = _reference(name)
    head_type, era = HEADS[name]
    assert policy.config.head_type == head_type
    assert policy.resolution.era.era == era and policy.resolution.era.source == "run folder date"
    trace = policy.trace(_frames(), INSTRUCTION)
    chunks = ref["as_trained_chunks"]
    assert trace["chunks"].shape == chunks.shape  # 18 steps: inside the 8-frame window and beyond it
    diff = np.abs(trace["chunks"] - chunks).max(axis=(1, 2))
    assert diff.max() < TOLERANCE, f"{name}: per-step max |ours - fork| = {np.round(diff, 6).tolist()}"
    # the fork's own window forward (8 frames at once) is the causal prefix of the stepwise run
    assert np.abs(ref["as_trained_window_chunks"] - chunks[:8]).max() < 1e-6
    # the prompt the model was given, token for token (the era's instruction)
    assert (
        policy._text["input_ids"][0, : len(ref["as_trained_input_ids"])].tolist()
        == ref["as_trained_input_ids"].tolist()
    )
    assert policy.prompt.endswith(str(ref["as_trained_instruction"]))


@pytest.mark.parametrize("name", ["mobile_vla_lstm", "classification"])
def test_as_deployed_equals_team_server(name):
    ref = _reference(name)
    server_frames = [decode_jpeg(b) for b in _client_jpegs(ref)]
    # the server's answers: no robot-client drive rule
    policy = VLAPolicy.from_checkpoint(_checkpoint(name), "as_deployed", transport="none")
    trace = policy.trace(server_frames, INSTRUCTION)
    diff = np.abs(trace["chunks"] - ref["as_deployed_chunks"]).max()
    assert diff < TOLERANCE, f"{name}: as_deployed head outputs differ from the server's by {diff}"
    assert np.abs(trace["actions"] - ref["as_deployed_actions"]).max() < TOLERANCE
    assert np.all(trace["actions"][0] == 0)  # the first call after a reset is answered [0, 0]
    assert policy._text["input_ids"].shape[1] == 256 + 1  # padded to max_text_len, then the action token


@pytest.mark.parametrize("name", ["mobile_vla_lstm", "classification"])
def test_as_deployed_with_transport_and_client_on_raw_frames(name):
    """The default as_deployed profile on the env's raw frames: the client's OpenCV encode is
    reproduced bit for bit, so the same head outputs and the server's answers (the robot client's
    dead zone and heading are the simulator's: tests/mvla_sim/test_facts.py)."""
    ref = _reference(name)
    frames = _frames()
    policy = VLAPolicy.from_checkpoint(_checkpoint(name), "as_deployed")
    assert policy.options.transport == "jpeg"
    trace = policy.trace(frames, INSTRUCTION)
    assert np.abs(trace["chunks"] - ref["as_deployed_chunks"]).max() < TOLERANCE
    assert np.abs(trace["actions"] - ref["as_deployed_actions"]).max() < TOLERANCE


def test_client_transport_is_bit_exact_with_opencv():
    ref = _reference("mobile_vla_lstm")
    for frame, cv2_bytes in zip(_frames(), _client_jpegs(ref), strict=True):
        assert encode_jpeg(client_resize(frame)) == cv2_bytes
        assert np.array_equal(jpeg_round_trip(frame), decode_jpeg(cv2_bytes))


def test_as_deployed_refuses_lstm_decoder_with_the_reason():
    with pytest.raises(ProfileError, match="answers \\[0, 0\\]"):
        VLAPolicy.from_checkpoint(_checkpoint("lstm_decoder"), "as_deployed")


def test_a_wrapper_that_ignores_what_was_trained_fails(policies_as_trained):
    """The fixtures can fail: without LoRA, the action token or the era's instruction, the
    outputs move far beyond the tolerance."""
    import torch

    name = "mobile_vla_lstm"
    ref = _reference(name)["as_trained_chunks"]
    policy = policies_as_trained[name]
    saved = policy.model.action_token.detach().clone()
    try:
        with torch.no_grad():
            policy.model.action_token.zero_()
        assert np.abs(policy.trace(_frames(), INSTRUCTION)["chunks"] - ref).max() > 100 * TOLERANCE
    finally:
        with torch.no_grad():
            policy.model.action_token.copy_(saved)
    lora_b = [p for n, p in policy.model.named_parameters() if "lora_B" in n]
    saved_b = [p.detach().clone() for p in lora_b]
    try:
        with torch.no_grad():
            for p in lora_b:
                p.zero_()
        assert np.abs(policy.trace(_frames(), INSTRUCTION)["chunks"] - ref).max() > 100 * TOLERANCE
    finally:
        with torch.no_grad():
            for p, b in zip(lora_b, saved_b, strict=True):
                p.copy_(b)
    wrong_era = VLAPolicy.from_checkpoint(
        _checkpoint("lstm_decoder"), "as_trained", era="file_instruction", **FIXTURE_COLOURS
    )
    got = wrong_era.trace(_frames(), INSTRUCTION)["chunks"]
    assert np.abs(got - _reference("lstm_decoder")["as_trained_chunks"]).max() > 10 * TOLERANCE


def test_fork_layout_hides_the_instruction_words(policies_as_trained):
    """The fork writes the 64 image features over the first 64 positions, where the whole prompt
    lies: instructions of equal token count give identical outputs; only the count matters."""
    policy = policies_as_trained["mobile_vla_lstm"]
    left = policy.trace(_frames(), INSTRUCTION)["chunks"]
    right = policy.trace(_frames(), INSTRUCTION.replace("left", "right"))["chunks"]
    assert np.array_equal(left, right)
    shorter = policy.trace(_frames(), INSTRUCTION.replace(" on the left", ""))["chunks"]
    assert np.abs(shorter - left).max() > 10 * TOLERANCE


# ------------------------------------------------------------------ the patched forward path
PATCHED = ("lstm_decoder", "classification")


def _patched(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / name / "patched.npz"))


@pytest.mark.parametrize("name", PATCHED)
@pytest.mark.parametrize("side", ["left", "right"])
def test_patched_forward_path_equals_the_fork_with_its_own_modeling_kosmos2(name, side):
    """forward_path='patched' computes what the fork computes with tools/modeling_kosmos2.py in
    site-packages (``<s> [image] prompt [action]``), and the fallback differs from it far more."""
    ref = _patched(name)[f"as_trained_{side}_chunks"]
    instruction = INSTRUCTION.replace("left", side)
    policy = VLAPolicy.from_checkpoint(
        _checkpoint(name), "as_trained", forward_path="patched", **FIXTURE_COLOURS
    )
    assert policy.options.token_layout == "upstream"
    got = policy.trace(_frames(), instruction)["chunks"]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < TOLERANCE
    fallback = VLAPolicy.from_checkpoint(_checkpoint(name), "as_trained", **FIXTURE_COLOURS)
    assert fallback.options.forward_path == "fallback"  # the default, from the team's own evidence
    assert np.abs(fallback.trace(_frames(), instruction)["chunks"] - ref).max() > 100 * TOLERANCE


def test_patched_forward_path_sees_the_instruction_and_the_fallback_does_not():
    ref = _patched("classification")
    assert np.abs(ref["as_trained_left_chunks"] - ref["as_trained_right_chunks"]).max() > 10 * TOLERANCE
    fallback = VLAPolicy.from_checkpoint(_checkpoint("classification"), "as_trained", **FIXTURE_COLOURS)
    left = fallback.trace(_frames(), INSTRUCTION)["chunks"]
    assert np.array_equal(left, fallback.trace(_frames(), INSTRUCTION.replace("left", "right"))["chunks"])


def test_patched_forward_path_through_the_team_server_equals_the_fork():
    """The server pads the prompt to 256 tokens; the fork then inserts the action token before the
    last pad: the padding sits, masked, between the prompt and the action token."""
    ref = _patched("classification")
    frames = [decode_jpeg(b) for b in _client_jpegs(_reference("classification"))]
    policy = VLAPolicy.from_checkpoint(
        _checkpoint("classification"),
        "as_deployed",
        forward_path="patched",
        transport="none",
    )
    got = policy.trace(frames, INSTRUCTION)["chunks"]
    assert np.abs(got - ref["server_left_chunks"]).max() < TOLERANCE
    assert policy._text["input_ids"].shape[1] == 1 + 64 + 254 + 1  # <s> [64 image] 254 ids [action]


def test_patched_forward_path_refuses_a_vision_resampler_with_the_reason():
    with pytest.raises(ProfileError, match="PerceiverResampler"):
        VLAPolicy.from_checkpoint(_checkpoint("mobile_vla_lstm"), "as_trained", forward_path="patched")
