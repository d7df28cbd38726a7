"""mvla_sim: the Gymnasium environment of the Mobile VLA corridor task, in PyBullet.

Rooms: ``facts`` (the real robot's constants and key table, stdlib-only), ``scene`` (scene specs
and layouts), ``world`` / ``robot`` / ``camera`` / ``topdown`` (building, driving and drawing in
PyBullet), ``task`` (side passed, goal zone, success, SPL and the one outcome taxonomy), ``env``
(:class:`~mvla_sim.env.MobileVLAEnv`), ``registration`` (the ids) and ``make`` (the one env
factory, :func:`make_env` from a :class:`SceneDescription`), and ``files`` (the one atomic
writer, stdlib-only, that every package uses).

Importing the package registers the ids with Gymnasium: at once when gymnasium is already
imported, else the moment it is (a post-import hook), so that ``import mvla_sim.facts`` stays
free of gymnasium and pybullet. It must not import torch, ``policies``, ``train`` or ``eval``.
"""

from __future__ import annotations

from typing import Any

import wrapt

from mvla_sim.facts import EPISODE_ACTIONS
from mvla_sim.registration import ENV_IDS, env_id, register_envs

wrapt.when_imported("gymnasium")(register_envs)


def __getattr__(name: str) -> Any:  # the factory imports gymnasium and pybullet: only when used
    if name in ("SceneDescription", "make_env"):
        from mvla_sim import make

        return getattr(make, name)
    raise AttributeError(f"module 'mvla_sim' has no attribute {name!r}")


__all__ = ["ENV_IDS", "EPISODE_ACTIONS", "SceneDescription", "env_id", "make_env"]
