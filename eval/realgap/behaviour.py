"""The behaviour gap: a checkpoint's open-loop actions on real windows vs the paired simulated ones.

Open loop, under the checkpoint's profile (``as_trained`` by default: what the model saw in
training; ``VLAPolicy.trace``): the model reads the episode's frames one by one from its
``episode_start`` frame, as in training, and answers an action at every step; once on the real
frames and once on the paired simulated frames. Per step, an action's **key class** is the
teleoperation key (``mvla_sim.facts.MOVE_KEYS``: 8 directions, 45 degrees apart) nearest to its
direction, or ``space`` (stop) when the robot client would not drive it: both as
``mvla_sim.facts.client_command`` decides (the project's one dead zone); the team's "direction
accuracy" classes. Reported:

- ``direction_agreement``: fraction of steps where real and sim actions have the same key class;
- ``mean_abs_diff``: mean |real - sim| over steps and both components (data units);
- ``real_vs_recorded`` / ``sim_vs_recorded``: fraction of key presses (frames after
  ``episode_start``) where each one's key class equals the recorded key's.
Identical windows give agreement 1 and difference 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mvla_sim.facts import MOVE_KEYS, client_command

STOP = "space"


def key_class(action: np.ndarray | list[float]) -> str:
    """The key nearest to the direction the robot client drives ``action`` in, or ``"space"``."""
    command = client_command(float(action[0]), float(action[1]))
    if command is None:
        return STOP
    sector = round(math.degrees(math.atan2(command[1], command[0])) / 45.0) % len(MOVE_KEYS)
    return MOVE_KEYS[sector]


def behaviour_gap(
    real_actions: np.ndarray, sim_actions: np.ndarray, recorded: np.ndarray | None
) -> dict[str, Any]:
    """Agreement of two action sequences (T, 2), and each one's with the recorded actions (T, >=2)."""
    n = min(len(real_actions), len(sim_actions))
    real_k = [key_class(a) for a in real_actions[:n]]
    sim_k = [key_class(a) for a in sim_actions[:n]]
    out: dict[str, Any] = {
        "steps": n,
        "direction_agreement": float(np.mean([a == b for a, b in zip(real_k, sim_k, strict=True)]))
        if n
        else None,
        "mean_abs_diff": float(np.abs(real_actions[:n, :2] - sim_actions[:n, :2]).mean()) if n else None,
        "real_keys": "".join(k if k != STOP else "_" for k in real_k),
        "sim_keys": "".join(k if k != STOP else "_" for k in sim_k),
    }
    if recorded is not None and n > 1:
        rec_k = [key_class(a) for a in recorded[1:n]]
        out["recorded_keys"] = "".join(k if k != STOP else "_" for k in rec_k)
        out["real_vs_recorded"] = float(np.mean([a == b for a, b in zip(real_k[1:], rec_k, strict=True)]))
        out["sim_vs_recorded"] = float(np.mean([a == b for a, b in zip(sim_k[1:], rec_k, strict=True)]))
    return out


def trace_actions(policy: Any, frames: np.ndarray, instruction: str) -> np.ndarray:
    """The policy's open-loop actions float32 (T, 2) over ``frames`` (``VLAPolicy.trace``)."""
    return np.asarray(policy.trace(frames, instruction)["actions"], dtype=np.float32)
