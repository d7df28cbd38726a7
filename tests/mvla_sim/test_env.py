"""The corridor env: Gymnasium conformance, determinism, calibration against the real data, bad input."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mvla_sim
from mvla_sim.facts import (
    CORE_KEY_SEQUENCES,
    EPISODE_ACTIONS,
    INSTRUCTIONS,
    KEY_ACTIONS,
    KEY_PRESS_DURATION_S,
    key_sequence_actions,
)
from mvla_sim.make import SceneDescription, make_env
from mvla_sim.scene import load_scene_spec
from policies.scripted.baselines import make_baseline

SMALL = (64, 36)
ROOT = Path(__file__).resolve().parents[2]


def make(env_id: str = "MobileVLA-1BoxLeft-v0", **kwargs) -> gym.Env:
    kwargs.setdefault("image_size", SMALL)
    return gym.make(env_id, **kwargs)


def rollout(env: gym.Env, actions, seed: int = 0):
    obs, info = env.reset(seed=seed)
    frames, infos = [obs["image"]], [info]
    for action in actions:
        obs, _, terminated, truncated, info = env.step(np.asarray(action[:2], dtype=np.float32))
        frames.append(obs["image"])
        infos.append(info)
        if terminated or truncated:
            break
    return frames, infos


@pytest.mark.parametrize("env_id", sorted(mvla_sim.ENV_IDS.values()))
def test_check_env_passes(env_id):
    env = make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_observation_matches_real_camera_and_instruction():
    env = make("MobileVLA-1BoxRight-Evening-v0", image_size=(128, 72))
    obs, info = env.reset(seed=3)
    assert obs["image"].shape == (72, 128, 3) and obs["image"].dtype == np.uint8
    assert obs["instruction"] == INSTRUCTIONS["right"]
    assert info["scene"] == "right-evening-medium" and info["seed"] == 3 and info["renderer"] == "tiny"
    for key in (
        "is_success",
        "collided",
        "side_passed",
        "distance_to_goal",
        "path_length",
        "spl",
        "bottle_in_view",
    ):
        assert key in info
    assert set(info["layout"]) >= {
        "box_center",
        "bottle_xy",
        "corridor_half_width",
        "goal_radius",
        "start_xy",
    }


def test_same_seed_same_frames_and_infos_in_two_instances():
    actions = key_sequence_actions(CORE_KEY_SEQUENCES["left"])
    a_frames, a_infos = rollout(make(), actions, seed=11)
    b_frames, b_infos = rollout(make(), actions, seed=11)
    assert len(a_frames) == len(b_frames)
    for fa, fb in zip(a_frames, b_frames, strict=True):
        assert np.array_equal(fa, fb)
    assert a_infos == b_infos


def test_different_seeds_give_different_scenes():
    env = make()
    _, info_a = env.reset(seed=1)
    obs_a = env.unwrapped._obs_image.copy()
    _, info_b = env.reset(seed=2)
    assert info_a["layout"]["box_center"] != info_b["layout"]["box_center"]
    assert not np.array_equal(obs_a, env.unwrapped._obs_image)


_DIGEST_SCRIPT = """
import hashlib, numpy as np, gymnasium as gym, mvla_sim
from mvla_sim.facts import CORE_KEY_SEQUENCES, key_sequence_actions
env = gym.make("MobileVLA-1BoxRight-Evening-v0", image_size=(64, 36))
obs, info = env.reset(seed=5)
h = hashlib.sha256(obs["image"].tobytes())
for a in key_sequence_actions(CORE_KEY_SEQUENCES["right"]):
    obs, r, te, tr, info = env.step(np.asarray(a[:2], dtype=np.float32))
    h.update(obs["image"].tobytes()); h.update(repr(sorted(info.items())).encode())
