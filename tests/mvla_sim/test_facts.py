"""The key/action table of ``mvla_sim.facts`` read both ways, and the module's stdlib-only promise."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

import mvla_sim.facts as facts
from mvla_sim.facts import (
    KEY_ACTION_VALUE,
    KEY_ACTIONS,
    KEY_CHARS,
    NO_KEY_CHAR,
    STOP_CHAR,
    STOP_KEY,
    key_char_of_action,
    key_of_action,
    key_of_char,
    key_sequence_actions,
)


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
    assert _constants(1.15) == ["mvla_sim/facts.py:13"]
