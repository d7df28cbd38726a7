"""Pair every real frame with a simulated one: replay the episode's recorded actions.

The real collector grabs frame ``t`` (t >= 1) right after publishing press ``t``'s command, before
the base moves (FACTS.md; ``train.generate``'s docstring): frames 0 and 1 show the start pose, and
frame ``t`` the pose after presses ``1 .. t-1``. So the simulated frame ``t`` is taken after
replaying the recorded actions ``1 .. t-1`` (in data units, as the env takes them) from the
nominal layout (randomization off) of the scene that the file name names. An episode whose
replay collides is paired up to the frame after the collision; later frames stay unpaired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from eval.realgap.sources import RealEpisode
from mvla_sim.appearance import Appearance, load_appearance
from mvla_sim.make import SceneDescription
from mvla_sim.make import make_env as make_scene_env


@dataclass
class Replay:
    """Simulated frames paired with a real episode's first ``len(frames)`` frames."""

    frames: np.ndarray
    poses: list[tuple[float, float, float]]
    """Base pose (x m, y m, yaw rad) of every paired frame."""
    outcome: str
    info: dict[str, Any] = field(default_factory=dict)


def make_env(
    real: RealEpisode, image_size: tuple[int, int], appearance: str | Path | dict | Appearance | None
) -> gym.Env:
    """The nominal scene of a paired episode, at ``image_size`` (the real aspect)."""
    if not real.paired:
        raise ValueError(f"{real.name}: unpaired ({real.why_unpaired}); it cannot be replayed")
    scene = SceneDescription(
        side=real.side,
        lighting=real.lighting,
        obstacle_distance=real.distance,
        randomization="none",
        image_size=image_size,
        max_steps=max(1, len(real.frames) - 1),
        appearance=load_appearance(appearance),
    )
    return make_scene_env(scene)


def replay(real: RealEpisode, env: gym.Env, seed: int = 0) -> Replay:
    """Replay ``real``'s recorded actions in ``env``; one simulated frame per real frame.

    Every recorded press is replayed (the outcome is the whole recorded sequence's); the frame
    after the last press has no real frame to pair with and is dropped.
    """
    if real.actions is None:
        raise ValueError(f"{real.name}: no recorded actions to replay")
    obs, info = env.reset(seed=seed)
    base = env.unwrapped
    pose = (base.robot.pose.x, base.robot.pose.y, base.robot.pose.yaw)
    frames, poses = [obs["image"], obs["image"]], [pose, pose]
    for action in real.actions[1 : len(real.frames)]:
        obs, _, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        frames.append(obs["image"])
        poses.append((base.robot.pose.x, base.robot.pose.y, base.robot.pose.yaw))
        if terminated or truncated:
            break
    n = min(len(frames), len(real.frames))
    return Replay(np.stack(frames[:n]), poses[:n], info.get("outcome") or "unfinished", dict(info))


def render_at(env: gym.Env, poses: list[tuple[float, float, float]], seed: int = 0) -> np.ndarray:
    """Frames from given base poses in ``env``'s nominal layout (after a reset with ``seed``)."""
    env.reset(seed=seed)
    base = env.unwrapped
    return np.stack([base.view_from(*pose) for pose in poses])