print("DIGEST", h.hexdigest())
"""


def _digest_in_subprocess() -> str:
    out = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], capture_output=True, text=True, check=True)
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("DIGEST"))


def test_same_seed_same_frames_in_two_processes():
    env = make("MobileVLA-1BoxRight-Evening-v0")
    obs, info = env.reset(seed=5)
    h = hashlib.sha256(obs["image"].tobytes())
    for a in key_sequence_actions(CORE_KEY_SEQUENCES["right"]):
        obs, _, _, _, info = env.step(np.asarray(a[:2], dtype=np.float32))
        h.update(obs["image"].tobytes())
        h.update(repr(sorted(info.items())).encode())
    assert _digest_in_subprocess() == h.hexdigest() == _digest_in_subprocess()


@pytest.mark.parametrize("distance", ["close", "medium", "far"])
def test_expert_succeeds_at_every_distance(distance):
    for env_id in ("MobileVLA-1BoxLeft-v0", "MobileVLA-1BoxRight-Evening-v0"):
        env = make(env_id, obstacle_distance=distance)
        expert = make_baseline("expert", env, seed=0)
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            expert.reset(obs["instruction"])
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                done = terminated or truncated
            assert info["is_success"], (env_id, distance, seed, info)
            assert 0.0 < info["spl"] <= 1.0


def _step_m(key: str) -> float:
    drive = load_scene_spec().drive
    speed = {"W": drive.forward_speed_mps, "A": drive.strafe_speed_mps, "Q": drive.diagonal_speed_mps}[key]
    return speed * KEY_PRESS_DURATION_S


def test_throttle_drive_ignores_magnitude_and_has_the_robot_clients_dead_zone():
    env = make(randomize=False)
    env.reset(seed=0)
    env.step(np.array([0.5, 0.0], dtype=np.float32))
    x_half = env.unwrapped.robot.pose.x
    env.reset(seed=0)
    env.step(np.array([1.15, 0.0], dtype=np.float32))
    assert env.unwrapped.robot.pose.x == pytest.approx(x_half) == pytest.approx(_step_m("W"), abs=1e-3)
    for small in ([0.1, 0.05], [0.09, -0.1], [-0.05, 0.0]):  # the robot client's dead zone: stop
        env.reset(seed=0)
        env.step(np.array(small, dtype=np.float64))
        assert env.unwrapped.robot.pose.x == 0.0 and env.unwrapped.robot.pose.y == 0.0, small
    env.reset(seed=0)
    env.step(np.array([0.12, 0.0]))  # one component over 0.1: a whole key press, as on the robot
    assert env.unwrapped.robot.pose.x == pytest.approx(_step_m("W"), abs=1e-3)


def test_throttle_drive_has_a_calibrated_speed_per_key_direction():
    env = make(randomize=False)
    env.reset(seed=0)
    steps = env.unwrapped.key_steps_m()
    assert steps["W"] == pytest.approx((_step_m("W"), 0.0))
    assert steps["S"] == pytest.approx((-_step_m("W"), 0.0))
    assert steps["A"] == pytest.approx((0.0, _step_m("A")))
    assert steps["D"] == pytest.approx((0.0, -_step_m("A")))
    diag = _step_m("Q") / np.sqrt(2)
    assert steps["Q"] == pytest.approx((diag, diag)) and steps["E"] == pytest.approx((diag, -diag))
    for key, (dx, dy) in steps.items():
        env.reset(seed=0)
        x0, y0 = env.unwrapped.robot.pose.x, env.unwrapped.robot.pose.y
        env.step(np.asarray(KEY_ACTIONS[key][:2], dtype=np.float32))
        moved = (env.unwrapped.robot.pose.x - x0, env.unwrapped.robot.pose.y - y0)
        assert moved == pytest.approx((dx, dy), abs=1e-9), key
    drive = load_scene_spec().drive
    between = drive.speed_mps(np.radians(22.5))
    assert between == pytest.approx((drive.forward_speed_mps + drive.diagonal_speed_mps) / 2)


def test_velocity_drive_is_proportional():
    env = make(randomize=False, drive_model="velocity")
    env.reset(seed=0)
    env.step(np.array([0.575, 0.0], dtype=np.float32))
    assert env.unwrapped.robot.pose.x == pytest.approx(_step_m("W") / 2, abs=1e-3)


def test_three_vector_action_and_clipping_accepted():
    env = make(randomize=False)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([5.0, 0.0, 0.0]))
    assert info["robot_xy"][0] == pytest.approx(_step_m("W"), abs=1e-3)


def test_min_clearance_is_the_footprint_gap_and_zero_on_collision():
    spec = load_scene_spec()
    env = make(randomize=False)
    _, info = env.reset(seed=0)
    box_x = spec.obstacle_distance_m["medium"]
    gap_to_box = box_x - spec.box.half_extents_m[0] - spec.robot.half_extents_m[0]
    gap_to_wall = spec.corridor.half_width_m - spec.robot.half_extents_m[1]
    gap_to_back_wall = -spec.corridor.x_min_m - spec.robot.half_extents_m[0]
    assert info["min_clearance_m"] == pytest.approx(min(gap_to_box, gap_to_wall, gap_to_back_wall))
    _, infos = rollout(env, [KEY_ACTIONS["W"]] * 17)
    assert (
        infos[-1]["collided"]
        and infos[-1]["min_clearance_m"] == 0.0
        and infos[-1]["min_clearance_to"] == "box"
    )


def test_randomization_settings_hard_is_wider_and_unknown_is_refused():
    spec = load_scene_spec()
    default, hard = spec.randomization["default"], spec.randomization["hard"]
    assert hard.box_xy_m[0] > default.box_xy_m[0] and hard.speed_scale[1] > default.speed_scale[1]
    env = make(randomization="hard")
    _, info = env.reset(seed=3)
    assert info["randomization"] == "hard" and info["layout"]["randomization"] == "hard"
    speed = info["layout"]["speed_scale"]
    assert hard.speed_scale[0] <= speed <= hard.speed_scale[1]
    _, info = make(randomize=False, randomization="hard").reset(seed=3)
    assert info["randomization"] == "none"
    with pytest.raises(ValueError, match="default"):
        make(randomization="extreme")


@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(4), "shape"),
        (np.zeros((2, 1)), "shape"),
        (np.array([np.nan, 0.0]), "finite"),
        (np.array([np.inf, 0.0]), "finite"),
    ],
)
def test_bad_actions_raise_value_error(action, message):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


@pytest.mark.parametrize(
    "kwargs, valid",
    [
        ({"obstacle_distance": "near"}, "close"),
        ({"drive_model": "pid"}, "throttle"),
        ({"renderer": "optix"}, "tiny"),
        ({"image_size": (10, 5)}, "between"),
    ],
)
def test_unknown_scene_option_fails_at_make_with_valid_choices(kwargs, valid):
    with pytest.raises(ValueError, match=valid):
        make(**kwargs)


def test_unknown_keyword_lists_valid_options():
    with pytest.raises(TypeError, match="obstacle_distance"):
        make(obstacle_distanse="far")


def test_render_is_camera_beside_top_down_map_with_even_size():
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([1.15, 0.0], dtype=np.float32))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3
    assert frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0
    assert frame.shape[1] > frame.shape[0] * 16 / 9  # wider than the camera view alone


def test_evening_is_darker_and_warmer_than_day():
    day, _ = make("MobileVLA-1BoxLeft-v0", randomize=False).reset(seed=0)
    eve, _ = make("MobileVLA-1BoxLeft-Evening-v0", randomize=False).reset(seed=0)
    d, e = day["image"].astype(float), eve["image"].astype(float)
    assert e.mean() < 0.75 * d.mean()
    assert e[..., 0].mean() / e[..., 2].mean() > d[..., 0].mean() / d[..., 2].mean()


def test_terminate_on_success_ends_early():
    env = make(randomize=False, terminate_on_success=True, max_steps=30, max_episode_steps=30)
    _, infos = rollout(env, key_sequence_actions(CORE_KEY_SEQUENCES["right"]) + [(0, 0, 0)] * 5)
    env_r = make_env("MobileVLA-1BoxRight-v0", randomization="none", image_size=SMALL, max_steps=30)
    env_r.unwrapped.terminate_on_success = True
    _, infos_r = rollout(env_r, key_sequence_actions(CORE_KEY_SEQUENCES["right"]) + [(0, 0, 0)] * 5)
    assert infos_r[-1]["is_success"] and infos_r[-1]["steps"] <= 17
    assert not infos[-1]["is_success"] and infos[-1]["steps"] == 22  # wrong side: runs to the limit


def test_env_never_imports_torch_or_policies():
    code = (
        "import sys, gymnasium as gym, numpy as np, mvla_sim\n"
        "env = gym.make('MobileVLA-1BoxLeft-v0', image_size=(32, 18), render_mode='rgb_array')\n"
        "env.reset(seed=0); env.step(np.zeros(2, dtype=np.float32)); env.render()\n"
        "bad = [m for m in ('torch', 'policies', 'train', 'eval', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_docstring_example_runs():
    import doctest

    import mvla_sim.env

    result = doctest.testmod(mvla_sim.env, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_ids_carry_the_real_protocols_step_limit_unless_overridden():
    for env_id in mvla_sim.ENV_IDS.values():
        assert gym.spec(env_id).max_episode_steps == EPISODE_ACTIONS
    env = make_env("MobileVLA-1BoxLeft-v0", image_size=SMALL, max_steps=20)
    assert env.spec.max_episode_steps == 20 and env.unwrapped.max_steps == 20
    env.reset(seed=0)
    steps = 0
    truncated = False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(2))  # stop: never collides
        steps += 1
        assert not terminated
    assert steps == 20


def test_reset_options_give_the_nominal_layout_for_one_episode():
    env = make()
    _, info = env.reset(seed=3)
    assert info["layout"]["randomization"] == "default"
    _, nominal = env.reset(seed=3, options={"nominal": True})
    _, none = env.reset(seed=5, options={"randomization": "none"})
    assert nominal["layout"] == none["layout"] and nominal["layout"]["randomization"] == "none"
    _, again = env.reset(seed=3)
    assert again["layout"] == info["layout"]  # the option lasted one episode
    with pytest.raises(ValueError, match="unknown key.*'layout'"):
        env.reset(options={"layout": "x"})
    with pytest.raises(ValueError, match="'extreme'"):
        env.reset(options={"randomization": "extreme"})


def test_import_of_facts_pulls_in_neither_gymnasium_nor_pybullet():
    code = "import sys, mvla_sim.facts; print(sorted(m for m in ('gymnasium', 'pybullet', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    code = "import mvla_sim, gymnasium; print('MobileVLA-1BoxLeft-v0' in gymnasium.registry)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().endswith("True")  # registered the moment gymnasium was imported


def test_scene_description_refuses_what_the_env_refuses():
    with pytest.raises(ValueError, match="image_size"):
        SceneDescription(image_size=(8, 4))
    with pytest.raises(ValueError, match="randomization='wild'"):
        SceneDescription(randomization="wild")
    with pytest.raises(ValueError, match="drive_model"):
        SceneDescription(drive_model="tank")
    scene = SceneDescription.from_id("MobileVLA-1BoxRight-Evening-v0", randomization="hard")
    assert (scene.side, scene.lighting, scene.env_id) == (
        "right",
        "evening",
        "MobileVLA-1BoxRight-Evening-v0",
    )
    env = make_env(scene, image_size=SMALL, lens_distortion=0.15, drive_model="velocity")
    u = env.unwrapped
    assert (u.randomization, u.drive_model, u.camera.lens_distortion) == ("hard", "velocity", 0.15)
