"""CI video artifacts: a short rollout of the bundled reference run leaves decodable videos in videos/ci/
and its report (report.html, summary.json, ...) in results/ci/: the folders .github/workflows/ci.yml uploads."""

from __future__ import annotations

import json
import shutil

from eval.results.video import read_video
from eval.rollout import main
from eval.select import REPO_ROOT

REFERENCE = REPO_ROOT / "assets" / "checkpoints" / "reference"
CI_VIDEOS = REPO_ROOT / "videos" / "ci"
CI_RESULTS = REPO_ROOT / "results" / "ci"


def test_short_reference_rollout_leaves_decodable_videos():
    shutil.rmtree(CI_VIDEOS, ignore_errors=True)
    shutil.rmtree(CI_RESULTS, ignore_errors=True)  # a rerun with the same --out would resume
    out = CI_RESULTS
    code = main(
        [
            "--ckpt",
            "best",
            "--runs",
            str(REFERENCE),
            "--baselines",
            "expert",
            "--episodes",
            "1",
            "--videos",
            "1",
            "--videos-dir",
            str(CI_VIDEOS),
            "--out",
            str(out),
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    ids = [p["policy_id"] for p in summary["policies"]]
    assert "expert" in ids and len(ids) == 2, ids
    videos = sorted(CI_VIDEOS.rglob("*.mp4"))
    assert len(videos) == 8  # 2 policies x 4 cells (left/right x day/evening), 1 video each
    for path in videos:
        assert path.name.endswith(("__success.mp4",)) or "__fail" in path.name, path.name
        frames = read_video(path)
        assert 2 <= len(frames) <= 18 + 1
        h, w = frames[0].shape[:2]
        assert h % 2 == 0 and w % 2 == 0 and w > h
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert "<html" in (out / "report.html").read_text().lower()
