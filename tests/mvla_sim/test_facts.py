"""``mvla_sim.facts``: the robot client's rule (``client_command``: the one dead zone, on the robot
side), the key/action table read both ways, and the module's stdlib-only promise."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import mvla_sim.facts as facts
from mvla_sim.facts import (
    CLIENT_DEAD_ZONE,
    KEY_ACTION_VALUE,
    KEY_ACTIONS,
    KEY_CHARS,
    NO_KEY_CHAR,
    STOP_CHAR,
    STOP_KEY,
    client_command,
    key_char_of_action,
    key_of_action,
    key_of_char,
    key_sequence_actions,
)
from mvla_sim.robot import body_velocity
from mvla_sim.scene import load_scene_spec


@pytest.mark.parametrize("action", [(0.0, 0.0), (0.1, -0.1), (-0.05, 0.09), (CLIENT_DEAD_ZONE, 0.0)])
def test_client_stops_unless_a_component_exceeds_the_dead_zone(action):
    assert client_command(*action) is None


@pytest.mark.parametrize(
    ("action", "degrees"),
    [
        ((1.0, 0.0), 0),
        ((0.0, 0.5), 90),
        ((0.5, 0.5), 45),
        ((-0.3, 0.0), 180),
        ((0.6, 0.355), 30),  # 30.6 degrees, rounded toward zero as int() does
        ((0.6, -0.355), -30),
        ((0.12, 0.0), 0),  # a small action over the dead zone is a whole key press
    ],
)
def test_client_drives_toward_whole_degrees_whatever_the_magnitude(action, degrees):
    rad = math.radians(degrees)
    assert client_command(*action) == pytest.approx((math.cos(rad), math.sin(rad)), abs=1e-12)


@pytest.mark.parametrize("drive_model", ["throttle", "velocity"])
def test_both_drive_models_stop_inside_the_clients_dead_zone(drive_model):
    drive = load_scene_spec().drive
    assert body_velocity(np.array([0.1, 0.05, 0.0]), drive_model, drive, 50.0, 1.0) == (0.0, 0.0, 0.0)
    vx, vy, _ = body_velocity(np.array([0.12, 0.0, 0.0]), drive_model, drive, 50.0, 1.0)
    assert vx > 0.0 and vy == 0.0
    full = body_velocity(np.array([KEY_ACTION_VALUE, 0.0, 0.0]), drive_model, drive, 50.0, 1.0)
    assert (vx == pytest.approx(full[0])) == (drive_model == "throttle")  # throttle: direction only


@pytest.mark.parametrize("key", sorted(KEY_ACTIONS))
def test_every_key_round_trips(key: str) -> None:
    action = KEY_ACTIONS[key]
    assert key_of_action(action) == key
    assert key_of_action(np.asarray(action, dtype=np.float32)) == key
    assert key_of_char(key_char_of_action(action)) == key


def test_planar_actions_and_the_stop_key() -> None:
    k = KEY_ACTION_VALUE
    assert key_of_action([k, -k]) == "E"
    assert key_of_action([0.0, 0.0]) == STOP_KEY
    assert key_char_of_action([0.0, 0.0]) == STOP_CHAR
    assert key_char_of_action([0.7, 0.2]) == NO_KEY_CHAR
    assert key_of_action([0.7, 0.2]) is None
    assert key_of_action([k + 0.01, 0.0]) is None
    assert key_of_action([k + 0.01, 0.0], atol=0.02) == "W"


def test_key_strings_read_back() -> None:
    keys = "WWAQ_"
    assert "".join(key_char_of_action(a) for a in key_sequence_actions(keys[:-1])) == keys[:-1]
    assert [key_of_char(c) for c in keys] == ["W", "W", "A", "Q", STOP_KEY]
    assert set(KEY_CHARS) == set(KEY_ACTIONS)
    with pytest.raises(ValueError, match="no teleoperation key"):
        key_of_char("X")


def test_facts_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(facts.__file__).read_text(encoding="utf-8"))
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules


def _constants(value: object) -> list[str]:
    """``file:line`` of every literal equal to ``value`` in the code of the packages (not docstrings)."""
    repo = Path(facts.__file__).resolve().parents[1]
    found = []
    for folder in ("mvla_sim", "policies", "train", "eval", "benchmarks"):
        for path in sorted((repo / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and type(node.value) is type(value) and node.value == value:
                    found.append(f"{path.relative_to(repo)}:{node.lineno}")
    return found


def test_the_action_bound_is_written_once() -> None:
    assert [where.split(":")[0] for where in _constants(1.15)] == ["mvla_sim/facts.py"]
