"""VLAPolicy: the Policy contract, action queue and ensembling, settings, latency helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.latency import main as latency_main
from eval.latency import measure_latency, random_obs_fn
from mvla_sim.facts import INSTRUCTIONS, KEY_ACTION_VALUE
from policies.base import Policy
from policies.vla_config import VLAConfig
from policies.vla_model import MobileVLAModel
from policies.vla_policy import VLAPolicy, VLAPolicySettings


@pytest.fixture(scope="module")
def model() -> MobileVLAModel:
    m = MobileVLAModel.build(VLAConfig(), seed=0)
    with torch.no_grad():  # make the random policy's actions large and frame-dependent
        for name, p in m.named_parameters():
            if "lora_B" in name or name == "action_token":
                p.normal_(0.0, 0.1)
        m.act_head.actions.mlp[6].weight.mul_(20.0)
        m.act_head.gripper.mlp[6].weight.mul_(20.0)
    return m.eval()


def observations(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"image": rng.integers(0, 256, (36, 64, 3), dtype=np.uint8), "instruction": INSTRUCTIONS["left"]}
        for _ in range(n)
    ]


def run(policy: VLAPolicy, obs: list[dict]) -> np.ndarray:
    policy.reset(INSTRUCTIONS["left"])
    return np.stack([policy.act(o) for o in obs])


def test_policy_contract_and_action_range(model):
    policy = VLAPolicy(model, VLAPolicySettings(gain=3.0))
    assert isinstance(policy, Policy) and policy.name == "vla"
    actions = run(policy, observations(12))
    assert actions.dtype == np.float32 and actions.shape == (12, 2)
    assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= KEY_ACTION_VALUE + 1e-6)
    assert np.any(np.abs(actions) > 0)


def test_act_before_reset_and_bad_obs_fail(model):
    policy = VLAPolicy(model)
    with pytest.raises(RuntimeError, match="reset"):
        policy.act(observations(1)[0])
    policy.reset(INSTRUCTIONS["left"])
    with pytest.raises(ValueError, match="uint8"):
        policy.act({"image": np.zeros((8, 8, 3), dtype=np.float32)})
    with pytest.raises(ValueError, match="image"):
        policy.act({"instruction": INSTRUCTIONS["left"]})


def test_cached_and_uncached_policies_agree(model):
    obs = observations(10, seed=1)
    cached = run(VLAPolicy(model, VLAPolicySettings(dead_zone=0.0)), obs)
    uncached = run(VLAPolicy(model, VLAPolicySettings(dead_zone=0.0, use_feature_cache=False)), obs)
    np.testing.assert_allclose(cached, uncached, atol=1e-4)


def test_execute_steps_queue_and_reset_clears_it(model):
    policy = VLAPolicy(model, VLAPolicySettings(execute_steps=3))
    obs = observations(7)
    run(policy, obs)
    assert policy.predictions == 3  # steps 0, 3, 6
    assert len(policy._queue) == 2 and policy.frames_encoded == 7
    policy.reset(INSTRUCTIONS["right"])
    assert len(policy._queue) == 0 and policy.frames_encoded == 0 and policy.step == 0
    assert len(policy._cache) == 0 and policy.instruction == INSTRUCTIONS["right"]


def test_temporal_ensemble_averages_overlapping_chunks(model):
    policy = VLAPolicy(model, VLAPolicySettings(temporal_ensemble=True, ensemble_decay=0.5, dead_zone=0.0))
    run(policy, observations(4))
    assert policy.predictions == 4
    c0, c1 = np.full((10, 2), 0.2), np.full((10, 2), -0.4)
    policy._chunks.clear()
    policy._chunks.extend([(0, c0), (1, c1)])
    policy.step = 1
    w = np.exp(-0.5 * np.arange(2))
    expected = (0.2 * w[0] - 0.4 * w[1]) / w.sum()
    np.testing.assert_allclose(policy._ensembled_action(), [expected, expected])


def test_settings_record_everything(model):
    policy = VLAPolicy(
        model, VLAPolicySettings(channel_order="bgr", normalization="none", gain=1.5, execute_steps=2)
    )
    s = policy.settings()
    assert s["preprocess"]["channel_order"] == "bgr" and s["preprocess"]["normalization"] == "none"
    assert s["preprocess"]["image_size"] == 224 and s["preprocess"]["window_size"] == 8
    assert s["model"]["config_channel_order"] == "rgb"
    assert s["postprocess"]["gain"] == 1.5 and s["postprocess"]["dead_zone"] == 0.15
    assert s["execute_steps"] == 2 and s["device"] == "cpu" and s["dtype"] == "float32"
    assert "checkpoint" in s and "key_report" in s


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"execute_steps": 0}, "execute_steps"),
        ({"temporal_ensemble": True, "execute_steps": 2}, "execute_steps"),
        ({"dtype": "int8"}, "int8"),
        ({"channel_order": "grb"}, "grb"),
        ({"device": "tpu"}, "tpu"),
        ({"cpu_threads": 0}, "cpu_threads"),
    ],
)
def test_invalid_settings_fail(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VLAPolicySettings(**kwargs)


def test_from_config_rejects_unknown_setting():
    with pytest.raises(TypeError, match="gian"):
        VLAPolicy.from_config(VLAConfig(), gian=2.0)


def test_measure_latency_reports_percentiles(model):
    policy = VLAPolicy(model)
    result = measure_latency(policy, random_obs_fn(36, 64), n=4, warmup=1)
    assert (
        result["n"] == 4 and 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    )
    assert result["budget_ms"] == 100.0


def test_latency_cli_tiny_preset(capsys):
    assert (
        latency_main(
            [
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
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "p95 ms" in out and "cpu" in out
    assert latency_main(["--ckpt", "/nonexistent/last.ckpt", "--device", "cpu"]) == 2


def test_merge_lora_gives_same_actions_and_is_reversible(model):
    obs = observations(9, seed=2)
    plain = run(VLAPolicy(model, VLAPolicySettings(dead_zone=0.0)), obs)
    merged_policy = VLAPolicy(model, VLAPolicySettings(dead_zone=0.0, merge_lora=True))
    assert model.lora_merged() and merged_policy.settings()["merge_lora"]
    np.testing.assert_allclose(run(merged_policy, obs), plain, atol=1e-4)
    VLAPolicy(model)  # default settings unmerge again
    assert not model.lora_merged()


def test_bfloat16_on_cpu_acts(model):
    try:
        actions = run(VLAPolicy(model, VLAPolicySettings(dtype="bfloat16")), observations(3))
        assert actions.dtype == np.float32 and np.all(np.isfinite(actions))
    finally:
        model.float()


def test_instruction_mismatch_is_logged_once(model, caplog):
    policy = VLAPolicy(model)
    policy.reset(INSTRUCTIONS["left"])
    obs = {"image": observations(1)[0]["image"], "instruction": INSTRUCTIONS["right"]}
    with caplog.at_level("WARNING", logger="policies.vla_policy"):
        policy.act(obs)
        policy.act(obs)
    assert sum("differs from the reset() instruction" in r.message for r in caplog.records) == 1
