"""``--policy-option KEY=VALUE`` parsing, and the default profile named once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from policies.options import parse_key_values
from policies.vla.profiles import DEFAULT_PROFILE, PROFILES

REPO = Path(__file__).resolve().parents[2]


def test_values_are_json_when_they_parse_else_strings() -> None:
    got = parse_key_values(
        ["device=cuda", "dead_zone=0.1", " merge_lora =true", "era=null", "x=[1, 2]", "s="]
    )
    assert got == {"device": "cuda", "dead_zone": 0.1, "merge_lora": True, "era": None, "x": [1, 2], "s": ""}
    assert parse_key_values(["gain=1", "gain=2"]) == {"gain": 2}


@pytest.mark.parametrize("item", ["device", "=cuda", " =1"])
def test_an_item_without_key_or_equals_names_the_flag(item: str) -> None:
    with pytest.raises(ValueError, match=r"^--serve-option .*give KEY=VALUE"):
        parse_key_values([item], flag="--serve-option")


def test_the_default_profile_is_named_once() -> None:
    assert DEFAULT_PROFILE in PROFILES
    found = []
    for folder in ("policies", "train", "eval", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value == DEFAULT_PROFILE:
                    found.append(str(path.relative_to(REPO)))
    assert found == ["policies/vla/profiles.py"]
