"""VLAPolicy: the Policy contract, the fork's head history, trace, profiles in the loop, action
queue and ensembling, settings records, latency helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.latency import main as latency_main
from eval.latency import measure_latency, random_obs_fn
from mvla_sim.facts import INSTRUCTIONS, KEY_ACTION_VALUE
from policies.base import Policy
from policies.vla.config import CLASS_MAPS
from policies.vla.model import MobileVLAModel
from policies.vla.policy import VLAPolicy
from policies.vla.processors import decode_action, preprocess_frame
from policies.vla.profiles import ProfileError, resolve

LEFT, RIGHT = INSTRUCTIONS["left"], INSTRUCTIONS["right"]
K = KEY_ACTION_VALUE


@pytest.fixture(scope="module")
def model(perturbed_model) -> MobileVLAModel:
    return perturbed_model


@pytest.fixture(scope="module")
def velocities_model(tiny_config, perturb) -> MobileVLAModel:
    return perturb(
        MobileVLAModel.build(tiny_config(head_type="MobileVLALSTMDecoder"), seed=1), head_gain=30.0
    ).eval()


@pytest.fixture(scope="module")
def frames(random_frames) -> list[np.ndarray]:
    return random_frames(9, seed=4)


def make_policy(model: MobileVLAModel, profile: str = "as_trained", **overrides) -> VLAPolicy:
    overrides.setdefault("era", "clip_normalized")
    return VLAPolicy(model, resolve(model.config, profile, overrides=overrides))


def observations(frames: list[np.ndarray], instruction: str = LEFT) -> list[dict]:
    return [{"image": f, "instruction": instruction} for f in frames]


def run(policy: VLAPolicy, frames: list[np.ndarray], instruction: str = LEFT) -> np.ndarray:
    policy.reset(instruction)
    return np.stack([policy.act(o) for o in observations(frames, instruction)])


def features(policy: VLAPolicy, frames: list[np.ndarray]) -> torch.Tensor:
    """Every frame's feature, encoded on its own with the policy's prompt."""
    cfg, s = policy.config, policy.options
    x = torch.stack([preprocess_frame(f, s, cfg.image_size, cfg.image_mean, cfg.image_std) for f in frames])
    with torch.no_grad():
        return policy.model.encode_frames(x, policy._text)


# ------------------------------------------------------------------------------ contract
def test_policy_contract_and_action_range(model, frames):
    policy = make_policy(model)
    assert isinstance(policy, Policy) and policy.name == "vla"
    actions = run(policy, frames)
    assert actions.dtype == np.float32 and actions.shape == (len(frames), 2)
    assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= K + 1e-6)
    assert np.abs(actions).max() > 0.1 and np.ptp(actions, axis=0).max() > 1e-3


def test_act_before_reset_and_bad_input_fail(model, frames):
    policy = make_policy(model)
    with pytest.raises(RuntimeError, match="reset"):
        policy.act(observations(frames)[0])
    with pytest.raises(ValueError, match="instruction"):
        policy.reset("  ")
    policy.reset(LEFT)
    with pytest.raises(ValueError, match="uint8"):
        policy.act({"image": np.zeros((8, 8, 3), dtype=np.float32)})
    with pytest.raises(ValueError, match="image"):
        policy.act({"instruction": LEFT})
    with pytest.raises(ValueError, match="image"):
        policy.act(frames[0])


# ------------------------------------------------------------------------------ the head's history
def test_trace_records_head_outputs_and_decoded_actions(model, frames):
    policy = make_policy(model)
    trace = policy.trace(frames, LEFT)
    assert trace["chunks"].shape == (len(frames), 3, 2) and trace["chunks"].dtype == np.float32
    assert trace["actions"].shape == (len(frames), 2)
    expected = np.stack([decode_action(c[0], policy.options) for c in trace["chunks"]])
    np.testing.assert_allclose(trace["actions"], expected, rtol=1e-6)
    np.testing.assert_array_equal(policy.last_output, trace["chunks"][-1])
    # trace is act() on the frames as given (no closed-loop episode_start duplication)
    np.testing.assert_array_equal(run(make_policy(model, episode_start=False), frames), trace["actions"])


def test_trace_keeps_the_forks_head_history(model, frames):
    """Stateful for the first window_size frames (the causal prefix, no padding with the first
    frame), then the head re-runs over the last window_size features from a zero state."""
    policy = make_policy(model)
    window = policy.config.window_size
    assert len(frames) > window + 2
    trace = policy.trace(frames, LEFT)
    feats = features(policy, frames)
    with torch.no_grad():
        for t in range(len(frames)):
            last = feats[max(0, t - window + 1) : t + 1][None]
            expected = policy.model.head(last)[0, -1].numpy()
            np.testing.assert_allclose(
                trace["chunks"][t], expected, atol=1e-5, rtol=1e-4, err_msg=f"step {t}"
            )
        # the alternatives really differ: an LSTM over the whole history, or a window padded with frame 0
        whole = policy.model.head(feats[None])[0, -1].numpy()
        assert np.abs(whole - trace["chunks"][-1]).max() > 1e-4
        padded = torch.cat([feats[:1].repeat(window - 2, 1), feats[:2]])[None]
        assert np.abs(policy.model.head(padded)[0, -1].numpy() - trace["chunks"][1]).max() > 1e-4


def test_inside_the_window_trace_equals_the_full_forward(model, frames):
    policy = make_policy(model)
    window = policy.config.window_size
    trace = policy.trace(frames[:window], LEFT)
    cfg, s = policy.config, policy.options
    x = torch.stack([preprocess_frame(f, s, cfg.image_size) for f in frames[:window]])
    with torch.no_grad():
        full = policy.model(x[None], policy._text)[0].numpy()
    np.testing.assert_allclose(trace["chunks"], full, atol=1e-5, rtol=1e-4)


def test_cached_and_uncached_policies_agree(model, frames):
    cached = make_policy(model)
    uncached = make_policy(model, use_feature_cache=False)
    a, b = cached.trace(frames, LEFT), uncached.trace(frames, LEFT)
    np.testing.assert_allclose(a["chunks"], b["chunks"], atol=1e-5, rtol=1e-4)
    window = model.config.window_size
    assert cached.frames_encoded == len(frames)  # each frame went through the backbone once
    assert uncached.frames_encoded == sum(min(t + 1, window) for t in range(len(frames)))


def test_trace_refuses_a_queue_or_an_ensemble(model, frames):
    for overrides in ({"execute_steps": 2}, {"temporal_ensemble": True}):
        with pytest.raises(ProfileError, match="execute_steps=1"):
            make_policy(model, **overrides).trace(frames, LEFT)


# ------------------------------------------------------------------------------ queue and ensemble
def test_execute_steps_serves_the_chunk_and_reset_clears_it(model, frames):
    policy = make_policy(model, execute_steps=3, episode_start=False)
    actions = run(policy, frames[:7])
    assert policy.predictions == 3  # steps 0, 3, 6
    assert len(policy._queue) == 2 and policy.frames_encoded == 7
    first = make_policy(model).trace(frames[:1], LEFT)["chunks"][0]
    expected = [decode_action(first[i], policy.options) for i in range(3)]
    np.testing.assert_allclose(actions[:3], np.stack(expected), rtol=1e-5, atol=1e-6)
    policy.reset(RIGHT)
    assert len(policy._queue) == 0 and len(policy._features) == 0 and policy.step == 0
    assert policy.frames_encoded == 0 and policy.predictions == 0 and policy.instruction == RIGHT


def test_temporal_ensemble_averages_overlapping_chunks(model, frames):
    policy = make_policy(model, temporal_ensemble=True, ensemble_decay=0.5, episode_start=False)
    actions = run(policy, frames[:2])
    assert policy.predictions == 2
    chunks = make_policy(model).trace(frames[:2], LEFT)["chunks"]
    w = np.exp(-0.5 * np.arange(2))
    expected = (chunks[0][1] * w[0] + chunks[1][0] * w[1]) / w.sum()  # the oldest weighs most
    np.testing.assert_allclose(actions[1], decode_action(expected, policy.options), rtol=1e-5, atol=1e-6)
    c0, c1 = np.full((3, 2), 0.2), np.full((3, 2), -0.4)
    policy._chunks.clear()
    policy._chunks.extend([(0, c0), (1, c1)])
    policy.step = 1
    value = (0.2 * w[0] - 0.4 * w[1]) / w.sum()
    np.testing.assert_allclose(policy._ensembled(), [value, value])


def test_closed_loop_history_starts_with_the_episode_start_frame(model, frames):
    """Every recorded episode starts with episode_start (frame 0, the same image as frame 1): in
    closed loop as_trained, the first observation is both, so the history is [o0, o0, o1, ...]
    and the first action is the one training taught for frame 1; as_deployed feeds the server
    frame by frame (its first answer is [0, 0], and the robot then sends that image again)."""
    policy = make_policy(model)
    assert policy.options.episode_start is True
    actions = run(policy, frames[:5])
    doubled = make_policy(model).trace([frames[0], *frames[:5]], LEFT)
    np.testing.assert_allclose(actions, doubled["actions"][1:], rtol=1e-5, atol=1e-6)
    assert policy.frames_encoded == 5  # the first frame is encoded once, used twice
    plain = make_policy(model, episode_start=False)
    assert np.abs(run(plain, frames[:5]) - actions).max() > 1e-4
    assert (
        resolve(model.config.replace(head_type="MobileVLALSTMDecoder"), "as_deployed").settings.episode_start
        is False
    )


# ------------------------------------------------------------------------------ profiles in the loop
def test_as_trained_constant_era_gives_the_constant_instruction(model, frames):
    policy = make_policy(model, era="constant_instruction")
    policy.reset(RIGHT)
    assert policy.prompt == "<grounding>An image of a robot Navigate to the target location"
    assert policy.instruction == RIGHT and policy.options.normalization == "none"
    verbatim = make_policy(model, era="file_instruction")
    verbatim.reset(RIGHT)
    assert verbatim.prompt == "<grounding>An image of a robot " + RIGHT


def test_upstream_layout_lets_the_instruction_matter(model, frames):
    policy = make_policy(model, token_layout="upstream")
    left, right = policy.trace(frames[:3], LEFT)["chunks"], policy.trace(frames[:3], RIGHT)["chunks"]
    assert np.abs(left - right).max() > 1e-4


def test_as_deployed_pads_the_prompt_zeroes_the_first_call_and_answers_like_the_server(
    velocities_model, frames
):
    policy = make_policy(velocities_model, "as_deployed")
    server = policy.trace(frames, LEFT)
    assert policy._text["input_ids"].shape == (1, velocities_model.config.max_text_len + 1)
    assert np.all(server["actions"][0] == 0) and np.abs(server["chunks"][0, 0]).max() * K > 0.1
    np.testing.assert_allclose(
        server["actions"][1:], np.clip(server["chunks"][1:, 0] * K, -1.5, 1.5), rtol=1e-6
    )


def test_as_deployed_transport_changes_what_the_model_sees(velocities_model, frames):
    jpeg = make_policy(velocities_model, "as_deployed").trace(frames[:3], LEFT)["chunks"]
    raw = make_policy(velocities_model, "as_deployed", transport="none").trace(frames[:3], LEFT)["chunks"]
    assert np.abs(jpeg - raw).max() > 1e-6


def test_as_deployed_refuses_lstm_decoder(model):
    with pytest.raises(ProfileError, match="LSTMDecoder"):
        make_policy(model, "as_deployed")


def test_classification_policy_acts_by_its_class_map(tiny_config, perturb, frames):
    config = tiny_config(
        head_type="MobileVLAClassificationDecoder", num_classes=9, inference_mode="classification"
    )
    m = perturb(MobileVLAModel.build(config, seed=3), head_gain=50.0).eval()
    policy = make_policy(m)
    trace = policy.trace(frames, LEFT)
    assert trace["chunks"].shape == (len(frames), 3, 9)
    classes = trace["chunks"][:, 0].argmax(axis=1)
    expected = np.array([CLASS_MAPS[9][int(c)] for c in classes], dtype=np.float32)
    np.testing.assert_allclose(trace["actions"], np.clip(expected, -K, K))
    deployed = make_policy(m, "as_deployed").trace(frames, LEFT)
    assert np.all(deployed["actions"][0] == 0) and deployed["chunks"].shape == (len(frames), 3, 9)


def test_abs_action_checkpoint_takes_the_side_from_the_instruction(tiny_config, perturb, frames):
    config = tiny_config(head_type="MobileVLALSTMDecoder", abs_action=True)
    m = perturb(MobileVLAModel.build(config, seed=5), head_gain=30.0).eval()
    with pytest.raises(ProfileError, match="abs_action_side"):
        make_policy(m)
    policy = make_policy(m, abs_action_side="instruction", token_layout="upstream")
    left, right = policy.trace(frames, LEFT), policy.trace(frames, RIGHT)
    assert np.all(left["actions"][:, 1] >= 0) and np.all(right["actions"][:, 1] <= 0)
    np.testing.assert_allclose(np.abs(left["actions"][:, 1]), np.abs(left["chunks"][:, 0, 1]) * K, rtol=1e-5)
    assert np.abs(left["actions"][:, 1]).max() > 0.01


# ------------------------------------------------------------------------------ settings
def test_settings_record_everything(model):
    policy = make_policy(model, channel_order="rgb", gain=1.5, execute_steps=2, forward_path="fallback")
    policy.reset(LEFT)
    s = policy.settings()
    assert s["policy"] == "vla" and s["profile"] == "as_trained" and s["transport"] == "none"
    assert s["overrides"] == {
        "channel_order": "rgb",
        "gain": 1.5,
        "execute_steps": 2,
        "forward_path": "fallback",
        "era": "clip_normalized",
    }
    assert s["era"]["era"] == "clip_normalized" and s["era"]["source"] == "explicit"
    assert s["settings"]["channel_order"] == "rgb" and s["settings"]["gain"] == 1.5
    assert s["settings"]["forward_path"] == "fallback" and s["settings"]["token_layout"] == "fork"
    assert s["settings"]["normalization"] == "clip" and s["settings"]["execute_steps"] == 2
    assert s["settings"]["device"] == "cpu" and s["settings"]["dtype"] == "float32"
    assert s["prompt"] == "<grounding>An image of a robot " + LEFT and s["warnings"] == []
    m = s["model"]
    assert (m["backbone"], m["head_type"], m["window_size"], m["fwd_pred_next_n"]) == (
        "tiny",
        "LSTMDecoder",
        4,
        3,
    )
    assert m["lora"] == {"enable": True, "r": 4, "alpha": 8} and m["num_classes"] is None
    assert s["checkpoint"] is None and s["key_report"] is None and s["source"] == "config"
    assert s["cpu_threads"] == torch.get_num_threads()


def test_unknown_era_is_a_recorded_warning(model):
    policy = VLAPolicy(model, resolve(model.config, "as_trained"))
    s = policy.settings()
    assert s["era"]["source"] == "default (newest era)" and len(s["warnings"]) == 2
    assert "training era unknown" in s["warnings"][0] and "forward_path" in s["warnings"][1]


def test_from_config_rejects_unknown_or_invalid_settings(tiny_config):
    with pytest.raises(TypeError, match="gian"):
        VLAPolicy.from_config(tiny_config(), gian=2.0)
    with pytest.raises(ProfileError, match="'tpu'"):
        VLAPolicy.from_config(tiny_config(), device="tpu")
    with pytest.raises(ProfileError, match="LSTMDecoder"):
        VLAPolicy.from_config(tiny_config(), "as_deployed")


def test_from_config_builds_a_seeded_random_policy(tiny_config, frames):
    a = VLAPolicy.from_config(
        tiny_config(head_type="MobileVLALSTMDecoder"), "as_deployed", seed=7, era="2026-02-20"
    )
    b = VLAPolicy.from_config(
        tiny_config(head_type="MobileVLALSTMDecoder"), "as_deployed", seed=7, era="2026-02-20"
    )
    assert a.source == "random init (seed 7)" and a.settings()["overrides"] == {"era": "2026-02-20"}
    np.testing.assert_array_equal(a.trace(frames[:3], LEFT)["chunks"], b.trace(frames[:3], LEFT)["chunks"])


def test_instruction_mismatch_is_logged_once_per_episode(model, frames, caplog):
    policy = make_policy(model)
    obs = {"image": frames[0], "instruction": RIGHT}
    with caplog.at_level("WARNING", logger="policies.vla.policy"):
        policy.reset(LEFT)
        policy.act(obs)
        policy.act(obs)
        policy.act({"image": frames[1]})  # no instruction in obs: no warning
        assert sum("differs from the reset() instruction" in r.message for r in caplog.records) == 1
        policy.reset(LEFT)
        policy.act(obs)
    assert sum("differs from the reset() instruction" in r.message for r in caplog.records) == 2


# ------------------------------------------------------------------------------ speed settings
def test_merge_lora_gives_the_same_actions_and_is_reversible(model, frames):
    plain = make_policy(model).trace(frames, LEFT)["chunks"]
    merged_policy = make_policy(model, merge_lora=True)
    try:
        assert model.lora_merged() and merged_policy.settings()["settings"]["merge_lora"]
        np.testing.assert_allclose(merged_policy.trace(frames, LEFT)["chunks"], plain, atol=1e-4, rtol=1e-4)
    finally:
        make_policy(model)  # default settings unmerge again
    assert not model.lora_merged()


def test_bfloat16_on_cpu_acts(model, frames):
    try:
        policy = make_policy(model, dtype="bfloat16")
        assert policy.model.dtype == torch.bfloat16
        trace = policy.trace(frames[:3], LEFT)
        assert trace["actions"].dtype == np.float32 and np.all(np.isfinite(trace["actions"]))
        reference = make_policy(model).trace(frames[:3], LEFT)["chunks"]
        assert np.abs(trace["chunks"] - reference).max() < 0.2
    finally:
        model.float()


def test_cuda_without_cuda_fails_clearly(model):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ProfileError, match="CUDA"):
        make_policy(model, device="cuda")


# ------------------------------------------------------------------------------ latency helper
def test_measure_latency_reports_percentiles(model):
    result = measure_latency(make_policy(model), random_obs_fn(36, 64), n=4, warmup=1)
    assert (
        result["n"] == 4 and 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    )
    assert result["budget_ms"] == 100.0


def test_latency_cli_tiny_preset(capsys):
    argv = [
        "--preset",
        "tiny",
        "-n",
        "2",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--height",
        "36",
        "--width",
        "64",
    ]
    assert latency_main(argv) == 0
    out = capsys.readouterr().out
    assert "p95 ms" in out and "cpu" in out
    assert latency_main(["--ckpt", "/nonexistent/last.ckpt", "--device", "cpu"]) == 2
