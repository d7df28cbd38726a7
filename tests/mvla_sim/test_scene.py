"""Scene specs: validation messages and reproducible layout sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mvla_sim.scene import DEFAULT_SCENE, SceneSpec, load_scene_spec, sample_layout


def test_bundled_spec_documents_every_section():
    data = json.loads(DEFAULT_SCENE.read_text())
    for section in (
        "corridor",
        "box",
        "bottle",
        "obstacle_distance_m",
        "robot",
        "start",
        "drive",
        "success",
        "randomization",
    ):
        assert data[section].get("why"), f"section {section} lacks its reason"


def test_missing_section_and_unknown_key_are_named():
    data = json.loads(DEFAULT_SCENE.read_text())
    del data["box"]
    with pytest.raises(ValueError, match="box"):
        SceneSpec.from_dict(data)
    data = json.loads(DEFAULT_SCENE.read_text())
    data["drive"]["turbo"] = 1
    with pytest.raises(ValueError, match="turbo"):
        SceneSpec.from_dict(data)


def test_missing_file_lists_shipped_specs(tmp_path):
    with pytest.raises(FileNotFoundError, match="corridor_1box.json"):
        load_scene_spec(tmp_path / "nope.json")


def test_layout_nominal_without_randomization_and_seeded_with_it():
    spec = load_scene_spec()
    nominal = sample_layout(spec, "left", "day", "far", np.random.default_rng(0), randomize=False)
    assert nominal.box_center == (spec.obstacle_distance_m["far"], 0.0)
    a = sample_layout(spec, "left", "day", "medium", np.random.default_rng(7), randomize=True)
    b = sample_layout(spec, "left", "day", "medium", np.random.default_rng(7), randomize=True)
    c = sample_layout(spec, "left", "day", "medium", np.random.default_rng(8), randomize=True)
    assert a == b and a != c
    assert abs(a.box_center[1]) <= spec.randomization["default"].box_xy_m[1]
    assert nominal.start_xy == (0.0, spec.start.lateral_offset_m) and a.randomization == "default"
    hard = sample_layout(spec, "left", "day", "medium", np.random.default_rng(7), randomize="hard")
    assert hard.randomization == "hard" and hard != a
    with pytest.raises(ValueError, match="hard"):
        sample_layout(spec, "left", "day", "medium", np.random.default_rng(7), randomize="wild")


def test_spec_requires_both_randomization_settings():
    data = json.loads(DEFAULT_SCENE.read_text())
    del data["randomization"]["hard"]
    with pytest.raises(ValueError, match="hard"):
        SceneSpec.from_dict(data)
