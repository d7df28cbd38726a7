"""Episode files: real HDF5 layout, validation, atomic writes and file names."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from mvla_sim.facts import INSTRUCTIONS
from train.episodes import (
    ATTR_KEYS,
    EPISODE_NAME_PATTERN,
    EpisodeFormatError,
    EpisodeName,
    EpisodeNameError,
    event_types_for_actions,
    format_episode_name,
    make_episode,
    parse_episode_name,
    read_episode,
    read_frames,
    scenario_of,
    write_episode,
)


def _write(tmp_path: Path, episode) -> Path:
    return write_episode(tmp_path / f"{episode.attrs['episode_name']}.h5", episode)


def test_round_trip_is_identical(tmp_path, episode_factory):
    episode = episode_factory(18, "right", evening=True)
    path = _write(tmp_path, episode)
    back = read_episode(path)
    assert back.images.dtype == np.uint8 and back.actions.dtype == np.float32
    np.testing.assert_array_equal(back.images, episode.images)
    np.testing.assert_array_equal(back.actions, episode.actions)
    assert back.event_types == episode.event_types
    assert back.event_types[0] == "episode_start" and back.event_types[1] == "start_action"
    assert back.instruction == INSTRUCTIONS["right"]
    assert back.attrs == episode.attrs
    assert back.attrs["episode_name"] == path.stem
    assert back.attrs["time_period"] == "evening"
    assert back.image_shape == (18, 36, 64, 3)


def test_raw_layout_matches_the_real_collector(tmp_path, episode_factory):
    path = _write(tmp_path, episode_factory(18))
    with h5py.File(path, "r") as f:
        assert set(f.keys()) == {"images", "actions", "action_event_types", "language_instruction"}
        assert f["images"].dtype == np.uint8 and f["images"].shape == (18, 36, 64, 3)
        assert f["images"].compression == "gzip"
        assert f["actions"].dtype == np.float32 and f["actions"].shape == (18, 3)
        assert f["actions"].compression == "gzip"
        events = f["action_event_types"]
        assert events.shape == (18,) and events.compression == "gzip"
        assert h5py.check_string_dtype(events.dtype).encoding == "utf-8"
        instruction = f["language_instruction"]
        assert instruction.dtype == np.dtype("S256") and instruction.shape == (1,)
        assert instruction[0].decode("utf-8") == INSTRUCTIONS["left"]
        assert set(f.attrs.keys()) == {*ATTR_KEYS, "channel_order"}  # the real nine plus the colour record
        assert f.attrs["channel_order"] == "rgb"
        assert f.attrs["num_frames"] == 18 and f.attrs["action_chunk_size"] == 8
        assert f.attrs["obstacle_layout_type"] == "hori"
        assert f.attrs["collection_datetime"] == "2025-11-14T10:00:00"
        assert f.attrs["collection_hour"] == 10 and f.attrs["collection_minute"] == 0


def test_reads_a_file_written_like_the_real_collector(tmp_path):
    """Collector layout (auto chunks, default gzip) plus the later-added S256 instruction."""
    path = tmp_path / "episode_20251114_153012_1box_hori_left_core_medium.h5"
    actions = np.zeros((18, 3), np.float32)
    actions[1:, 0] = 1.15
    with h5py.File(path, "w") as f:
        f.attrs["episode_name"] = path.stem
        f.attrs["total_duration"] = 31.7
        f.attrs["num_frames"] = 18
        f.attrs["action_chunk_size"] = 8
        f.attrs["obstacle_layout_type"] = "hori"
        f.attrs["time_period"] = "evening"
        f.attrs["collection_datetime"] = "2025-11-14T15:30:44.123456"
        f.attrs["collection_hour"] = 15
        f.attrs["collection_minute"] = 30
        f.create_dataset("images", data=np.zeros((18, 36, 64, 3), np.uint8), compression="gzip")
        f.create_dataset("actions", data=actions, compression="gzip")
        events = ["episode_start"] + ["start_action"] * 17
        f.create_dataset(
            "action_event_types",
            data=np.array(events, dtype=h5py.string_dtype(encoding="utf-8")),
            compression="gzip",
        )
        f.create_dataset("language_instruction", data=np.array([INSTRUCTIONS["left"].encode()], dtype="S256"))
    episode = read_episode(path, strict_attrs=True)
    assert episode.num_frames == 18 and episode.instruction == INSTRUCTIONS["left"]
    assert episode.attrs["total_duration"] == pytest.approx(31.7)
    assert isinstance(episode.attrs["num_frames"], int)
    assert episode.event_types[-1] == "start_action"


def test_missing_actions_names_file_and_key(tmp_path, episode_factory):
    path = _write(tmp_path, episode_factory(18))
    with h5py.File(path, "a") as f:
        del f["actions"]
    with pytest.raises(EpisodeFormatError) as info:
        read_episode(path)
    message = str(info.value)
    assert message.startswith(path.name)
    assert "missing dataset 'actions'" in message and "(T, 3) float32" in message


def test_missing_instruction_fails_or_falls_back_to_the_name(tmp_path, episode_factory):
    path = _write(tmp_path, episode_factory(18, "right"))
    with h5py.File(path, "a") as f:
        del f["language_instruction"]
    with pytest.raises(EpisodeFormatError, match="missing dataset 'language_instruction'"):
        read_episode(path)
    assert read_episode(path, instruction_from_name=True).instruction == INSTRUCTIONS["right"]


def test_malformed_actions_and_mismatched_lengths(tmp_path, episode_factory):
    path = _write(tmp_path, episode_factory(18))
    with h5py.File(path, "a") as f:
        del f["actions"]
        f.create_dataset("actions", data=np.zeros((18, 2), np.float32))
    with pytest.raises(EpisodeFormatError, match=r"malformed dataset 'actions'.*\(18, 2\)"):
        read_episode(path)
    with h5py.File(path, "a") as f:
        del f["actions"]
        f.create_dataset("actions", data=np.zeros((17, 3), np.float32))
    with pytest.raises(EpisodeFormatError, match="'images' has 18 frames but 'actions' has 17"):
        read_episode(path)


def test_truncated_and_corrupt_files_raise_format_error(tmp_path, episode_factory):
    path = _write(tmp_path, episode_factory(18))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(EpisodeFormatError, match=path.name):
        read_episode(path)
    garbage = tmp_path / "episode_garbage.h5"
    garbage.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(EpisodeFormatError, match="episode_garbage.h5"):
        read_episode(garbage)
    with pytest.raises(FileNotFoundError):
        read_episode(tmp_path / "absent.h5")


def test_load_images_false_and_read_frames(tmp_path, episode_factory):
    episode = episode_factory(18)
    path = _write(tmp_path, episode)
    light = read_episode(path, load_images=False)
    assert light.images is None and light.image_shape == (18, 36, 64, 3)
    np.testing.assert_array_equal(read_frames(path, 3, 7), episode.images[3:7])


def test_atomic_write_leaves_nothing_when_the_writer_raises(tmp_path, episode_factory):
    episode = episode_factory(18)
    episode.attrs["not_storable"] = object()  # h5py raises TypeError mid-write
    target = tmp_path / f"{episode.attrs['episode_name']}.h5"
    with pytest.raises(TypeError):
        write_episode(target, episode)
    assert list(tmp_path.iterdir()) == []


def test_atomic_overwrite_keeps_the_old_file_on_error(tmp_path, episode_factory):
    good = episode_factory(18)
    path = _write(tmp_path, good)
    with pytest.raises(FileExistsError):
        write_episode(path, good)
    bad = episode_factory(18, seed=5)
    bad.attrs["not_storable"] = object()
    with pytest.raises(TypeError):
        write_episode(path, bad, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    np.testing.assert_array_equal(read_episode(path).images, good.images)


def test_successful_write_leaves_no_temp_file(tmp_path, episode_factory):
    path = _write(tmp_path, episode_factory(10))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_write_rejects_invalid_episodes(tmp_path, episode_factory):
    episode = episode_factory(18)
    episode.instruction = "Navigate left " + "x" * 300
    with pytest.raises(EpisodeFormatError, match="at most 256"):
        write_episode(tmp_path / "episode.h5", episode)
    episode = episode_factory(18)
    episode.event_types[3] = "key_down"
    with pytest.raises(EpisodeFormatError, match="unknown event types"):
        write_episode(tmp_path / "episode.h5", episode)
    episode = episode_factory(18)
    del episode.attrs["time_period"]
    with pytest.raises(EpisodeFormatError, match="time_period"):
        write_episode(tmp_path / "episode.h5", episode)
    assert list(tmp_path.iterdir()) == []


def test_make_episode_fills_events_and_angular_z():
    actions = np.array([[0, 0], [1.15, 0], [0, 0], [1.15, -1.15]], dtype=np.float64)
    episode = make_episode(
        np.zeros((4, 36, 64, 3), np.uint8),
        actions,
        INSTRUCTIONS["left"],
        "episode_20251114_100000_1box_hori_left_variant_far",
    )
    assert episode.actions.shape == (4, 3) and episode.actions.dtype == np.float32
    assert np.all(episode.actions[:, 2] == 0)
    assert episode.event_types == ["episode_start", "start_action", "stop_action", "start_action"]
    assert event_types_for_actions(actions) == episode.event_types
    assert episode.attrs["total_duration"] == pytest.approx(3 * 0.4)
    assert episode.attrs["time_period"] == "day"


def test_name_format_parse_round_trip():
    ts = datetime(2025, 11, 14, 9, 5, 7, 123456)
    name = format_episode_name(ts, "1box", "hori", "left", "core", "medium", evening=True)
    assert name == "episode_20251114_090507_1box_hori_left_core_medium_evening.h5"
    parsed = parse_episode_name(Path("/data/set") / name)
    assert parsed == EpisodeName(ts.replace(microsecond=0), "1box", "hori", "left", "core", "medium", True)
    assert parsed.filename == name and parsed.lighting == "evening"
    assert parsed.scenario == "1box_hori_left_medium_evening"
    plain = parse_episode_name("episode_20251106_120000_2box_vert_right_variant_far")
    assert not plain.evening and plain.scenario == "2box_vert_right_far" and plain.kind == "variant"
    assert format_episode_name("20251106_120000", "2box", "vert", "right", "variant", "far") == plain.filename


def test_bad_names_raise_with_the_pattern():
    for bad in (
        "episode_20251114_090507_1box_left_core_medium.h5",
        "episode_20251114_090507_1box_hori_up_core_medium.h5",
        "episode_0.h5",
        "episode_20251314_090507_1box_hori_left_core_medium.h5",
    ):
        with pytest.raises(EpisodeNameError, match=r"episode_\{YYYYMMDD_HHMMSS\}"):
            parse_episode_name(bad)
    assert EPISODE_NAME_PATTERN.startswith("episode_{YYYYMMDD_HHMMSS}")
    with pytest.raises(EpisodeNameError, match="side='up'"):
        format_episode_name("20251114_090507", "1box", "hori", "up", "core", "medium")
    assert scenario_of("episode_0.h5") == "unknown"
