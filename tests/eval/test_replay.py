"""The calibration table: every real key sequence replayed in every scene, with one video per sequence."""

from __future__ import annotations

import json

import h5py
import pytest

import eval.replay as replay
from eval.replay import main
from eval.results.video import read_video
from mvla_sim.facts import REAL_KEY_SEQUENCES, RealKeySequence
from train.generate import GenerateConfig, generate_episodes


def test_replay_prints_the_calibration_table_and_writes_one_video_per_sequence(tmp_path, capsys):
    table = tmp_path / "calibration.json"
    args = ["--videos-dir", str(tmp_path / "videos"), "--randomized", "3", "--json", str(table), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "calibration holds: all 9 real sequences" in out
    lines = [line for line in out.splitlines() if line.startswith("| `")]
    assert len(lines) == len(REAL_KEY_SEQUENCES)
    assert "| left-day | left-evening | right-day | right-evening |" in out and "min clearance (m)" in out

    rows = json.loads(table.read_text())
    for row, sequence in zip(rows, REAL_KEY_SEQUENCES, strict=True):
        assert row["keys"] == sequence.keys and row["real_episodes"] == sequence.episodes
        for cell, outcome in row["outcomes"].items():
            assert outcome == ("success" if cell.startswith(sequence.side) else "wrong_side"), (row, cell)
        assert row["min_clearance_m"] >= 0.09 and 0.15 <= row["distance_to_bottle_m"] <= 1.5
        assert (row["end_xy_m"][1] > 0) == (sequence.side == "left")
        assert row["randomized"]["episodes"] == 3 and 0 <= row["randomized"]["successes"] <= 3

    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == len(REAL_KEY_SEQUENCES)
    assert all(v.name.endswith("__success.mp4") for v in videos)
    frames = read_video(videos[0])
    assert len(frames) == 18 and frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0


def test_replay_reports_a_broken_calibration(monkeypatch, capsys):
    straight = RealKeySequence("left", "W" * 17, 1, "made up: drives into the box")
    monkeypatch.setattr(replay, "REAL_KEY_SEQUENCES", (REAL_KEY_SEQUENCES[0], straight))
    assert main(["--no-videos", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "calibration BROKEN: left W17" in out and "collision" in out


def test_bad_randomized_count_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--randomized", "-1", "--no-videos"])
    assert exc.value.code == 2 and capsys.readouterr().err.strip().startswith("error: --randomized -1")


def test_replay_recorded_episodes_of_every_layout(tmp_path, capsys):
    """Expert episodes written in each layout replay to success in their own scene; a file in no
    layout stops the command with one line."""
    folders = []
    for layout in ("collector", "v3", "v5"):
        config = GenerateConfig(
            episodes=1, out=tmp_path / layout, image_size=(64, 36), noise=0.0, seed=3, layout=layout
        )
        assert len(generate_episodes(config)) == 1
        folders.append(str(config.out))
    assert main(["--episodes", *folders, "--no-videos", "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| episode_")]
    assert [line.split(" | ")[1] for line in lines] == ["collector", "v3", "v5"]
    assert [line.split(" | ")[2] for line in lines] == [
        "language_instruction",
        "attrs['task']",
        "language_instruction",
    ]
    assert all(line.rstrip(" |").endswith("success") for line in lines)
    assert len({line.split(" | ")[5] for line in lines}) == 1  # the same keys from all three files
    assert "3/3 recorded episodes succeed" in out

    bad = tmp_path / "bad" / "episode_bad.h5"
    bad.parent.mkdir()
    with h5py.File(bad, "w") as f:
        f.create_dataset("frames", data=[1, 2])
    assert main(["--episodes", str(bad), "--no-videos", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: episode_bad.h5: not an episode in any known layout") and "\n" not in err
