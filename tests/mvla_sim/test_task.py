"""The one outcome taxonomy (mvla_sim.task), as the env reports it and as eval reads it."""

from __future__ import annotations

import numpy as np
import pytest

import mvla_sim  # noqa: F401  (registers the ids)
from mvla_sim.facts import key_sequence_actions, real_key_sequences
from mvla_sim.make import SceneDescription, make_env
from mvla_sim.task import OUTCOMES, episode_outcome, outcome_from_info

BASE = dict(success=False, collided=False, side_passed="left", instructed_side="left", near_goal=False)


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"success": True}, "success"),
        ({"collided": True, "side_passed": "right"}, "collision"),
        ({"side_passed": "none"}, "box_not_passed"),
        ({"side_passed": "right"}, "wrong_side"),
        ({"near_goal": True, "bottle_in_view": False}, "bottle_not_in_view"),
        ({"near_goal": False, "bottle_in_view": False}, "goal_not_reached"),  # far away: not a view problem
        ({"near_goal": True, "bottle_in_view": True}, "goal_not_reached"),
    ],
)
def test_first_matching_outcome_wins(changes, outcome):
    args = {**BASE, "bottle_in_view": True, **changes}
    assert episode_outcome(**args) == outcome
    assert outcome in OUTCOMES


def test_info_fields_are_judged_by_the_same_rule_when_an_env_gives_no_outcome():
    info = {
        "is_success": False,
        "collided": False,
        "side_passed": "left",
        "near_goal": True,
        "bottle_in_view": False,
    }
    assert outcome_from_info(info, "left") == "bottle_not_in_view"
    assert (
        outcome_from_info({**info, "outcome": "collision"}, "left") == "collision"
    )  # the env's own word wins


def _drive(env, keys):
    env.reset(seed=0)
    info = {}
    for action in key_sequence_actions(keys):
        _, _, terminated, truncated, info = env.step(np.asarray(action[:2]))
        if terminated or truncated:
            break
    return info


def test_env_reports_the_outcome_only_at_the_end():
    env = make_env(SceneDescription("left", randomization="none", image_size=(32, 18)))
    try:
        env.reset(seed=0)
        _, _, _, _, info = env.step(np.array([1.15, 0.0]))
        assert info["outcome"] is None
        sequence = real_key_sequences("left")[0].keys
        assert _drive(env, sequence)["outcome"] == "success"
        assert _drive(env, "W" * 17)["outcome"] == "collision"
        assert _drive(env, sequence.replace("A", "D").replace("Q", "E"))["outcome"] == "wrong_side"
        assert _drive(env, " " * 17)["outcome"] == "box_not_passed"
    finally:
        env.close()
