"""The robot client's rule (mvla_sim.facts.client_command): the one dead zone, on the robot side."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mvla_sim.facts import CLIENT_DEAD_ZONE, KEY_ACTION_VALUE, client_command
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
