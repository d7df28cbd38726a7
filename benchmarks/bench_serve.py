"""Serving overhead: the reference checkpoint in-process vs through ``policies.http.serve`` on loopback.

    python benchmarks/bench_serve.py                  # 6 episodes each way, the bundled reference checkpoint
    python benchmarks/bench_serve.py --episodes 20 --keep-alive --json serve.json

Both sides run the same seeded episodes in the simulator with the same work per frame: in-process
``VLAPolicy`` under ``as_deployed`` (the robot client's resize + JPEG + the server's decode, done
in process), and the same checkpoint served by ``python -m policies.http.serve`` (a separate process,
one torch thread) driven by ``policies.http.client.HTTPPolicy`` exactly as the robot client
drives it. Printed: episodes/s of each and their ratio, per-step act() latency (p50/p95/mean),
and the protocol's overhead per step (ms) split into client encoding, HTTP + framework, and the
server's own time. Both sides must produce the same actions; the benchmark checks it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from eval.config import Cell, RolloutConfig  # noqa: E402
from eval.results.stats import percentiles  # noqa: E402
from eval.runner.episode import run_episode  # noqa: E402
from eval.runner.plan import episode_seed  # noqa: E402
from eval.runner.policy_factory import PolicySpec  # noqa: E402
from eval.runner.workers import make_env  # noqa: E402
from eval.select import REFERENCE_RUN_DIR, resolve_checkpoints  # noqa: E402

KEY = "bench-serve-key-0123456789"


def run(
    policy: Any, spec: PolicySpec, cells: list[Cell], episodes: int, config: RolloutConfig
) -> dict[str, Any]:
    envs = {c.name: make_env(c, config) for c in cells}
    records = []
    try:
        t0 = time.perf_counter()
        for cell in cells:
            for i in range(episodes):
                records.append(
                    run_episode(envs[cell.name], policy, spec, cell, i, episode_seed(0, cell.name, i))
                )
        wall = time.perf_counter() - t0
    finally:
        for env in envs.values():
            env.close()
    errors = [
        r.failure_reason
        for r in records
        if r.failure_reason and r.failure_reason.split(":")[0] in ("policy_error", "server_fault")
    ]
    if errors:
        raise SystemExit(f"error: {errors[0]}")

    def steps(key: str) -> list[float]:
        return [v for r in records for v in ((getattr(r, key) or {}).get("steps") or [])]

    return {"wall_s": wall, "episodes": len(records), "eps_per_s": len(records) / wall, "records": records,
            "act_ms": steps("latency_ms"), "round_trip_ms": steps("round_trip_ms"),
            "server_ms": steps("server_latency_ms"), "env_step_s": sum(r.time_s["env_step"] for r in records)}  # fmt: skip


def start_server(ckpt: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "VLA_API_KEY": KEY, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "policies.http.serve", "--ckpt", str(ckpt), "--profile", "as_deployed", "--port", "0",
           "--policy-option", "cpu_threads=1"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    if " on http://" not in line:
        proc.kill()
        raise SystemExit(f"error: the server did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, line.split(" on ")[1].split()[0]


def stats(ms: list[float]) -> str:
    p = percentiles(ms, (50, 95))
    return f"p50 {p['p50']:6.1f}  p95 {p['p95']:6.1f}  mean {np.mean(ms):6.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ckpt", type=Path, default=None, help="checkpoint (default: the reference run's best)"
    )
    parser.add_argument("--episodes", type=int, default=6, help="episodes per cell, 2 cells (default 6)")
    parser.add_argument(
        "--keep-alive", action="store_true", help="reuse one connection (the robot opens one per request)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    from policies.http.client import HTTPPolicy
    from policies.vla.policy import VLAPolicy

    ckpt = args.ckpt or resolve_checkpoints(["best"], REFERENCE_RUN_DIR, runs_explicit=True).choices[0].path
    if not Path(ckpt).is_file():
        raise SystemExit(f"error: {ckpt}: no such checkpoint")
    cells = [Cell("left", "day", "medium"), Cell("right", "day", "medium")]
    config = RolloutConfig(ckpt=[], episodes=args.episodes, workers=1, videos=0)
    print(
        f"checkpoint {Path(ckpt).name}, profile as_deployed, {2 * args.episodes} episodes each way, 1 torch thread"
    )

    local_spec = PolicySpec(kind="checkpoint", id="in-process", path=str(ckpt), profile="as_deployed")
    local = run(
        VLAPolicy.from_checkpoint(ckpt, "as_deployed", cpu_threads=1),
        local_spec,
        cells,
        args.episodes,
        config,
    )

    proc, url = start_server(Path(ckpt))
    try:
        client = HTTPPolicy(url, api_key=KEY, keep_alive=args.keep_alive)
        health = client.check()
        served_spec = PolicySpec(kind="http", id="served", name=url)
        served = run(client, served_spec, cells, args.episodes, config)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    same = [a.actions for a in local["records"]] == [b.actions for b in served["records"]]
    ratio = served["eps_per_s"] / local["eps_per_s"]
    act_local, act_served = np.mean(local["act_ms"]), np.mean(served["act_ms"])
    overhead = act_served - act_local
    encode = act_served - np.mean(served["round_trip_ms"])
    wire = np.mean(served["round_trip_ms"]) - np.mean(served["server_ms"])
    print(f"{'':<12}{'episodes/s':>11}  per-step act()")
    print(f"{'in-process':<12}{local['eps_per_s']:>11.2f}  {stats(local['act_ms'])}")
    print(
        f"{'served':<12}{served['eps_per_s']:>11.2f}  {stats(served['act_ms'])}   ({url}, {health['model_name']})"
    )
    print(
        f"{'':<12}{'':>11}  round trip  {stats(served['round_trip_ms'])}; server latency_ms {stats(served['server_ms'])}"
    )
    print(f"ratio served / in-process: {ratio:.2f}x episodes/s")
    print(
        f"protocol overhead per step: {overhead:+.1f} ms (served act() - in-process act()); of which HTTP request "
        f"and answer + FastAPI {wire:.1f} ms (round trip - server latency_ms); client resize + JPEG + base64 "
        f"{encode:.1f} ms"
    )
    print(f"same actions in-process and served: {'yes' if same else 'NO'}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "checkpoint": str(ckpt),
                    "episodes": 2 * args.episodes,
                    "keep_alive": args.keep_alive,
                    "in_process_eps_per_s": local["eps_per_s"],
                    "served_eps_per_s": served["eps_per_s"],
                    "ratio": ratio,
                    "act_ms_in_process_mean": act_local,
                    "act_ms_served_mean": act_served,
                    "round_trip_ms_mean": float(np.mean(served["round_trip_ms"])),
                    "server_latency_ms_mean": float(np.mean(served["server_ms"])),
                    "overhead_ms_per_step": overhead,
                    "same_actions": same,
                },  # fmt: skip
                indent=2,
            )
        )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
