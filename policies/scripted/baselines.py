"""Reference policies with the same contract as the VLA: the expert (ceiling) and simple floors."""

from __future__ import annotations

from typing import Any

import numpy as np

from mvla_sim.facts import ACTION_HIGH, ACTION_LOW, CORE_KEY_SEQUENCES, KEY_ACTIONS, key_sequence_actions
from policies.base import PerEpisodeBatch
from policies.scripted.expert import ExpertConfig, ScriptedExpert


class StraightAhead:
    """Always the W key: drives straight into the box (the floor every policy must beat)."""

    name = "straight"

    def reset(self, instruction: str) -> None:
        pass

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return np.asarray(KEY_ACTIONS["W"][:2], dtype=np.float32)

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name}


class UniformRandom:
    """Uniformly random [linear_x, linear_y] in the action range, from its own seeded generator."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def reset(self, instruction: str) -> None:
        pass

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return self._rng.uniform(ACTION_LOW, ACTION_HIGH, size=2).astype(np.float32)

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name, "seed": self.seed}


class AlwaysLeft:
    """Replays the real left ``core`` key sequence whatever the instruction says.

    Instruction-blind: it succeeds in nominal left scenes and passes on the wrong side in right
    ones, so a policy must beat it to show that it follows the instruction.
    """

    name = "always_left"

    def __init__(self) -> None:
        self._actions = key_sequence_actions(CORE_KEY_SEQUENCES["left"])
        self._t = 0

    def reset(self, instruction: str) -> None:
        self._t = 0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        action = (
            self._actions[min(self._t, len(self._actions) - 1)] if self._t < len(self._actions) else (0, 0, 0)
        )
        self._t += 1
        return np.asarray(action[:2], dtype=np.float32)

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name, "keys": CORE_KEY_SEQUENCES["left"]}


BASELINE_NAMES: tuple[str, ...] = ("expert", "straight", "random", "always_left")


def make_baseline(name: str, env: Any = None, seed: int = 0, **options: Any):
    """Build a reference policy by name; ``expert`` needs the env (it reads the scene's ground truth)."""
    if name == "expert":
        if env is None:
            raise ValueError("the 'expert' baseline needs the env: make_baseline('expert', env=env)")
        return ScriptedExpert(env, ExpertConfig(**options), seed=seed)
    if options:
        raise ValueError(f"baseline {name!r} takes no options, got {sorted(options)}")
    if name == "straight":
        return StraightAhead()
    if name == "random":
        return UniformRandom(seed)
    if name == "always_left":
        return AlwaysLeft()
    raise ValueError(f"unknown baseline {name!r}; choose one of {list(BASELINE_NAMES)}")


def make_batch_baseline(name: str, **options: Any) -> PerEpisodeBatch:
    """The batched contract (:class:`policies.base.BatchPolicy`) of a reference policy.

    Each episode is its own :func:`make_baseline` policy, built with the episode's ``seed`` (and,
    for the expert, its ``env``): ``start_episode(instruction, seed=..., env=...)``.
    """
    if name not in BASELINE_NAMES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {list(BASELINE_NAMES)}")
    if name != "expert" and options:
        raise ValueError(f"baseline {name!r} takes no options, got {sorted(options)}")
    config = {"privileged": True, **ExpertConfig(**options).__dict__} if name == "expert" else {}
    return PerEpisodeBatch(
        lambda seed, env: make_baseline(name, env, seed, **options),
        name,
        {"policy": "scripted_expert" if name == "expert" else name, **config, "seed": "per episode"},
    )
