"""Episode statistics: counts per scenario, frames, key presses, action histograms, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mvla_sim.facts import CORE_KEY_SEQUENCES, INSTRUCTIONS
from train.episodes import make_episode, write_episode
from train.stats import format_summary, key_of_action, main, summarize_episodes


@pytest.fixture
def episode_folder(tmp_path, write_synthetic):
    write_synthetic(tmp_path, num_frames=18, side="left", index=0)
    write_synthetic(tmp_path, num_frames=18, side="left", index=1, evening=True)
    write_synthetic(tmp_path, num_frames=18, side="right", index=2)
    write_synthetic(tmp_path, num_frames=10, side="right", index=3, distance="far", kind="variant")
    return tmp_path


def test_key_of_action():
    assert key_of_action([1.15, 0.0, 0.0]) == "W"
    assert key_of_action([1.15, -1.15]) == "E"
    assert key_of_action([-1.15, 1.15, 0.0]) == "Z"
    assert key_of_action([0.0, 0.0, 0.0]) == "space"
    assert key_of_action([0.7, 0.2]) == "other"


def test_summary_counts(episode_folder):
    summary = summarize_episodes([episode_folder])
    assert summary["num_episodes"] == 4 and summary["num_failed"] == 0
    assert summary["scenarios"] == {
        "1box_hori_left_medium": 1,
        "1box_hori_left_medium_evening": 1,
        "1box_hori_right_far": 1,
        "1box_hori_right_medium": 1,
    }
    assert summary["grid"]["left"]["evening"]["medium"] == 1
    assert summary["grid"]["right"]["day"]["far"] == 1
    assert summary["kinds"] == {"core": 3, "variant": 1}
    frames = summary["frames"]
    assert frames["total"] == 64 and frames["mean"] == pytest.approx(16.0)
    assert frames["std"] == pytest.approx(np.std([18, 18, 18, 10]))
    assert frames["counts"] == {"10": 1, "18": 3}
    assert summary["events"] == {"episode_start": 4, "start_action": 60, "stop_action": 0}
    expected_keys = {}
    for seq in (CORE_KEY_SEQUENCES["left"],) * 2 + (
        CORE_KEY_SEQUENCES["right"],
        CORE_KEY_SEQUENCES["right"][:9],
    ):
        for k in seq:
            expected_keys[k] = expected_keys.get(k, 0) + 1
    assert {k: v for k, v in summary["keys"].items() if v} == expected_keys
    assert summary["key_sequences"][0] == {"keys": CORE_KEY_SEQUENCES["left"], "count": 2}
    assert sum(summary["linear_x"]["counts"]) == 64 and sum(summary["linear_y"]["counts"]) == 64
    assert summary["linear_x"]["max"] == pytest.approx(1.15)
    assert summary["instructions"] == {INSTRUCTIONS["left"]: 2, INSTRUCTIONS["right"]: 2}
    assert summary["frame_sizes"] == {"36x64": 4}
    json.dumps(summary)


def test_other_actions_space_and_unreadable_files(tmp_path):
    actions = np.array([[0, 0], [0.6, 0.3], [0, 0], [1.15, 0]], np.float32)
    episode = make_episode(
        np.zeros((4, 36, 64, 3), np.uint8),
        actions,
        INSTRUCTIONS["left"],
        "episode_20251114_100000_1box_hori_left_variant_close",
    )
    write_episode(tmp_path / "episode_20251114_100000_1box_hori_left_variant_close.h5", episode)
    (tmp_path / "episode_broken.h5").write_bytes(b"broken")
    summary = summarize_episodes([tmp_path])
    assert summary["num_episodes"] == 1 and summary["num_failed"] == 1
    assert "episode_broken.h5" in summary["failed"][0]["error"]
    assert summary["keys"]["other"] == 1 and summary["keys"]["space"] == 1 and summary["keys"]["W"] == 1
    assert summary["events"]["stop_action"] == 1
    assert summary["key_sequences"] == [{"keys": "?_W", "count": 1}]
    assert "Unreadable files" in format_summary(summary)


def test_format_summary_table(episode_folder):
    text = format_summary(summarize_episodes([episode_folder]))
    assert "Episodes: 4" in text and "16.0 +- 3.5" in text
    assert "1box_hori_left_medium_evening" in text
    assert "linear_y" in text and "+1.25" in text


def test_empty_summary_formats():
    text = format_summary(summarize_episodes([]))
    assert "Episodes: 0" in text


def test_cli(episode_folder, tmp_path, capsys):
    out = tmp_path / "summary.json"
    assert main([str(episode_folder), "--json", str(out)]) == 0
    assert "Episodes per scenario" in capsys.readouterr().out
    assert json.loads(out.read_text())["num_episodes"] == 4
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "missing")])
    assert info.value.code == 2
