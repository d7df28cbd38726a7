"""Simulating one episode with the scripted expert, and its record.

The expert drives one seeded scene of the registered envs (domain randomization on) for the real
protocol's 17 key presses; a noise-free twin with the same seed gives the intended action of
every press. Envs are cached per process (a seeded reset fully determines them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mvla_sim.facts import EPISODE_ACTIONS, key_char_of_action
from policies.scripted.baselines import make_baseline
from train.generate.config import GenerateConfig
from train.generate.plan import EpisodePlan

_ENVS: dict[tuple[str, str, str, tuple[int, int]], Any] = {}
"""Envs of this process, one per scene and image size (reset with a seed fully determines them)."""


def scene_env(side: str, lighting: str, distance: str, image_size: tuple[int, int]) -> Any:
    """This process's env of a scene (created on first use, randomized on every reset)."""
    from mvla_sim.make import SceneDescription, make_env  # pybullet loads when simulating, not for --help

    key = (side, lighting, distance, image_size)
    if key not in _ENVS:
        _ENVS[key] = make_env(
            SceneDescription(side=side, lighting=lighting, obstacle_distance=distance, image_size=image_size)
        )
    return _ENVS[key]


def close_envs() -> None:
    """Close every env of this process."""
    while _ENVS:
        _, env = _ENVS.popitem()
        env.close()


@dataclass
class Rollout:
    """One simulated episode: frame ``k`` is the image before press ``k`` (frame 0: ``episode_start``)."""

    images: np.ndarray
    """uint8 (T, H, W, 3)."""
    actions: np.ndarray
    """float32 (T, 2): the executed ``[linear_x, linear_y]`` (zeros at frame 0)."""
    intended: np.ndarray
    """float32 (T, 2): what the noise-free expert would have pressed."""
    instruction: str
    layout: dict[str, Any]
    info: dict[str, Any]
    """The env's ``info`` after the last press."""

    @property
    def noisy_presses(self) -> int:
        return int(np.sum(np.any(self.actions != self.intended, axis=1)))

    @property
    def kind(self) -> str:
        """``variant`` when a press differs from the intended one, else ``core``."""
        return "variant" if self.noisy_presses else "core"

    @property
    def success(self) -> bool:
        return bool(self.info["is_success"])


def roll_out(config: GenerateConfig, plan: EpisodePlan) -> Rollout:
    """Drive the expert (with ``config.noise``) through ``plan``'s scene for up to 17 presses."""
    env = scene_env(plan.side, plan.lighting, plan.distance, config.image_size)  # type: ignore[arg-type]
    expert = make_baseline("expert", env, seed=plan.expert_seed, mode=config.mode, noise=config.noise)
    intent = make_baseline("expert", env, seed=plan.expert_seed, mode=config.mode, noise=0.0)
    obs, info = env.reset(seed=plan.env_seed)
    layout = info["layout"]
    expert.reset(obs["instruction"])
    intent.reset(obs["instruction"])
    instruction = obs["instruction"]

    zero = np.zeros(2, dtype=np.float32)
    images, actions, intended = [obs["image"]], [zero], [zero]
    for _ in range(EPISODE_ACTIONS):
        wanted = np.asarray(intent.act(obs), dtype=np.float32)
        action = np.asarray(expert.act(obs), dtype=np.float32)
        images.append(obs["image"])
        actions.append(action)
        intended.append(wanted)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return Rollout(np.stack(images), np.stack(actions), np.stack(intended), instruction, layout, info)


def episode_record(plan: EpisodePlan, rollout: Rollout) -> dict[str, Any]:
    """The rollout's record in ``generate_report.json`` (``status`` "dropped" until it is written)."""
    info = rollout.info
    return {
        "index": plan.index,
        "file": None,
        "status": "dropped",
        "scenario": plan.scenario,
        "distance": plan.distance,
        "env_seed": plan.env_seed,
        "expert_seed": plan.expert_seed,
        "success": rollout.success,
        "collided": bool(info["collided"]),
        "side_passed": info["side_passed"] or "none",
        "distance_to_goal_m": float(info["distance_to_goal"]),
        "kind": rollout.kind,
        "noisy_presses": rollout.noisy_presses,
        "frames": len(rollout.images),
        "keys": "".join(key_char_of_action(a) for a in rollout.actions[1:]),
        "intended_keys": "".join(key_char_of_action(a) for a in rollout.intended[1:]),
    }
