"""Env overhead benchmark: env steps/s with rendering vs a bare PyBullet loop rendering the same scene.

    python benchmarks/bench_env.py [--steps 200] [--lighting day|evening] [--size 256x144]

Both loops render the same world at the same size with the same lighting, in one process, side
by side (interleaved rounds, best of N), so the ratio is robust to a noisy shared machine.
Goal: ratio >= 0.8 (env overhead at most 20 %).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import pybullet as p
from pybullet_utils import bullet_client

import mvla_sim
from mvla_sim.camera import Camera, camera_pose
from mvla_sim.env import DEFAULT_IMAGE_SIZE
from mvla_sim.facts import CORE_KEY_SEQUENCES, key_sequence_actions
from mvla_sim.robot import OmniBase
from mvla_sim.scene import load_scene_spec, sample_layout
from mvla_sim.world import CorridorWorld


def env_loop(env: gym.Env, steps: int) -> float:
    actions = [np.asarray(a[:2], dtype=np.float32) for a in key_sequence_actions(CORE_KEY_SEQUENCES["left"])]
    t0 = time.perf_counter()
    done, i, seed = True, 0, 0
    for _ in range(steps):
        if done:
            env.reset(seed=seed)
            seed += 1
            i = 0
        _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
        i += 1
        done = terminated or truncated
    return steps / (time.perf_counter() - t0)


def bare_loop(lighting: str, size: tuple[int, int], steps: int) -> float:
    spec = load_scene_spec()
    client = bullet_client.BulletClient(connection_mode=p.DIRECT)
    world = CorridorWorld(client, spec)
    OmniBase(client, spec.robot, spec.drive)
    layout = sample_layout(spec, "left", lighting, "medium", np.random.default_rng(0), randomize=False)
    world.place(layout)
    camera = Camera(client, spec.robot, *size)
    light = spec.lighting[lighting]
    t0 = time.perf_counter()
    for k in range(steps):
        pose = camera_pose(0.1 * (k % 17), 0.0, 0.0, spec.robot.camera_pitch_deg, spec.robot)
        camera.render_raw(pose, light, light.light_direction, 1.0)
    rate = steps / (time.perf_counter() - t0)
    client.disconnect()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="steps per measurement round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--lighting", choices=["day", "evening"], default="day")
    parser.add_argument("--size", default="x".join(map(str, DEFAULT_IMAGE_SIZE)), help="WIDTHxHEIGHT")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    env = gym.make(mvla_sim.env_id("left", args.lighting), image_size=size)
    env_rates, bare_rates = [], []
    for _ in range(args.rounds):
        env_rates.append(env_loop(env, args.steps))
        bare_rates.append(bare_loop(args.lighting, size, args.steps))
    env_best, bare_best = max(env_rates), max(bare_rates)
    print(f"lighting={args.lighting} size={size[0]}x{size[1]} steps/round={args.steps} rounds={args.rounds}")
    print(f"{'loop':<28}{'steps/s (best)':>16}")
    print(f"{'env.step (render + drive)':<28}{env_best:>16.1f}")
    print(f"{'bare PyBullet render':<28}{bare_best:>16.1f}")
    print(f"ratio env/bare = {env_best / bare_best:.3f}  (goal >= 0.8)")


if __name__ == "__main__":
    main()
