"""Every episode layout the team writes (collector, v3, v5): one reader, detection from the keys,
the same ``Episode`` back, colour order and instruction source recorded per file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from mvla_sim.facts import INSTRUCTIONS
from train.episodes import (
    EPISODE_LAYOUTS,
    EpisodeFormatError,
    read_episode,
    read_frames,
    write_episode,
)
from train.generate import GenerateConfig, generate_episodes
from train.generate import main as generate_main

RAW_KEYS = {
    "collector": ({"images", "actions", "action_event_types", "language_instruction"}, False),
    "v3": ({"images", "actions", "action_event_types"}, True),
    "v5": ({"observations", "observations/images", "actions", "language_instruction"}, False),
}
"""Per layout: the HDF5 paths the writer creates, and whether the instruction is ``attrs['task']``."""

INSTRUCTION_SOURCES = {
    "collector": "language_instruction",
    "v3": "attrs['task']",
    "v5": "language_instruction",
}


def small_config(out: Path, **overrides: object) -> GenerateConfig:
    """Quick noise-free runs with 64 x 36 frames (failures kept, so every index is written)."""
    return GenerateConfig(out=out, image_size=(64, 36), noise=0.0, keep_failures=True, seed=7, **overrides)  # type: ignore[arg-type]


def _paths(f: h5py.File) -> set[str]:
    names: set[str] = set()
    f.visit(names.add)
    return names


def _assert_same_episode(a, b) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.event_types == b.event_types
    assert a.instruction == b.instruction
    assert a.image_shape == b.image_shape and a.channel_order == b.channel_order
    assert a.attrs.keys() == b.attrs.keys()
    for key in a.attrs:
        np.testing.assert_array_equal(np.asarray(a.attrs[key]), np.asarray(b.attrs[key]), err_msg=key)


@pytest.mark.parametrize("layout", EPISODE_LAYOUTS)
@pytest.mark.parametrize("channel_order", ["rgb", "bgr"])
def test_each_layout_round_trips_to_the_same_episode(tmp_path, episode_factory, layout, channel_order):
    episode = episode_factory(18, "right")
    episode.channel_order = channel_order
    path = write_episode(tmp_path / f"{episode.attrs['episode_name']}.h5", episode, layout=layout)
    keys, task_attr = RAW_KEYS[layout]
    with h5py.File(path, "r") as f:
        assert _paths(f) == keys
        assert ("task" in f.attrs) == task_attr
        assert f.attrs["channel_order"] == channel_order
    back = read_episode(path)
    _assert_same_episode(back, episode)
    assert back.layout == layout
    assert back.instruction == INSTRUCTIONS["right"]
    assert back.instruction_source == INSTRUCTION_SOURCES[layout]
    assert (back.channel_order, back.channel_order_source) == (channel_order, "attribute")
    np.testing.assert_array_equal(read_frames(path, 3, 6), episode.images[3:6])


def test_layout_is_detected_from_the_keys_not_the_name(tmp_path, episode_factory):
    episode = episode_factory(18, "left")
    for layout in EPISODE_LAYOUTS:  # the same misleading name for all three
        path = write_episode(tmp_path / layout / "episode_v5_collector_v3.h5", episode, layout=layout)
        assert read_episode(path, load_images=False).layout == layout


def test_real_files_without_a_colour_record_are_bgr_and_sim_files_rgb(tmp_path, episode_factory):
    episode = episode_factory(18, "left")
    path = write_episode(tmp_path / f"{episode.attrs['episode_name']}.h5", episode, layout="v5")
    with h5py.File(path, "a") as f:
        del f.attrs["channel_order"]  # as the team's collectors write them
    back = read_episode(path, load_images=False)
    assert (back.channel_order, back.channel_order_source) == ("bgr", "camera default")
    with h5py.File(path, "a") as f:
        f.attrs["source"] = "mvla_sim"  # this project's files from before the record existed
    back = read_episode(path, load_images=False)
    assert (back.channel_order, back.channel_order_source) == ("rgb", "mvla_sim default")


def test_a_file_in_no_layout_gets_one_line_naming_its_keys(tmp_path):
    path = tmp_path / "episode_20251114_100000_1box_hori_left_core_medium.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=np.zeros((2, 4, 4, 3), np.uint8))
        f.create_dataset("action", data=np.zeros((2, 3), np.float32))
        f.attrs["instruction"] = "go"
    with pytest.raises(EpisodeFormatError) as info:
        read_episode(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(path.name)
    assert "not an episode in any known layout" in message
    assert "'action'" in message and "'frames'" in message and "'instruction'" in message
    with pytest.raises(EpisodeFormatError, match="known layout"):
        read_frames(path, 0, 1)


def test_v5_without_an_instruction_or_with_bad_actions_names_the_key(tmp_path, episode_factory):
    episode = episode_factory(18, "left")
    path = write_episode(tmp_path / "ep.h5", episode, layout="v5")
    with h5py.File(path, "a") as f:
        del f["language_instruction"]
    with pytest.raises(EpisodeFormatError, match="missing dataset 'language_instruction'"):
        read_episode(path)
    with h5py.File(path, "a") as f:
        f.create_dataset("language_instruction", data=np.array([b"go"], dtype="S256"))
        del f["actions"]
        f.create_dataset("actions", data=np.zeros((18, 2), np.float32))
    with pytest.raises(EpisodeFormatError, match=r"malformed dataset 'actions'.*\(18, 2\)"):
        read_episode(path)


def test_the_fork_loaders_keys_are_in_the_collector_layout_only(tmp_path, episode_factory):
    """``MobileVLAH5Dataset`` (minuum/RoboVLMs) reads ``len(f['images'])``, ``f['images'][t]``,
    ``f['actions'][t][:2]`` and ``f['language_instruction'][0]`` (UTF-8 bytes)."""
    episode = episode_factory(18, "left")
    paths = {
        layout: write_episode(tmp_path / f"{layout}.h5", episode, layout=layout) for layout in EPISODE_LAYOUTS
    }
    with h5py.File(paths["collector"], "r") as f:
        assert len(f["images"]) == 18
        np.testing.assert_array_equal(f["images"][5], episode.images[5])
        np.testing.assert_array_equal(f["actions"][5][:2], episode.actions[5, :2])
        assert f["language_instruction"][0].decode("utf-8") == INSTRUCTIONS["left"]
    with h5py.File(paths["v5"], "r") as f:
        assert "images" not in f
    with h5py.File(paths["v3"], "r") as f:
        assert "language_instruction" not in f


def test_generate_writes_each_layout_and_reads_back_the_same_episodes(tmp_path: Path):
    runs = {
        layout: generate_episodes(small_config(tmp_path / layout, episodes=2, layout=layout))
        for layout in EPISODE_LAYOUTS
    }
    assert [p.name for p in runs["v3"]] == [p.name for p in runs["collector"]] == [p.name for p in runs["v5"]]
    for index, collector_path in enumerate(runs["collector"]):
        reference = read_episode(collector_path)
        assert reference.channel_order == "bgr" and reference.channel_order_source == "attribute"
        for layout in ("v3", "v5"):
            back = read_episode(runs[layout][index])
            assert back.layout == layout
            _assert_same_episode(back, reference)
        with h5py.File(runs["v5"][index], "r") as f:
            assert "observations/images" in f and "images" not in f


def test_generate_cli_layout_option_and_resume_guard(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "sim"
    args = ["--episodes", "1", "--out", str(out), "--image-size", "64x36", "--noise", "0", "--quiet"]
    assert generate_main([*args, "--layout", "v5"]) == 0
    [path] = sorted(out.glob("episode_*.h5"))
    assert read_episode(path, load_images=False).layout == "v5"
    with pytest.raises(SystemExit) as exc:  # a folder holds one layout
        generate_main([*args, "--layout", "collector"])
    assert exc.value.code == 2
    assert "layout: 'v5' there vs 'collector' now" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        generate_main([*args, "--layout", "v4"])


def test_no_second_episode_reader_in_the_packages():
    """Only ``train.episodes`` opens HDF5 files; everything else goes through ``read_episode``."""
    root = Path(__file__).resolve().parents[2]
    openers = sorted(
        str(path.relative_to(root))
        for package in ("mvla_sim", "policies", "train", "eval", "scripts", "benchmarks")
        for path in (root / package).rglob("*.py")
        if "h5py.File(" in path.read_text(encoding="utf-8")
    )
    assert openers == ["train/episodes.py"], openers
