"""Ray backend: episodes/s of ``--backend ray`` (a local Ray) against the local worker pool.

    python benchmarks/bench_ray.py                 # reference checkpoint + the expert, 2 x 16 episodes each
    python benchmarks/bench_ray.py --episodes 8

The same plan (the bundled reference checkpoint ``as_trained`` and the scripted expert, 2 cells x
``--episodes``) runs through ``eval.rollout``'s local pool with one worker process per core, then
on a local Ray with as many CPUs (env chunks as Ray tasks, the checkpoint in one model actor that
batches the concurrent episodes). Wall time includes starting the workers, and for Ray starting
the local cluster, as a real run pays it; the records are checked to be identical (timing apart).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from bench_batch import reference_spec, rollout  # first: it puts the repository on sys.path

from eval.runner.policy_factory import other_spec
from eval.runner.workers import passive_openmp


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=16, help="episodes per cell and policy, 2 cells (16)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    passive_openmp()
    cores = os.cpu_count() or 1
    specs = [reference_spec(), other_spec("expert")]
    n = 2 * args.episodes * len(specs)
    print(f"{' + '.join(s.id for s in specs)}: {n} episodes per run, {cores} cores")
    results, reference = {}, None
    for name, execution in (
        ("local pool", {"workers": cores}),
        ("local Ray", {"backend": "ray", "workers": cores}),
    ):
        wall, records = rollout(specs, args.episodes, **execution)
        reference = reference if reference is not None else records
        results[name] = {"wall_s": wall, "eps_per_s": n / wall, "same_records": records == reference}
        ratio = results[name]["eps_per_s"] / results["local pool"]["eps_per_s"]
        print(
            f"  {name:<10} {wall:6.1f} s  {n / wall:5.2f} episodes/s  {ratio:4.2f}x the local pool  "
            f"records identical: {'yes' if records == reference else 'NO'}"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": f"{cores} CPU cores", **results}, indent=2))
    return 0 if all(r["same_records"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
