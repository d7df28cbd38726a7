"""VLAPolicy.act_batch: N live episodes, one backbone forward per step, each episode's actions
equal to those of a policy running it alone, under both profiles, on the tiny preset, the bundled
reference checkpoint and the fork's own checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mvla_sim.facts import INSTRUCTIONS
from policies.base import BatchPolicy
from policies.vla.model import MobileVLAModel
from policies.vla.policy import VLAPolicy
from policies.vla.profiles import resolve

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO / "assets" / "checkpoints" / "reference" / "epoch_epoch=10-val_loss=val_loss=0.070.ckpt"
FORK = REPO / "tests" / "fixtures" / "fork_reference"
TOLERANCE = 1e-5
LEFT, RIGHT = INSTRUCTIONS["left"], INSTRUCTIONS["right"]


def separate_and_batched(make, frames: list[np.ndarray], starts: list[int], steps: int):
    """Run len(starts) episodes, episode i starting at global step starts[i] with its own instruction
    and frames: once with one policy per episode, once through one policy's act_batch (the live
    episodes at each step, at different steps of their own). Returns both [episodes, steps, 2]."""
    n = len(starts)
    instructions = [LEFT if i % 2 == 0 else RIGHT for i in range(n)]
    frame_of = [[frames[(i * 3 + t) % len(frames)] for t in range(steps)] for i in range(n)]
    alone = []
    for i in range(n):
        policy = make()
        policy.reset(instructions[i])
        alone.append([policy.act({"image": f, "instruction": instructions[i]}) for f in frame_of[i]])
    batch = make()
    assert isinstance(batch, BatchPolicy)
    episodes: dict[int, object] = {}
    batched: list[list[np.ndarray]] = [[] for _ in range(n)]
    for t in range(max(starts) + steps):
        live = [i for i in range(n) if starts[i] <= t < starts[i] + steps]
        for i in live:
            if i not in episodes:
                episodes[i] = batch.start_episode(instructions[i])
        obs = [{"image": frame_of[i][t - starts[i]], "instruction": instructions[i]} for i in live]
        actions = batch.act_batch([episodes[i] for i in live], obs)
        assert actions.shape == (len(live), 2) and actions.dtype == np.float32
        for i, a in zip(live, actions, strict=True):
            batched[i].append(a)
    return np.asarray(alone), np.asarray(batched)


@pytest.fixture(scope="module")
def frames(random_frames):
    return random_frames(12, seed=11)


@pytest.fixture(scope="module")
def velocities_model(tiny_config, perturb) -> MobileVLAModel:
    return perturb(
        MobileVLAModel.build(tiny_config(head_type="MobileVLALSTMDecoder"), seed=3), head_gain=30.0
    ).eval()


@pytest.mark.parametrize(
    "profile, overrides",
    [
        ("as_trained", {}),
        ("as_deployed", {}),
        ("as_trained", {"execute_steps": 2}),
        ("as_trained", {"temporal_ensemble": True}),
        ("as_trained", {"use_feature_cache": False}),
        ("as_trained", {"token_layout": "upstream", "instruction": "verbatim"}),
    ],
)
def test_tiny_preset_batched_equals_separate(velocities_model, frames, profile, overrides):
    settings = resolve(velocities_model.config, profile, overrides={"era": "clip_normalized", **overrides})
    alone, batched = separate_and_batched(
        lambda: VLAPolicy(velocities_model, settings), frames, starts=[0, 0, 2, 5], steps=7
    )
    np.testing.assert_allclose(batched, alone, atol=TOLERANCE, rtol=0)
    assert np.abs(alone[0] - alone[1]).max() > 1e-3  # the episodes differ: the test can fail
    np.testing.assert_array_equal(batched, alone)  # on CPU: bit for bit


@pytest.mark.parametrize("profile", ["as_trained", "as_deployed"])
def test_reference_checkpoint_batched_equals_separate(frames, profile):
    policy = VLAPolicy.from_checkpoint(REFERENCE, profile)
    alone, batched = separate_and_batched(lambda: policy, frames, starts=[0, 1, 1, 4, 9], steps=10)
    np.testing.assert_allclose(batched, alone, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", ["lstm_decoder", "mobile_vla_lstm", "classification"])
def test_fork_checkpoints_batched_equal_separate(name):
    checkpoint = FORK / (FORK / name / "checkpoint.txt").read_text().strip()
    policy = VLAPolicy.from_checkpoint(checkpoint, "as_trained")
    frames = list(np.load(FORK / "frames_left.npz")["frames"])
    alone, batched = separate_and_batched(lambda: policy, frames, starts=[0, 2, 3], steps=len(frames) - 3)
    np.testing.assert_allclose(batched, alone, atol=TOLERANCE, rtol=0)


def test_act_batch_keeps_episode_state_apart_and_checks_its_input(velocities_model, frames):
    policy = VLAPolicy(
        velocities_model, resolve(velocities_model.config, "as_trained", overrides={"era": "clip_normalized"})
    )
    a, b = policy.start_episode(LEFT), policy.start_episode(RIGHT)
    policy.act_batch([a, b], [{"image": frames[0]}, {"image": frames[1]}])
    policy.act_batch([a], [{"image": frames[2]}])
    assert (a.step, b.step, a.frames_encoded, b.frames_encoded) == (2, 1, 2, 1)
    assert len(a.features) == 3 and len(b.features) == 2  # episode_start counts the first frame twice
    assert policy.act_batch([], []).shape == (0, 2)
    with pytest.raises(ValueError, match="2 episodes and 1 observations"):
        policy.act_batch([a, b], [{"image": frames[0]}])
    with pytest.raises(ValueError, match="'image' entry"):
        policy.act_batch([a], [{"instruction": LEFT}])
