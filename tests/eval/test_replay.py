"""The calibration demo: core key sequences replayed in every scene, with decodable videos."""

from __future__ import annotations

from eval.replay import main
from eval.video import read_video


def test_replay_calibration_holds_and_writes_one_video_per_run(tmp_path, capsys):
    assert main(["--videos-dir", str(tmp_path)]) == 0
    assert "calibration holds" in capsys.readouterr().out
    videos = sorted(tmp_path.glob("*.mp4"))
    assert len(videos) == 8
    assert sum(v.name.endswith("__success.mp4") for v in videos) == 4
    frames = read_video(videos[0])
    assert len(frames) == 18 and frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0
