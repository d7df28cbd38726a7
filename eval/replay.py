"""``python -m eval.replay``: replay the real ``core`` key sequences open-loop in each scene, with videos.

The calibration demo: each sequence of FACTS.md (left ``WWWWAQQQQQQQWWWWE``, right
``WWWDEEEEEEWWWWQQQ``) is pressed key by key in its own scene and in the mirrored one, day and
evening, from the nominal start (randomization off). It should succeed in its own scene and pass
the box on the wrong side in the mirrored one. One video per run goes to ``videos/replay/``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

import mvla_sim
from eval.video import EpisodeVideo, caption
from mvla_sim.facts import CORE_KEY_SEQUENCES, LIGHTINGS, SIDES, key_sequence_actions


def replay(keys_side: str, scene_side: str, lighting: str, videos: Path | None) -> dict:
    """Press the ``keys_side`` core sequence in the ``scene_side`` scene; returns the final info."""
    keys = CORE_KEY_SEQUENCES[keys_side]
    env = gym.make(mvla_sim.env_id(scene_side, lighting), randomize=False, render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    video = None
    if videos is not None:
        name = f"core-{keys_side}-keys__{scene_side}-{lighting}-medium"
        video = EpisodeVideo(videos / f"{name}.mp4")
        video.append(env.render(), caption(0, None, obs["instruction"], f"keys {keys}"))
    try:
        for step, (key, action) in enumerate(zip(keys, key_sequence_actions(keys), strict=True), start=1):
            obs, _, terminated, truncated, info = env.step(np.asarray(action[:2], dtype=np.float32))
            if video is not None:
                video.append(env.render(), caption(step, action, obs["instruction"], f"key {key}"))
            if terminated or truncated:
                break
    finally:
        if video is not None:
            video.close()
        env.close()
    outcome = "success" if info["is_success"] else ("collision" if info["collided"] else "failure")
    if video is not None:
        final = video.path.with_name(f"{video.path.stem}__{outcome}.mp4")
        video.path.replace(final)
        info["video"] = str(final)
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--videos-dir", type=Path, default=Path("videos") / "replay", help="default videos/replay/"
    )
    parser.add_argument("--no-videos", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    videos = None if args.no_videos else args.videos_dir
    print(f"{'keys':<12}{'scene':<16}{'success':>8}{'side':>7}{'dist m':>8}  video")
    ok = True
    for keys_side, scene_side, lighting in itertools.product(SIDES, SIDES, LIGHTINGS):
        info = replay(keys_side, scene_side, lighting, videos)
        expected = keys_side == scene_side
        ok &= bool(info["is_success"]) == expected
        print(
            f"{'core-' + keys_side:<12}{scene_side + '-' + lighting:<16}{info['is_success']!s:>8}"
            f"{info['side_passed']:>7}{info['distance_to_goal']:>8.2f}  {info.get('video', '')}"
        )
    print(
        "calibration holds"
        if ok
        else "calibration BROKEN: a core sequence did not behave as in the real data"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
