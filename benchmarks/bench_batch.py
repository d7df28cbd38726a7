"""Batched rollouts: episodes/s with ``--batch N`` (N = 1, 4, 8, 16) against per-process workers.

    python benchmarks/bench_batch.py                      # tiny preset (the reference checkpoint) + real size
    python benchmarks/bench_batch.py --episodes 8 --skip-real-size

1. **Tiny preset** (the bundled reference checkpoint, ``as_trained``): the same plan (2 cells x
   ``--episodes``) through ``eval.rollout``'s runners: 1 and 2 worker processes (one model copy
   and one torch thread each), then ``--batch N`` (N slot processes around one model in this
   process, ``--torch-threads`` all cores: it computes while the slots wait). Wall time includes
   starting the processes, as a real run pays it; every run's records are checked against the
   1-worker run's (timing apart).
2. **Real size** (``kosmos2-base``: the real Kosmos-2 sizes, random weights, built from its
   config, no download): a real-size step costs seconds on a CPU, so this part is short and
   measures the model alone (the env's step is ~1 % of it): frames/s of ``act_batch`` over N
   live episodes (``--real-steps`` steps each, after a warm-up step) against one episode's
   ``act()`` with one thread (what a worker process gets; two workers would need two 6.9 GB copies).
   Episodes/s = frames/s / 17 (the real horizon).
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

from eval.config import RolloutConfig  # noqa: E402
from eval.results import records as rec  # noqa: E402
from eval.results.records import EpisodeRecord  # noqa: E402
from eval.runner.backends import make_pool  # noqa: E402
from eval.runner.plan import plan_episodes  # noqa: E402
from eval.runner.policy_factory import PolicySpec, checkpoint_specs  # noqa: E402
from eval.runner.workers import configure_torch, passive_openmp  # noqa: E402
from eval.select import REFERENCE_RUN_DIR, resolve_checkpoints  # noqa: E402
from mvla_sim.facts import EPISODE_ACTIONS, INSTRUCTIONS  # noqa: E402
from policies.vla.profiles import DEFAULT_PROFILE  # noqa: E402

BATCHES = (1, 4, 8, 16)


def reference_spec() -> PolicySpec:
    choice = resolve_checkpoints(["top1"], REFERENCE_RUN_DIR, runs_explicit=True).choices[0]
    return checkpoint_specs(choice, (DEFAULT_PROFILE,), {})[0]


def rollout(specs: list[PolicySpec], episodes: int, **execution) -> tuple[float, list[dict]]:
    """Wall time (s) and records of the plan (``specs`` x 2 cells x ``episodes``) run with ``execution``."""
    with tempfile.TemporaryDirectory() as tmp:
        config = RolloutConfig(
            ckpt=[], episodes=episodes, sides=("left", "right"), lightings=("day",), out=Path(tmp), videos=0,
            videos_dir=Path(tmp) / "videos", **execution,
        )  # fmt: skip
        tasks, _ = plan_episodes(specs, config, set(), Path(tmp) / "videos")
        configure_torch(config.torch_threads, True)
        t0 = time.perf_counter()
        with make_pool(config, True, len(tasks)) as pool:
            results = list(pool.run(tasks, progress=False))
        wall = time.perf_counter() - t0
    errors = [r for r in results if not isinstance(r, EpisodeRecord)]
    if errors:
        raise SystemExit(f"error: {len(errors)} episodes failed: {errors[0].error}")
    return wall, sorted((rec.without_timing(r.to_dict()) for r in results), key=rec.record_key)


def tiny_preset(args: argparse.Namespace) -> dict:
    spec, cores = reference_spec(), os.cpu_count() or 1
    n = 2 * args.episodes
    print(f"tiny preset: {spec.id} ({spec.path}), {n} episodes per run, {cores} cores")
    runs = [("workers=1", {"workers": 1}), ("workers=2", {"workers": 2})]
    runs += [(f"batch={b}", {"batch": b, "torch_threads": cores}) for b in BATCHES]
    out, reference = {}, None
    for name, execution in runs:
        wall, records = rollout([spec], args.episodes, **execution)
        reference = reference if reference is not None else records
        out[name] = {"wall_s": wall, "eps_per_s": n / wall, "same_records": records == reference}
        ratio = out[name]["eps_per_s"] / out["workers=1"]["eps_per_s"]
        print(
            f"  {name:<10} {wall:6.1f} s  {n / wall:5.2f} episodes/s  {ratio:4.2f}x workers=1  "
            f"records identical: {'yes' if records == reference else 'NO'}"
        )
    return out


def real_size(args: argparse.Namespace) -> dict:
    import torch

    from policies.vla.config import VLAConfig
    from policies.vla.policy import VLAPolicy

    t0 = time.perf_counter()
    policy = VLAPolicy.from_config(VLAConfig(backbone="kosmos2-base", hidden_size=512, lora_enable=True))
    print(f"real size: kosmos2-base, random weights, built in {time.perf_counter() - t0:.0f} s")
    rng = np.random.default_rng(0)
    frame = lambda: {"image": rng.integers(0, 256, (144, 256, 3), dtype=np.uint8)}  # noqa: E731
    out = {}
    for threads, sizes in ((1, (1,)), (os.cpu_count() or 1, BATCHES)):
        torch.set_num_threads(threads)
        for n in sizes:
            if n > args.real_max_batch:
                continue
            episodes = [policy.start_episode(INSTRUCTIONS["left" if i % 2 else "right"]) for i in range(n)]
            policy.act_batch(episodes, [frame() for _ in episodes])  # warm-up step
            t0 = time.perf_counter()
            for _ in range(args.real_steps):
                policy.act_batch(episodes, [frame() for _ in episodes])
            fps = n * args.real_steps / (time.perf_counter() - t0)
            name = f"batch={n} threads={threads}"
            out[name] = {"frames_per_s": fps, "eps_per_s": fps / EPISODE_ACTIONS}
            ratio = fps / out["batch=1 threads=1"]["frames_per_s"]
            print(
                f"  {name:<20} {1000 / fps:7.0f} ms/frame  {fps / EPISODE_ACTIONS:.4f} episodes/s  {ratio:4.2f}x"
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--episodes", type=int, default=16, help="tiny preset: episodes per cell, 2 cells (16)"
    )
    parser.add_argument("--real-steps", type=int, default=2, help="real size: timed steps per batch size (2)")
    parser.add_argument("--real-max-batch", type=int, default=16, help="real size: largest batch (16)")
    parser.add_argument("--skip-real-size", action="store_true", help="only the tiny preset")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    passive_openmp()  # before torch is imported: the batched model waits for the envs between steps
    results = {"machine": f"{os.cpu_count()} CPU cores", "tiny": tiny_preset(args)}
    if not args.skip_real_size:
        results["real_size"] = real_size(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["same_records"] for r in results["tiny"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
