"""Training windows, masks, clamp, splits, mirror augmentation, colour order and collate."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from mvla_sim.facts import INSTRUCTIONS
from train.dataset import (
    EpisodeSource,
    EpisodeWindowDataset,
    collate,
    resize_frames,
    split_episodes,
    train_val_datasets,
)
from train.episodes import read_episode, scenario_of, write_episode


def _dataset(folder: Path, **kwargs) -> EpisodeWindowDataset:
    return EpisodeWindowDataset(folder, subset="all", **kwargs)


def test_full_episode_gives_one_window_with_chunks_and_clamp(tmp_path, write_synthetic):
    path = write_synthetic(tmp_path, num_frames=18, side="left")
    stored = read_episode(path)
    ds = _dataset(tmp_path)
    assert len(ds) == 1
    item = ds[0]
    assert item["images"].shape == (8, 36, 64, 3) and item["images"].dtype == torch.uint8
    assert item["actions"].shape == (8, 10, 2) and item["action_mask"].shape == (8, 10)
    assert torch.all(item["action_mask"] == 1) and torch.all(item["frame_mask"] == 1)
    np.testing.assert_array_equal(item["images"].numpy(), stored.images[:8])
    expected = np.clip(stored.actions[np.arange(8)[:, None] + np.arange(10)[None, :], :2], -1, 1)
    np.testing.assert_allclose(item["actions"].numpy(), expected)
    assert stored.actions[1, 0] == pytest.approx(1.15) and item["actions"][1, 0, 0] == 1.0
    assert torch.all(item["actions"][0, 0] == 0)  # frame 0: episode_start's zero action
    assert item["actions"].abs().max() == 1.0
    assert item["instruction"] == INSTRUCTIONS["left"] and item["start"] == 0 and not item["mirrored"]


def test_short_episode_is_padded_and_masked(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=10)
    item = _dataset(tmp_path)[0]
    steps = np.arange(8)[:, None] + np.arange(10)[None, :]
    np.testing.assert_array_equal(item["action_mask"].numpy(), (steps < 10).astype(np.float32))
    assert torch.all(item["actions"][item["action_mask"] == 0] == 0)
    assert torch.all(item["frame_mask"] == 1)

    very_short = tmp_path / "short"
    write_synthetic(very_short, num_frames=5, index=1)
    item = _dataset(very_short)[0]
    np.testing.assert_array_equal(item["frame_mask"].numpy(), [1, 1, 1, 1, 1, 0, 0, 0])
    assert torch.all(item["images"][5:] == 0) and item["images"][:5].any()
    assert torch.all(item["action_mask"][5:] == 0)


def test_longer_episode_gives_sliding_windows(tmp_path, write_synthetic):
    path = write_synthetic(tmp_path, num_frames=20)
    stored = read_episode(path)
    ds = _dataset(tmp_path)
    assert len(ds) == 3 and [ds[i]["start"] for i in range(3)] == [0, 1, 2]
    np.testing.assert_array_equal(ds[2]["images"].numpy(), stored.images[2:10])


def test_resize_and_collate(tmp_path, write_synthetic):
    for i in range(3):
        write_synthetic(tmp_path, num_frames=18, index=i)
    ds = _dataset(tmp_path, image_size=16)
    assert ds[0]["images"].shape == (8, 16, 16, 3)
    batch = collate([ds[0], ds[1]])
    assert batch["images"].shape == (2, 8, 3, 16, 16) and batch["images"].dtype == torch.uint8
    assert batch["actions"].shape == (2, 8, 10, 2) and batch["action_mask"].shape == (2, 8, 10)
    assert batch["frame_mask"].shape == (2, 8) and len(batch["instruction"]) == 2
    as_float = functools.partial(collate, float_images=True)([ds[0]])
    assert as_float["images"].dtype == torch.float32 and 0 <= as_float["images"].min() <= 1
    torch.testing.assert_close(as_float["images"][0], ds[0]["images"].permute(0, 3, 1, 2).float() / 255)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate)
    assert next(iter(loader))["images"].shape == (3, 8, 3, 16, 16)


def test_resize_of_a_constant_frame_keeps_its_value():
    frames = np.full((2, 36, 64, 3), 77, np.uint8)
    out = resize_frames(frames, 24)
    assert out.shape == (2, 24, 24, 3) and np.all(out == 77)


def test_collate_rejects_mixed_sizes(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=18)
    item = _dataset(tmp_path)[0]
    other = dict(item, images=torch.zeros(8, 18, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="image_size"):
        collate([item, other])


def test_channel_order_bgr_swaps_channels(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=18)
    rgb = _dataset(tmp_path)[0]["images"]
    bgr = EpisodeWindowDataset(EpisodeSource(tmp_path, channel_order="bgr"), subset="all")[0]["images"]
    torch.testing.assert_close(bgr, rgb.flip(-1))


def test_mirror_double_flips_image_negates_y_swaps_instruction(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=18, side="left")
    plain = _dataset(tmp_path)
    doubled = _dataset(tmp_path, mirror="double")
    assert len(doubled) == 2 * len(plain)
    a, b = doubled[0], doubled[1]
    assert not a["mirrored"] and b["mirrored"]
    torch.testing.assert_close(b["images"], a["images"].flip(2))
    torch.testing.assert_close(b["actions"][..., 0], a["actions"][..., 0])
    torch.testing.assert_close(b["actions"][..., 1], -a["actions"][..., 1])
    assert a["actions"][..., 1].abs().sum() > 0
    assert b["instruction"] == INSTRUCTIONS["right"]


def test_mirror_random_follows_its_probability(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=18, side="right")
    always = _dataset(tmp_path, mirror="random", mirror_prob=1.0)
    never = _dataset(tmp_path, mirror="random", mirror_prob=0.0)
    assert always[0]["mirrored"] and always[0]["instruction"] == INSTRUCTIONS["left"]
    assert not never[0]["mirrored"]
    half = _dataset(tmp_path, mirror="random", mirror_prob=0.5)
    torch.manual_seed(0)
    first = [half[0]["mirrored"] for _ in range(20)]
    torch.manual_seed(0)
    assert [half[0]["mirrored"] for _ in range(20)] == first and 0 < sum(first) < 20


def test_cache_gives_the_same_samples(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=20)
    cached = _dataset(tmp_path, image_size=16, cache="all")
    uncached = _dataset(tmp_path, image_size=16, cache="none")
    for i in range(len(cached)):
        torch.testing.assert_close(cached[i]["images"], uncached[i]["images"])
    assert len(cached._cache) == 1 and not uncached._cache


def _names(n: int, side: str, evening: bool = False) -> list[Path]:
    suffix = "_evening" if evening else ""
    return [
        Path(f"/data/episode_20251114_10{i:02d}00_1box_hori_{side}_core_medium{suffix}.h5") for i in range(n)
    ]


def test_sorted_split_is_the_real_one():
    paths = _names(10, "left")
    train, val = split_episodes(reversed(paths), "sorted", 0.8)
    assert train == paths[:8] and val == paths[8:]


def test_stratified_split_is_reproducible_disjoint_and_covers_each_scenario():
    paths = (
        _names(20, "left") + _names(15, "right") + _names(3, "left", evening=True) + _names(1, "right", True)
    )
    train, val = split_episodes(paths, "stratified", 0.8, seed=7)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(paths)
    assert (train, val) == split_episodes(list(reversed(paths)), "stratified", 0.8, seed=7)
    for scenario in {"1box_hori_left_medium", "1box_hori_right_medium", "1box_hori_left_medium_evening"}:
        assert any(scenario_of(p) == scenario for p in train)
        assert any(scenario_of(p) == scenario for p in val)
    assert sum(scenario_of(p) == "1box_hori_left_medium" for p in val) == 4
    assert [p for p in paths if scenario_of(p) == "1box_hori_right_medium_evening"][0] in train
    other_seed = split_episodes(paths, "stratified", 0.8, seed=8)
    assert other_seed != (train, val)
    with pytest.raises(ValueError, match="split='random'"):
        split_episodes(paths, "random")  # type: ignore[arg-type]


def test_train_and_val_datasets_share_no_episode(tmp_path, write_synthetic):
    for i in range(5):
        write_synthetic(tmp_path, num_frames=18, side="left", index=i)
    for i in range(5, 10):
        write_synthetic(tmp_path, num_frames=18, side="right", index=i)
    train, val = train_val_datasets(tmp_path, mirror="double")
    train_eps = {e.path for e in train.episodes}
    val_eps = {e.path for e in val.episodes}
    assert train_eps.isdisjoint(val_eps) and len(train_eps) + len(val_eps) == 10
    assert {e.scenario for e in val.episodes} == {"1box_hori_left_medium", "1box_hori_right_medium"}
    assert val.mirror == "none" and len(train) == 2 * len(train.windows)
    real_split = EpisodeWindowDataset(tmp_path, subset="val", split="sorted")
    assert [e.path.name for e in real_split.episodes] == sorted(p.name for p in tmp_path.glob("*.h5"))[8:]


def test_mixed_sources_and_pattern(tmp_path, write_synthetic):
    real, sim = tmp_path / "real", tmp_path / "sim"
    write_synthetic(real, num_frames=18, index=0)
    write_synthetic(sim, num_frames=18, index=1)
    write_synthetic(sim, num_frames=18, index=2, side="right")
    ds = EpisodeWindowDataset([EpisodeSource(real, channel_order="bgr"), sim], subset="all")
    assert len(ds.episodes) == 3
    assert {e.channel_order for e in ds.episodes} == {"bgr", "rgb"}
    only = EpisodeWindowDataset(sim, subset="all", pattern="*_right_*.h5")
    assert len(only.episodes) == 1


def test_bad_settings_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="no episode files found"):
        EpisodeWindowDataset(tmp_path, subset="all")
    with pytest.raises(ValueError, match="mirror='flip'"):
        EpisodeWindowDataset(tmp_path, mirror="flip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channel_order='grb'"):
        EpisodeSource(tmp_path, channel_order="grb")  # type: ignore[arg-type]


def test_too_few_episodes_for_a_validation_episode_say_so_and_name_the_fix(tmp_path, write_synthetic):
    for i, (side, evening) in enumerate([("left", False), ("left", True), ("right", False), ("right", True)]):
        write_synthetic(tmp_path, side=side, evening=evening, index=i)
    assert len(EpisodeWindowDataset(tmp_path, subset="train", windows="episode")) == 4
    with pytest.raises(ValueError) as exc:
        EpisodeWindowDataset(tmp_path, subset="val", windows="episode")
    message = str(exc.value)
    assert "4 episodes are too few to hold out a validation episode" in message and "\n" not in message
    assert "add episodes" in message and "--split sorted: 3 train, 1 val" in message
    sorted_val = EpisodeWindowDataset(tmp_path, subset="val", split="sorted", windows="episode")
    assert len(sorted_val.episodes) == 1
    with pytest.raises(ValueError, match="lower it"):
        EpisodeWindowDataset(tmp_path, subset="val", train_fraction=1.0)


def test_every_step_windows_match_what_the_deployed_policy_sees(tmp_path, write_synthetic):
    """Causal windows: at decision t the head has run over frames max(0, t-7)..t from a zero state
    (the fork's head history); nothing is padded in front, and only decision t is supervised."""
    path = write_synthetic(tmp_path, num_frames=18)
    ds = EpisodeWindowDataset(tmp_path, subset="all", windows="every_step")
    frames = read_episode(path).images
    assert len(ds) == 17  # one window per key press, frames 1..17
    first = ds[0]
    assert np.array_equal(first["images"][0].numpy(), frames[0])
    assert np.array_equal(first["images"][1].numpy(), frames[1])
    assert not first["images"][2:].any()  # zeros after the decision frame (the LSTM is causal)
    assert first["frame_mask"].tolist() == [0.0, 1.0] + [0.0] * 6  # only decision 1 is supervised
    assert first["actions"][1, 0].tolist() == [1.0, 0.0]  # press 1 of the left core sequence (W)
    assert first["action_mask"][0].sum() == 0 and first["action_mask"][2:].sum() == 0
    mid = ds[6]  # decision 7: frames 0..7, the first full window
    assert np.array_equal(mid["images"].numpy(), frames[0:8]) and mid["frame_mask"].tolist() == [0.0] * 7 + [
        1.0
    ]
    last = ds[16]
    assert np.array_equal(last["images"].numpy(), frames[10:18])
    assert last["frame_mask"].tolist() == [0.0] * 7 + [1.0]
    assert last["action_mask"][7].tolist() == [1.0] + [0.0] * 9  # only frame 17's own action is left
    with pytest.raises(ValueError, match="windows"):
        EpisodeWindowDataset(tmp_path, subset="all", windows="sometimes")


def test_episode_mode_returns_whole_padded_episodes(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=18, index=0)
    write_synthetic(tmp_path, num_frames=12, index=1)
    ds = EpisodeWindowDataset(tmp_path, subset="all", windows="episode")
    assert len(ds) == 2 and ds.episode_len == 18
    long, short = ds[0], ds[1]
    assert long["images"].shape[0] == short["images"].shape[0] == 18
    assert long["frame_mask"].tolist() == [0.0] + [1.0] * 17
    assert short["frame_mask"].tolist() == [0.0] + [1.0] * 11 + [0.0] * 6
    assert short["action_mask"][11].tolist() == [1.0] + [0.0] * 9


def test_every_layout_mixes_and_file_colour_order_follows_each_files_record(tmp_path, episode_factory):
    """Collector (rgb), v3 and v5 (recorded bgr) episodes of the same content in one dataset."""
    folders = {}
    for index, (layout, order) in enumerate((("collector", "rgb"), ("v3", "bgr"), ("v5", "bgr"))):
        episode = episode_factory(18, "left", index=index, seed=0)
        episode.channel_order = order
        folders[layout] = tmp_path / layout
        write_episode(folders[layout] / f"{episode.attrs['episode_name']}.h5", episode, layout=layout)
    as_stored = EpisodeWindowDataset(list(folders.values()), subset="all", windows="episode")
    true_colours = EpisodeWindowDataset(
        [EpisodeSource(f, channel_order="file") for f in folders.values()], subset="all", windows="episode"
    )
    assert [e.channel_order for e in as_stored.episodes] == ["rgb"] * 3
    assert [e.channel_order for e in true_colours.episodes] == ["rgb", "bgr", "bgr"]
    assert len({e.instruction for e in true_colours.episodes}) == 1
    for i in range(3):
        stored, shown = as_stored[i]["images"], true_colours[i]["images"]
        torch.testing.assert_close(shown, stored if i == 0 else stored.flip(-1))
