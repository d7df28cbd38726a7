"""Rollout throughput: episodes per second at 1 and 2 workers, the parallel speed-up, and where time goes.

    python benchmarks/bench_rollout.py                 # reference checkpoint if bundled, else the expert
    python benchmarks/bench_rollout.py --policy expert --episodes 24
    python benchmarks/bench_rollout.py --ckpt runs/.../epoch_epoch=06-val_loss=val_loss=0.067.ckpt

Wall time includes starting the worker processes (imports, env and policy construction), as a
real run pays it. The goal is a speed-up of at least 1.6x with 2 workers on 2 cores. The time
split comes from the episode records: ``policy.act`` vs ``env.step`` (physics + camera
rendering) vs the rest (reset, video encoding, bookkeeping).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from eval.config import RolloutConfig, SceneSettings  # noqa: E402
from eval.results.records import EpisodeRecord  # noqa: E402
from eval.runner.plan import checkpoint_specs, other_spec, plan_episodes  # noqa: E402
from eval.runner.policy_factory import PolicySpec  # noqa: E402
from eval.runner.workers import execute_tasks  # noqa: E402
from eval.select import REFERENCE_RUN_DIR, resolve_checkpoints  # noqa: E402
from policies.vla.profiles import DEFAULT_PROFILE  # noqa: E402

GOAL_SPEEDUP = 1.6


def policy_spec(args: argparse.Namespace) -> PolicySpec:
    if args.ckpt:
        return checkpoint_specs(
            resolve_checkpoints([args.ckpt], Path("runs")).choices[0], (DEFAULT_PROFILE,), {}
        )[0]
    if args.policy:
        return other_spec(args.policy)
    if any(REFERENCE_RUN_DIR.glob("*.ckpt")):
        choice = resolve_checkpoints(["top1"], REFERENCE_RUN_DIR, runs_explicit=True).choices[0]
        return checkpoint_specs(choice, (DEFAULT_PROFILE,), {})[0]
    return other_spec("expert")


def run(spec: PolicySpec, workers: int, args: argparse.Namespace) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        config = RolloutConfig(
            ckpt=[],
            episodes=args.episodes,
            sides=("left", "right"),
            lightings=("day",),
            workers=workers,
            out=Path(tmp),
            videos=args.videos,
            videos_dir=Path(tmp) / "videos",
            scene=SceneSettings(image_size=args.image_size),
            seed=args.seed,
        )
        tasks, _ = plan_episodes([spec], config, set(), Path(tmp) / "videos")
        t0 = time.perf_counter()
        results = list(execute_tasks(tasks, config, spec.kind == "checkpoint", progress=False))
        wall = time.perf_counter() - t0
    errors = [r for r in results if not isinstance(r, EpisodeRecord)]
    if errors:
        raise SystemExit(f"error: {len(errors)} episodes failed: {errors[0].error}")
    return wall, [r.to_dict() for r in results]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--policy", default=None, help="a baseline name (default: reference checkpoint, else expert)"
    )
    parser.add_argument("--ckpt", default=None, help="a checkpoint path to benchmark instead")
    parser.add_argument("--episodes", type=int, default=25, help="episodes per cell; 2 cells (default 25)")
    parser.add_argument("--videos", type=int, default=0, help="videos per cell (default 0)")
    parser.add_argument("--image-size", type=lambda t: tuple(int(v) for v in t.split("x")), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    spec = policy_spec(args)
    print(f"policy: {spec.id} ({spec.kind}), {2 * args.episodes} episodes, cpu_count={os.cpu_count()}")
    results = {}
    for workers in (1, 2):
        wall, records = run(spec, workers, args)
        results[workers] = {"wall_s": wall, "episodes": len(records), "eps_per_s": len(records) / wall}
        print(
            f"workers={workers}: {len(records)} episodes in {wall:6.1f} s = {len(records) / wall:5.2f} episodes/s"
        )
        if workers == 1:
            t = {
                k: float(np.sum([r["time_s"][k] for r in records]))
                for k in ("act", "env_step", "render", "total")
            }
            steps = int(np.sum([r["steps"] for r in records]))
            share = {k: t[k] / t["total"] for k in ("act", "env_step", "render")}
            share["other"] = 1.0 - sum(share.values())
            results["time_share"] = share
            results["per_step_ms"] = {
                "act": 1000 * t["act"] / steps,
                "env_step": 1000 * t["env_step"] / steps,
            }
            print(
                f"time in episodes (1 worker): policy.act {share['act']:.0%} "
                f"({results['per_step_ms']['act']:.1f} ms/step), env.step incl. camera rendering "
                f"{share['env_step']:.0%} ({results['per_step_ms']['env_step']:.1f} ms/step), "
                f"video {share['render']:.0%}, other (reset, bookkeeping) {share['other']:.0%}"
            )
    speedup = results[2]["eps_per_s"] / results[1]["eps_per_s"]
    results["speedup"] = speedup
    verdict = "meets" if speedup >= GOAL_SPEEDUP else "below"
    print(f"speed-up with 2 workers: {speedup:.2f}x ({verdict} the {GOAL_SPEEDUP}x goal)")
    if args.json:
        args.json.write_text(
            json.dumps({"policy": spec.id, **{str(k): v for k, v in results.items()}}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
