"""Render the README's old-vs-new appearance frames (``docs/img/appearance_*.png``).

    python scripts/make_appearance_frames.py [OUT_DIR]

``appearance_start.png``: the camera view at the nominal start of the left scene by day, the old
look (``v0_tiles``, left) beside the new default (right); ``appearance_mid.png``: the same after
the first 9 presses of the left scene's representative real sequence. 640 x 360 each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image

import mvla_sim
from mvla_sim.facts import CORE_KEY_SEQUENCES, key_sequence_actions

SIZE = (640, 360)
PRESSES = 9


def views(appearance: str) -> tuple[np.ndarray, np.ndarray]:
    env = gym.make(mvla_sim.env_id("left", "day"), randomize=False, image_size=SIZE, appearance=appearance)
    obs, _ = env.reset(seed=0)
    start = obs["image"]
    for action in key_sequence_actions(CORE_KEY_SEQUENCES["left"])[:PRESSES]:
        obs, *_ = env.step(np.asarray(action[:2], dtype=np.float32))
    env.close()
    return start, obs["image"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    old, new = views("v0_tiles"), views("default")
    gap = np.full((SIZE[1], 8, 3), 255, np.uint8)
    for i, name in enumerate(("appearance_start.png", "appearance_mid.png")):
        Image.fromarray(np.concatenate([old[i], gap, new[i]], axis=1)).save(out / name)
    print(f"wrote {out}/appearance_start.png, appearance_mid.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
