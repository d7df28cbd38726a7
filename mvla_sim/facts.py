"""Facts about the real Mobile VLA robot, its teleoperation keys and its data.

This module is the single home of embodiment constants (see ``../shared/FACTS.md``). It imports
nothing beyond the standard library so that policies, training and evaluation can share it
without pulling in the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

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

CLIENT_DEAD_ZONE: float = 0.1
"""The robot client drives only when ``|linear_x|`` or ``|linear_y|`` exceeds this (data units)."""


def client_command(linear_x: float, linear_y: float) -> tuple[float, float] | None:
    """What the real robot client does with an action: the direction it drives, or ``None`` (stop).

    The ROS 2 client (FACTS.md, "How the team deploys") stops unless a component exceeds
    :data:`CLIENT_DEAD_ZONE`, else drives toward ``int(degrees(atan2(linear_y, linear_x)))`` at the
    set throttle: the magnitude never sets the speed. Returns that heading as a unit vector
    ``(cos, sin)``. This is the one dead zone of the project, applied on the robot side of the loop
    (the simulator's drive) whichever policy or profile produced the action.
    """
    if not (abs(linear_x) > CLIENT_DEAD_ZONE or abs(linear_y) > CLIENT_DEAD_ZONE):
        return None
    heading = math.radians(int(math.degrees(math.atan2(linear_y, linear_x))))
    return math.cos(heading), math.sin(heading)


MOVE_KEYS: tuple[str, ...] = ("W", "Q", "A", "Z", "S", "C", "D", "E")
"""The eight planar movement keys, counter-clockwise from forward (W) in 45 degree steps."""

STOP_KEY: str = " "
"""The space bar: the all-zero action (stop)."""

STOP_CHAR: str = "_"
"""The space bar as one printable character in key strings (``"WWAQ_"``)."""

KEY_CHARS: dict[str, str] = {key: (STOP_CHAR if key == STOP_KEY else key) for key in KEY_ACTIONS}
"""Each key of :data:`KEY_ACTIONS` as its character in key strings."""

NO_KEY_CHAR: str = "?"
"""An action that is no key press (e.g. a continuous one), in key strings."""

KEY_MATCH_ATOL: float = 1e-3
"""An action matches a key when every component is within this of the key's action (data units)."""


def key_of_action(action: Iterable[float], atol: float = KEY_MATCH_ATOL) -> str | None:
    """The key of :data:`KEY_ACTIONS` whose action equals ``action``, or None when none does.

    ``action`` is ``[linear_x, linear_y]`` or ``[linear_x, linear_y, angular_z]`` (a missing
    ``angular_z`` is 0); the space bar is :data:`STOP_KEY`.
    """
    values = [float(v) for v in action][:3]
    padded = values + [0.0] * (3 - len(values))
    for key, key_action in KEY_ACTIONS.items():
        if all(abs(a - b) <= atol for a, b in zip(padded, key_action, strict=True)):
            return key
    return None


def key_char_of_action(action: Iterable[float], atol: float = KEY_MATCH_ATOL) -> str:
    """The key of ``action`` as one printable character: the key, :data:`STOP_CHAR` for the space
    bar, :data:`NO_KEY_CHAR` when it is no key press."""
    key = key_of_action(action, atol)
    return NO_KEY_CHAR if key is None else KEY_CHARS[key]


def key_of_char(char: str) -> str:
    """The key of :data:`KEY_ACTIONS` that a key-string character stands for (``_`` -> space bar).

    Raises:
        ValueError: ``char`` names no key.
    """
    for key, key_char in KEY_CHARS.items():
        if key_char == char:
            return key
    raise ValueError(f"{char!r} is no teleoperation key; valid: {''.join(KEY_CHARS.values())}")


@dataclass(frozen=True)
class RealKeySequence:
    """One key sequence the teleoperators drove for ``core`` episodes (FACTS.md's table).

    Attributes:
        side: the side of the box it passes (``"left"``/``"right"``), i.e. its scene.
        keys: the 17 key presses after ``episode_start``.
        episodes: how many real episodes the team's analysis counted with it.
        analysis: which of the team's dataset analyses reported it.
    """

    side: str
    keys: str
    episodes: int
    analysis: str

    @property
    def name(self) -> str:
        """A short label: side and the keys as run lengths, e.g. ``left W3 A1 Q8 W4 Q1``."""
        runs: list[str] = []
        for key in self.keys:
            if runs and runs[-1][0] == key:
                runs[-1] = key + str(int(runs[-1][1:]) + 1)
            else:
                runs.append(key + "1")
        return f"{self.side} {' '.join(runs)}"


REAL_KEY_SEQUENCES: tuple[RealKeySequence, ...] = (
    RealKeySequence("left", "WWWWAQQQQQQQWWWWE", 79, "2025-11-19"),
    RealKeySequence("left", "WWAQQQQQQAWWWWWWW", 10, "2025-11-19"),
    RealKeySequence("left", "WWWAAQQQQQQQWWWWW", 6, "2025-11-19"),
    RealKeySequence("left", "WWWAQQQQQQQWWWWWW", 2, "2025-11-19"),
    RealKeySequence("left", "WWWAQQQQQQQQWWWWQ", 119, "2025-11-20 (the report's dataset)"),
    RealKeySequence("left", "WWWAQQQQQQQQWWWWW", 84, "2025-11-27 (after a wheel replacement)"),
    RealKeySequence("right", "WWWDEEEEEEWWWWQQQ", 167, "2025-11-19 / 2025-11-20"),
    RealKeySequence("right", "WWWWDEEEEEEEWWWWQ", 39, "2025-11-19"),
    RealKeySequence("right", "WWWWDEEEEEWWQQQQQ", 21, "2025-11-19"),
)
"""Every accepted real key sequence of FACTS.md, with its episode count: each one ended in front
of the bottle on the real robot, so each must succeed in its own simulated scene."""

CORE_KEY_SEQUENCES: dict[str, str] = {
    "left": "WWWWAQQQQQQQWWWWE",
    "right": "WWWDEEEEEEWWWWQQQ",
}
"""One representative ``core`` sequence per side (79 left, 167 right episodes in the 2025-11-19
analysis); ``REAL_KEY_SEQUENCES`` holds them all."""


def real_key_sequences(side: str | None = None) -> tuple[RealKeySequence, ...]:
    """The real sequences of one scene (``"left"``/``"right"``), or all of them."""
    if side is not None and side not in ("left", "right"):
        raise ValueError(f"side={side!r} is not valid; choose 'left' or 'right'")
    return tuple(s for s in REAL_KEY_SEQUENCES if side is None or s.side == side)


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
