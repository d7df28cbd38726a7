"""Videos: H.264 yuv420p mp4 with even frame sizes, captioned, decodable; plus any videos under videos/."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from eval.results.video import EpisodeVideo, annotate, caption, pad_to_even, read_video, video_name
from eval.select import REPO_ROOT


def test_video_writer_pads_odd_frames_and_decodes(tmp_path: Path) -> None:
    path = tmp_path / "v" / "clip.mp4"
    rng = np.random.default_rng(0)
    with EpisodeVideo(path) as video:
        for step in range(5):
            frame = rng.integers(0, 255, size=(45, 81, 3), dtype=np.uint8)  # odd height and width
            video.append(
                frame,
                caption(step, np.array([1.15, -1.15]) if step else None, "reach the bottle on the left"),
            )
    frames = read_video(path)
    assert len(frames) == 5 == video.frames_written
    h, w = frames[0].shape[:2]
    assert h % 2 == 0 and w % 2 == 0 and w >= 81 and h > 45  # caption band below the frame
    meta = imageio.get_reader(str(path), format="FFMPEG").get_meta_data()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")


def test_annotate_and_pad() -> None:
    frame = np.full((9, 31, 3), 128, np.uint8)
    out = annotate(frame, ["step  3  action [+1.15, +0.00]", "a long instruction " * 4])
    assert out.shape[1] == 31 and out.shape[0] > 9
    assert np.array_equal(out[:9], frame)
    assert pad_to_even(out).shape[0] % 2 == 0 and pad_to_even(out).shape[1] % 2 == 0


def test_video_name_carries_policy_scene_seed_outcome() -> None:
    name = video_name("epoch06-val0.067", "left-day-medium", 123, "success")
    assert name == "epoch06-val0.067__left-day-medium__seed123__success.mp4"
    assert "/" not in video_name("a/b c", "x", 1, "fail-collision")


def _repo_videos() -> list[Path]:
    return sorted((REPO_ROOT / "videos").rglob("*.mp4"))


@pytest.mark.skipif(not _repo_videos(), reason="no videos under videos/ (run python -m eval.rollout first)")
def test_videos_under_repo_decode() -> None:
    for path in _repo_videos():
        if path.name.endswith("__running.mp4"):
            continue  # an episode still being recorded by a concurrent run
        frames = read_video(path)
        assert frames, f"{path} has no frames"
        h, w = frames[0].shape[:2]
        assert h % 2 == 0 and w % 2 == 0, f"{path}: odd frame size {w}x{h}"
        assert all(f.shape == frames[0].shape for f in frames), f"{path}: frame sizes differ"
