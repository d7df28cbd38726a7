"""The registered env ids, and their registration with Gymnasium (stdlib-only until it runs)."""

from __future__ import annotations

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


def register_envs(gym) -> None:
    """Register every id with ``gym`` (the gymnasium module): the real protocol's step limit (17
    actions) unless ``gym.make(..., max_episode_steps=N)`` says otherwise."""
    for (side, lighting), id_ in ENV_IDS.items():
        if id_ not in gym.registry:
            gym.register(
                id=id_,
                entry_point="mvla_sim.env:MobileVLAEnv",
                kwargs={"side": side, "lighting": lighting},
                max_episode_steps=EPISODE_ACTIONS,
                disable_env_checker=False,
            )
