"""The batched contract of the scripted policies: act_batch over N episodes (each with its own
env, seed and instruction) equals N separate policies, step for step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mvla_sim
from policies.base import BatchPolicy
from policies.scripted.baselines import BASELINE_NAMES, make_baseline, make_batch_baseline

SMALL = (64, 36)
SEEDS = (3, 4, 5)


@pytest.fixture(scope="module")
def envs():
    made = [gym.make(mvla_sim.env_id(side, "day"), image_size=SMALL) for side in ("left", "right", "left")]
    yield made
    for env in made:
        env.close()


def alone(name: str, envs: list[gym.Env]) -> np.ndarray:
    out = []
    for env, seed in zip(envs, SEEDS, strict=True):
        obs, _ = env.reset(seed=seed)
        policy = make_baseline(name, env, seed + 100)
        policy.reset(obs["instruction"])
        actions = []
        for _ in range(17):
            actions.append(np.asarray(policy.act(obs), dtype=np.float32))
            obs, _, terminated, truncated, _ = env.step(actions[-1])
            if terminated or truncated:
                break
        out.append(np.stack(actions))
    return out


def batched(name: str, envs: list[gym.Env]) -> np.ndarray:
    batch = make_batch_baseline(name)
    assert isinstance(batch, BatchPolicy)
    obs = [env.reset(seed=seed)[0] for env, seed in zip(envs, SEEDS, strict=True)]
    episodes = [
        batch.start_episode(o["instruction"], seed=seed + 100, env=env)
        for o, env, seed in zip(obs, envs, SEEDS, strict=True)
    ]
    live, out = list(range(len(envs))), [[] for _ in envs]
    while live:
        actions = batch.act_batch([episodes[i] for i in live], [obs[i] for i in live])
        still = []
        for i, action in zip(live, actions, strict=True):
            out[i].append(action)
            obs[i], _, terminated, truncated, _ = envs[i].step(action)
            if not (terminated or truncated):
                still.append(i)
        live = still
    return [np.stack(a) for a in out]


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_batched_baselines_equal_separate_ones(name, envs):
    expected, got = alone(name, envs), batched(name, envs)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(g, e)
    if name in ("expert", "random"):  # per-episode seeds and scenes: the episodes differ
        assert not np.array_equal(got[0][:5], got[1][:5])


def test_make_batch_baseline_checks_its_input():
    with pytest.raises(ValueError, match="unknown baseline"):
        make_batch_baseline("nope")
    with pytest.raises(ValueError, match="takes no options"):
        make_batch_baseline("straight", noise=0.1)
    assert make_batch_baseline("expert", noise=0.1).settings()["noise"] == 0.1
