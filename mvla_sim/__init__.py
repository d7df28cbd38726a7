"""mvla_sim: the Gymnasium environment of the Mobile VLA corridor task, in PyBullet.

Owns the scene specs and their loading, world building, the omni-wheel base and its drive
models, the camera and lighting, the success and metric logic, and the registration of the env
ids on import. It must not import torch, ``policies``, ``train`` or ``eval``.
"""

from __future__ import annotations

import gymnasium as gym

from mvla_sim.facts import EPISODE_ACTIONS, LIGHTINGS, SIDES

ENV_IDS: dict[tuple[str, str], str] = {
    ("left", "day"): "MobileVLA-1BoxLeft-v0",
    ("right", "day"): "MobileVLA-1BoxRight-v0",
    ("left", "evening"): "MobileVLA-1BoxLeft-Evening-v0",
    ("right", "evening"): "MobileVLA-1BoxRight-Evening-v0",
}


def env_id(side: str, lighting: str) -> str:
    """The registered id for a side (``left``/``right``) and a lighting (``day``/``evening``)."""
    try:
        return ENV_IDS[(side, lighting)]
    except KeyError:
        raise ValueError(
            f"no env for side={side!r}, lighting={lighting!r}; sides {SIDES}, lightings {LIGHTINGS}"
        ) from None


for (_side, _lighting), _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point="mvla_sim.env:MobileVLAEnv",
            kwargs={"side": _side, "lighting": _lighting},
            max_episode_steps=None,
            disable_env_checker=False,
        )

__all__ = ["ENV_IDS", "EPISODE_ACTIONS", "env_id"]
