"""The policy contract shared by every controller: ``reset(instruction)`` then ``act(obs)``."""

from __future__ import annotations

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
