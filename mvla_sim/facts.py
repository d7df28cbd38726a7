"""Facts about the real Mobile VLA robot, its teleoperation keys and its data.

This module is the single home of embodiment constants (see ``../shared/FACTS.md``). It imports
nothing beyond the standard library so that policies, training and evaluation can share it
without pulling in the simulator.
"""

from __future__ import annotations

KEY_ACTION_VALUE: float = 1.15
"""Magnitude written per axis by a teleoperation key press (data units)."""

ACTION_LOW: float = -KEY_ACTION_VALUE
ACTION_HIGH: float = KEY_ACTION_VALUE

KEY_PRESS_DURATION_S: float = 0.4
"""Each key press drives the base for 0.4 s, then a stop is sent."""

EPISODE_ACTIONS: int = 17
"""Key presses per episode in the real protocol (18 frames with ``episode_start``)."""

EPISODE_FRAMES: int = EPISODE_ACTIONS + 1

CAMERA_NATIVE_SIZE: tuple[int, int] = (1280, 720)
"""Real CSI camera resolution as (width, height)."""

KEY_ACTIONS: dict[str, tuple[float, float, float]] = {
    "W": (+KEY_ACTION_VALUE, 0.0, 0.0),
    "S": (-KEY_ACTION_VALUE, 0.0, 0.0),
    "A": (0.0, +KEY_ACTION_VALUE, 0.0),
    "D": (0.0, -KEY_ACTION_VALUE, 0.0),
    "Q": (+KEY_ACTION_VALUE, +KEY_ACTION_VALUE, 0.0),
    "E": (+KEY_ACTION_VALUE, -KEY_ACTION_VALUE, 0.0),
    "Z": (-KEY_ACTION_VALUE, +KEY_ACTION_VALUE, 0.0),
    "C": (-KEY_ACTION_VALUE, -KEY_ACTION_VALUE, 0.0),
    "R": (0.0, 0.0, +KEY_ACTION_VALUE),
    "T": (0.0, 0.0, -KEY_ACTION_VALUE),
    " ": (0.0, 0.0, 0.0),
}
"""Teleoperation key -> [linear_x, linear_y, angular_z]; +y is left, +angular_z is CCW."""

CORE_KEY_SEQUENCES: dict[str, str] = {
    "left": "WWWWAQQQQQQQWWWWE",
    "right": "WWWDEEEEEEWWWWQQQ",
}
"""The most common ``core`` key sequences of the real data (79 left, 167 right episodes)."""

INSTRUCTIONS: dict[str, str] = {
    "left": "Navigate around obstacles and reach the front of the beverage bottle on the left",
    "right": "Navigate around obstacles and reach the front of the beverage bottle on the right",
}
"""The exact English instruction strings of the real data, keyed by the side to pass the box."""

INSTRUCTION_KO: str = "장애물을 피해 음료수 페트병 앞으로 도착해라"

SIDES: tuple[str, ...] = ("left", "right")
LIGHTINGS: tuple[str, ...] = ("day", "evening")
OBSTACLE_DISTANCES: tuple[str, ...] = ("close", "medium", "far")

EVENT_EPISODE_START = "episode_start"
EVENT_START_ACTION = "start_action"
EVENT_STOP_ACTION = "stop_action"


def side_of_instruction(instruction: str) -> str:
    """Return ``"left"`` or ``"right"``: the side named by an instruction string.

    Raises:
        ValueError: if the instruction names neither or both sides.
    """
    text = instruction.lower()
    has_left, has_right = "left" in text, "right" in text
    if has_left == has_right:
        raise ValueError(
            f"instruction {instruction!r} must name exactly one side ('left' or 'right'); "
            f"use one of {list(INSTRUCTIONS.values())}"
        )
    return "left" if has_left else "right"


def mirror_instruction(instruction: str) -> str:
    """Swap ``left`` and ``right`` in an instruction (left/right mirror augmentation)."""
    side = side_of_instruction(instruction)
    other = "right" if side == "left" else "left"
    return instruction.replace(side, other)


def key_sequence_actions(keys: str) -> list[tuple[float, float, float]]:
    """Translate a key string such as ``"WWAQ"`` into a list of 3-D actions."""
    unknown = sorted({k for k in keys if k not in KEY_ACTIONS})
    if unknown:
        raise ValueError(f"unknown teleoperation keys {unknown}; valid keys are {sorted(KEY_ACTIONS)}")
    return [KEY_ACTIONS[k] for k in keys]
