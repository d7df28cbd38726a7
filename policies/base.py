"""The policy contracts shared by every controller.

- :class:`Policy`: one episode at a time, ``reset(instruction)`` then ``act(obs)``;
- :class:`BatchPolicy`: N live episodes at once, ``start_episode(instruction)`` per episode, then
  ``act_batch(episodes, observations)`` per step (one forward for all of them); each episode
  keeps its own state (history, feature cache, random generator), so the actions equal those of
  N separate policies;
- :class:`PerEpisodeBatch`: the batched contract for controllers with nothing to batch (the
  scripted expert and the baselines): one single-episode policy per episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """A closed-loop controller for the Mobile VLA env.

    ``obs`` is the env's observation: ``{"image": uint8 (H, W, 3) RGB, "instruction": str}``.
    ``act`` returns a float32 array of shape (2,): ``[linear_x, linear_y]`` in data units
    (the env clips to [-1.15, 1.15]).
    """

    name: str

    def reset(self, instruction: str) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...

    def settings(self) -> dict[str, Any]:
        """The settings in force (recorded with every evaluation result)."""
        ...


@runtime_checkable
class BatchPolicy(Protocol):
    """A controller acting for N live episodes at once, each with its own state.

    ``start_episode`` returns an opaque episode state; ``act_batch`` takes any subset of the live
    episodes (in any order, at any step of their own) with one observation each and returns
    float32 ``[N, 2]`` actions, advancing each episode by one step. ``seed`` seeds an episode's
    own randomness (the random baseline, the expert's guide); ``env`` is the episode's env, for
    privileged controllers (the scripted expert reads its ground truth).
    """

    name: str

    def start_episode(self, instruction: str, *, seed: int = 0, env: Any = None) -> Any: ...

    def act_batch(self, episodes: Sequence[Any], observations: Sequence[dict[str, Any]]) -> np.ndarray: ...

    def settings(self) -> dict[str, Any]: ...


class PerEpisodeBatch:
    """:class:`BatchPolicy` over single-episode policies: ``make(seed, env)`` builds one per episode.

    For controllers whose step is a few arithmetic operations (nothing to batch): an episode is
    its own :class:`Policy`, reset with the instruction, and ``act_batch`` asks each in turn.
    """

    def __init__(self, make: Callable[[int, Any], Policy], name: str, settings: dict[str, Any]) -> None:
        self.make = make
        self.name = name
        self._settings = dict(settings)

    def start_episode(self, instruction: str, *, seed: int = 0, env: Any = None) -> Policy:
        policy = self.make(seed, env)
        policy.reset(instruction)
        return policy

    def act_batch(self, episodes: Sequence[Policy], observations: Sequence[dict[str, Any]]) -> np.ndarray:
        if len(episodes) != len(observations):
            raise ValueError(f"act_batch got {len(episodes)} episodes and {len(observations)} observations")
        actions = [
            np.asarray(p.act(o), dtype=np.float32).ravel()
            for p, o in zip(episodes, observations, strict=True)
        ]
        return np.stack(actions) if actions else np.zeros((0, 2), dtype=np.float32)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)


__all__ = ["BatchPolicy", "PerEpisodeBatch", "Policy"]
