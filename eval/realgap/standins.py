"""Stand-in episodes: rendered frames in the real format, to build and test the gap tools.

``python -m eval.realgap.standins --out DIR [--episodes 6] [--size 1280x720]``

No real frame is in this repository. A stand-in is NOT real: it is the simulator rendered with a
perturbed appearance (``perturbed_appearance``: other floor and wall colours, dimmer and warmer
light, stronger blur, noise, vignetting, barrel distortion and JPEG softness than the default),
with small pose noise (``STANDIN_RANDOMIZATION``: start +-1 cm / +-0.5 deg, box +-1 cm, camera
pitch +-0.5 deg), replaying the real key sequences of FACTS.md, stored **BGR** in the real
collector's format (``train.episodes``) at 1280 x 720 unless ``--size`` says otherwise. Files are
named like real ones, with synthetic 1990 timestamps, and carry ``source="standin"``. With
``--unpaired N``, N more are named as another layout (``2box_vert``): they cannot be replayed.
The folder also gets ``standin_appearance.json`` (the perturbation: what a fit should find) and
``standin_scene.json`` (the scene spec with the pose noise).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from eval.realgap.sources import STANDIN_SOURCE
from mvla_sim.appearance import Appearance, load_appearance, with_values
from mvla_sim.facts import INSTRUCTIONS, SIDES, RealKeySequence, key_sequence_actions, real_key_sequences
from mvla_sim.files import atomic_write_json
from mvla_sim.make import SceneDescription, make_env
from mvla_sim.scene import DEFAULT_SCENE
from train.episodes import EpisodeName, make_episode, write_episode

SOURCE = STANDIN_SOURCE
EPOCH = datetime(1990, 6, 1, 9, 0, 0)
STANDIN_RANDOMIZATION = {
    "start_xy_m": [0.01, 0.01],
    "start_yaw_deg": 0.5,
    "box_xy_m": [0.01, 0.01],
    "box_yaw_deg": 1.0,
    "bottle_xy_m": [0.02, 0.02],
    "camera_pitch_deg": 0.5,
    "speed_scale": [0.99, 1.01],
    "light_scale": [1.0, 1.0],
    "light_direction_deg": 0.0,
    "color_jitter": 0.0,
    "texture_tint": 0.0,
}
PERTURBATION = {
    "materials.floor.rgb.0": 0.72,
    "materials.floor.rgb.1": 0.7,
    "materials.floor.rgb.2": 0.64,
    "materials.wall.rgb.2": 0.8,
    "lighting.day.exposure": 0.8,
    "lighting.day.ambient": 0.55,
    "lighting.day.white_balance_rgb.0": 1.12,
    "lighting.day.white_balance_rgb.2": 0.82,
    "lighting.day.sensor_noise_std": 4.0,
    "lighting.evening.exposure": 0.7,
    "lighting.evening.white_balance_rgb.2": 0.7,
    "camera.gamma": 1.2,
    "camera.saturation": 1.1,
    "camera.vignetting": 0.35,
    "camera.blur_sigma_px": 3.0,
    "camera.lens_distortion": 0.4,
    "camera.jpeg_quality": 60,
}
"""The known perturbation of the default appearance that stand-ins are rendered with."""


def perturbed_appearance(base: str | Path | Appearance | None = None) -> Appearance:
    """The default appearance (or ``base``) with ``PERTURBATION`` applied, named ``standin``."""
    return with_values(load_appearance(base), PERTURBATION, name="standin")


def standin_scene(out: Path) -> Path:
    """The bundled scene spec with ``STANDIN_RANDOMIZATION`` as its ``default`` setting, in ``out``."""
    spec = json.loads(DEFAULT_SCENE.read_text(encoding="utf-8"))
    spec["randomization"]["default"] = dict(STANDIN_RANDOMIZATION)
    path = out / "standin_scene.json"
    atomic_write_json(path, spec)
    return path


def sequence_for(index: int) -> RealKeySequence:
    """The real key sequence of stand-in ``index``: sides alternate, each side's sequences in turn."""
    side = SIDES[index % len(SIDES)]
    own = real_key_sequences(side)
    return own[(index // len(SIDES)) % len(own)]


def render_standin(env: gym.Env, keys: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB frames (18, H, W, 3) and actions (18, 3) of one key sequence, the real frame convention."""
    obs, _ = env.reset(seed=seed)
    frames, actions = [obs["image"]], [np.zeros(3, np.float32)]
    for action in key_sequence_actions(keys):
        frames.append(obs["image"])
        actions.append(np.asarray(action, np.float32))
        obs, _, terminated, truncated, _ = env.step(np.asarray(action, np.float32))
        if terminated or truncated:
            break
    return np.stack(frames), np.stack(actions)


def write_standins(
    out: Path, episodes: int, size: tuple[int, int], unpaired: int = 0, seed: int = 0, progress: bool = True
) -> list[Path]:
    """Write ``episodes`` paired (+ ``unpaired``) stand-in episodes into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    appearance = perturbed_appearance()
    atomic_write_json(out / "standin_appearance.json", appearance.to_dict())
    scene = standin_scene(out)
    envs: dict[str, gym.Env] = {}
    paths = []
    for i in tqdm(range(episodes + unpaired), desc="stand-ins", unit="ep", disable=not progress):
        sequence = sequence_for(i)
        side = sequence.side
        if side not in envs:
            description = SceneDescription(
                side=side, image_size=size, scene_spec=str(scene), appearance=appearance
            )
            envs[side] = make_env(description)
        frames, actions = render_standin(envs[side], sequence.keys, seed + i)
        boxes, layout = ("1box", "hori") if i < episodes else ("2box", "vert")
        name = EpisodeName(EPOCH + timedelta(minutes=i), boxes, layout, side, "core", "medium")
        episode = make_episode(
            np.ascontiguousarray(frames[..., ::-1]),
            actions,
            INSTRUCTIONS[side],
            name,
            channel_order="bgr",
            extra_attrs={"source": SOURCE, "standin_keys": sequence.keys, "standin_seed": seed + i},
        )
        paths.append(write_episode(out / name.filename, episode, overwrite=True))
    for env in envs.values():
        env.close()
    return paths


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must be WIDTHxHEIGHT, e.g. 1280x720") from None
    return w, h


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.realgap.standins",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the stand-in episodes")
    parser.add_argument("--episodes", type=int, default=6, help="paired stand-ins (default 6)")
    parser.add_argument(
        "--unpaired", type=int, default=0, help="stand-ins named as another layout (default 0)"
    )
    parser.add_argument("--size", type=_size, default=(1280, 720), help="frame size WxH (default 1280x720)")
    parser.add_argument(
        "--seed", type=int, default=0, help="pose-noise seed of the first episode (default 0)"
    )
    args = parser.parse_args(argv)
    if args.episodes < 0 or args.unpaired < 0:
        parser.exit(2, "error: --episodes and --unpaired must be 0 or more\n")
    paths = write_standins(args.out, args.episodes, args.size, args.unpaired, args.seed)
    print(f"wrote {len(paths)} stand-in episodes (not real) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
