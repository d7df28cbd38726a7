"""Render the README's scene frames (``docs/img/``) from the bundled scene spec.

    python scripts/make_readme_frames.py [OUT_DIR]

``{left,right}_{day,evening}.png``: the camera view (640 x 360) beside the top-down map, nominal
layout, after the first 9 presses of the scene's representative real sequence
(``mvla_sim.facts.CORE_KEY_SEQUENCES``); ``start_view.png``: the camera view at the start.
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    for side in ("left", "right"):
        for lighting in ("day", "evening"):
            env = gym.make(
                mvla_sim.env_id(side, lighting), randomize=False, image_size=SIZE, render_mode="rgb_array"
            )
            obs, _ = env.reset(seed=0)
            if (side, lighting) == ("left", "day"):
                Image.fromarray(obs["image"]).save(out / "start_view.png")
            for action in key_sequence_actions(CORE_KEY_SEQUENCES[side])[:PRESSES]:
                env.step(np.asarray(action[:2], dtype=np.float32))
            Image.fromarray(env.render()).save(out / f"{side}_{lighting}.png")
            env.close()
    print(f"wrote {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
