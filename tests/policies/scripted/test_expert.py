"""The scripted expert: presses real sequences noise-free, corrects with teleoperator keys, recovers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mvla_sim
from mvla_sim.facts import INSTRUCTIONS, KEY_ACTIONS, REAL_KEY_SEQUENCES, real_key_sequences
from policies.scripted.baselines import make_baseline
from policies.scripted.expert import TELEOP_KEYS, ExpertConfig, candidate_plans

SMALL = (64, 36)
_ENVS: dict[tuple, gym.Env] = {}


def env_for(side: str, randomize: bool) -> gym.Env:
    key = (side, randomize)
    if key not in _ENVS:
        _ENVS[key] = gym.make(mvla_sim.env_id(side, "day"), randomize=randomize, image_size=SMALL)
    return _ENVS[key]


@pytest.fixture(scope="module", autouse=True)
def _close_envs():
    yield
    while _ENVS:
        _ENVS.popitem()[1].close()


def drive(env: gym.Env, seed: int, forced: dict[int, str] | None = None, **options) -> tuple[str, dict]:
    """Roll the expert out; ``forced`` replaces the press at a step (1-based) by a key."""
    expert = make_baseline("expert", env, seed=seed + 1000, **options)
    obs, info = env.reset(seed=seed)
    expert.reset(obs["instruction"])
    keys, done, step = "", False, 0
    while not done:
        step += 1
        action = expert.act(obs)
        key = expert.last_key or "?"
        if forced and step in forced:
            key = forced[step]
            action = np.asarray(KEY_ACTIONS[key][:2], dtype=np.float32)
        keys += key
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return keys, info


@pytest.mark.parametrize("sequence", REAL_KEY_SEQUENCES, ids=lambda s: s.name.replace(" ", "_"))
def test_noise_free_in_the_nominal_scene_it_presses_its_guide_exactly(sequence):
    keys, info = drive(env_for(sequence.side, randomize=False), seed=0, guide=sequence.keys)
    assert keys == sequence.keys and info["is_success"]


@pytest.mark.parametrize("side", ["left", "right"])
def test_default_guides_are_real_sequences_drawn_by_their_counts(side):
    real = real_key_sequences(side)
    pressed = {drive(env_for(side, randomize=False), seed=s)[0] for s in range(6)}
    assert pressed <= {s.keys for s in real}
    env = env_for(side, randomize=False)
    guides = []
    for seed in range(600):
        expert = make_baseline("expert", env, seed=seed)
        expert.reset(INSTRUCTIONS[side])
        guides.append(expert.guide)
    total = sum(s.episodes for s in real)
    for s in real:
        assert guides.count(s.keys) / len(guides) == pytest.approx(s.episodes / total, abs=0.06), s.name
    most = max(real, key=lambda s: s.episodes).keys
    assert drive(env, seed=0, guide="most_common")[0] == most


@pytest.mark.parametrize("side", ["left", "right"])
def test_noise_free_in_randomized_scenes_it_succeeds_with_teleoperator_keys_near_a_real_sequence(side):
    real = [s.keys for s in real_key_sequences(side)]
    for seed in range(12):
        keys, info = drive(env_for(side, randomize=True), seed=seed)
        assert info["is_success"], (seed, keys, info)
        assert set(keys) <= set(TELEOP_KEYS), keys
        assert min(sum(a != b for a, b in zip(keys, r, strict=True)) for r in real) <= 4, keys


@pytest.mark.parametrize(
    "side, forced",
    [("left", {4: "D"}), ("left", {9: "W", 10: "W"}), ("right", {2: "Q", 3: "Q"}), ("right", {12: "E"})],
)
def test_it_recovers_from_wrong_keys(side, forced):
    keys, info = drive(env_for(side, randomize=True), seed=3, forced=forced)
    assert info["is_success"], (keys, info)


def test_at_the_default_generation_noise_it_recovers_in_the_large_majority():
    outcomes, noisy = [], 0
    for side in ("left", "right"):
        for seed in range(20):
            keys, info = drive(env_for(side, randomize=True), seed=seed, noise=0.1)
            outcomes.append(info["is_success"])
            assert set(keys) <= set(TELEOP_KEYS)
            noisy += keys not in {s.keys for s in real_key_sequences(side)}
    assert np.mean(outcomes) >= 0.9, outcomes
    assert noisy >= 10  # noise was injected


def test_continuous_mode_cuts_corners_and_still_succeeds():
    env = env_for("left", randomize=True)
    expert = make_baseline("expert", env, seed=0, mode="continuous")
    obs, _ = env.reset(seed=4)
    expert.reset(obs["instruction"])
    headings, done = set(), False
    while not done:
        action = expert.act(obs)
        headings.add(round(float(np.degrees(np.arctan2(action[1], action[0]))), 1))
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    assert info["is_success"]
    assert headings - {0.0, 45.0, 90.0, -45.0, -90.0}  # some heading no key has


def test_candidate_plans_follow_the_teleoperator_pattern_and_contain_every_real_sequence():
    from policies.scripted.expert import KEYS

    for side in ("left", "right"):
        plans = {"".join(KEYS[i] for i in row) for row in candidate_plans(17, side, 0)}
        assert {s.keys for s in real_key_sequences(side)} <= plans
        wrong = "D" if side == "left" else "A"
        assert not any(wrong in p or "S" in p for p in plans)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mode": "joystick"}, "mode"),
        ({"guide": "WWW"}, "guide"),
        ({"noise": 1.5}, "noise"),
        ({"noise_keys": "backward"}, "noise_keys"),
        ({"margin_m": -0.1}, "margin_m"),
    ],
)
def test_bad_settings_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        ExpertConfig(**options)
