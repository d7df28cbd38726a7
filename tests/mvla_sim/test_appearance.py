"""Appearance as data: loading, validation, the v0 look kept by name, in-place changes, geometry untouched."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import mvla_sim
from mvla_sim.appearance import (
    MATERIALS,
    Appearance,
    CameraResponse,
    bundled_appearances,
    get_value,
    load_appearance,
    tone,
    with_values,
)
from mvla_sim.scene import load_scene_spec

SIZE = (96, 54)


def test_bundled_appearances_load_and_round_trip():
    assert {"default", "v0_tiles"} <= set(bundled_appearances())
    for name in ("default", "v0_tiles"):
        look = load_appearance(name)
        assert set(look.materials) == set(MATERIALS)
        assert Appearance.from_dict(look.to_dict()) == look


def test_v0_tiles_keeps_the_scene_specs_old_colours_and_lights():
    spec, v0 = load_scene_spec(), load_appearance("v0_tiles")
    assert v0.lighting == spec.lighting
    assert v0.materials["bottle"].rgb == spec.bottle.color_rgb
    assert v0.materials["cap"].rgb == spec.bottle.cap_color_rgb
    assert v0.materials["cable"].rgb == spec.cable.color_rgb
    assert v0.materials["floor"].tile_m == (spec.corridor.tile_size_m,) * 2
    assert v0.camera == CameraResponse()


def test_default_follows_facts_description():
    look = load_appearance()
    assert look.name == "default"
    assert look.materials["floor"].texture == "terrazzo" and look.tape_marks_m
    assert look.camera.lens_distortion > 0 and look.camera.jpeg_quality > 0
    day = look.lighting["day"]
    assert day.white_balance_rgb[0] > day.white_balance_rgb[2]  # slightly warm
    assert day.exposure < load_appearance("v0_tiles").lighting["day"].exposure  # moderate, darker than v0


def test_bad_appearances_fail_with_one_clear_line(tmp_path):
    data = load_appearance().to_dict()
    with pytest.raises(ValueError, match="unknown keys"):
        Appearance.from_dict({**data, "camera": {"gama": 1.0}})
    data["materials"]["floor"]["texture"] = "no_such_texture"
    with pytest.raises(ValueError, match="texture 'no_such_texture' not found"):
        Appearance.from_dict(data)
    with pytest.raises(FileNotFoundError, match="default"):
        load_appearance(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="no numeric field"):
        with_values(load_appearance(), {"camera.nothing": 1.0})


def test_with_values_changes_only_the_named_numbers():
    base = load_appearance()
    new = with_values(base, {"camera.gamma": 1.3, "lighting.day.white_balance_rgb.2": 0.8})
    assert get_value(new, "camera.gamma") == 1.3 and new.lighting["day"].white_balance_rgb[2] == 0.8
    assert new.materials == base.materials and new.lighting["evening"] == base.lighting["evening"]


def test_neutral_camera_response_is_the_identity():
    img = np.random.default_rng(0).uniform(0, 255, (9, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(tone(img.copy(), CameraResponse(), None), img)


def _frames(env: gym.Env) -> np.ndarray:
    obs, _ = env.reset(seed=3)
    frames = [obs["image"]]
    for _ in range(2):
        obs, *_ = env.step(np.array([1.15, 0.0], np.float32))
        frames.append(obs["image"])
    return np.stack(frames)


def test_set_appearance_gives_the_frames_of_a_new_env_and_leaves_geometry_alone():
    target = with_values(
        load_appearance(), {"camera.lens_distortion": 0.1, "lighting.day.exposure": 0.7}, name="t"
    )
    fresh = gym.make(mvla_sim.env_id("left", "day"), image_size=SIZE, appearance=target)
    reused = gym.make(mvla_sim.env_id("left", "day"), image_size=SIZE)
    try:
        expected = _frames(fresh)
        reused.unwrapped.set_appearance(target)
        np.testing.assert_array_equal(_frames(reused), expected)
        _, info = reused.reset(seed=0)
        assert info["appearance"] == "t"
        spec = reused.unwrapped.spec_scene
        for part in ("corridor", "robot", "box", "bottle", "drive", "success", "start"):
            assert getattr(spec, part) == getattr(load_scene_spec(), part)
    finally:
        fresh.close()
        reused.close()


def test_set_appearance_refuses_other_textures():
    env = gym.make(mvla_sim.env_id("left", "day"), image_size=SIZE)
    try:
        with pytest.raises(ValueError, match="build a new env"):
            env.unwrapped.set_appearance("v0_tiles")
    finally:
        env.close()


def test_appearances_look_different_but_from_the_same_poses(tmp_path):
    data = load_appearance().to_dict()
    data["name"] = "from_file"
    path = tmp_path / "look.json"
    path.write_text(json.dumps(data))
    frames = {}
    for look in ("v0_tiles", "default", str(path)):
        env = gym.make(mvla_sim.env_id("right", "day"), image_size=SIZE, randomize=False, appearance=look)
        frames[look] = _frames(env)
        env.close()
    assert np.abs(frames["v0_tiles"].astype(int) - frames["default"]).mean() > 10
    np.testing.assert_array_equal(frames["default"], frames[str(path)])
