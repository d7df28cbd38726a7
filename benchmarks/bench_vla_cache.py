"""Benchmark: VLAPolicy.act() latency with the per-frame feature cache vs without.

Without the cache every step re-encodes the whole 8-frame window through the backbone (what
the real deployment does: history_type "post" makes 8 backbone passes per action); with it,
only the newest frame is encoded and the LSTM head re-runs over the cached features. Both give
the same actions (tested in tests/policies/test_vla_model.py).

    python benchmarks/bench_vla_cache.py [--preset tiny] [-n 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.latency import measure_latency, random_obs_fn  # noqa: E402
from policies.vla.config import VLAConfig  # noqa: E402
from policies.vla.policy import VLAPolicy  # noqa: E402
from policies.vla.profiles import resolve  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="act() latency with vs without the per-frame feature cache")
    parser.add_argument(
        "--preset", choices=["tiny", "kosmos2-base"], default="tiny", help="random-weight model size"
    )
    parser.add_argument("-n", type=int, default=30, help="timed act() calls per mode")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first (>= 8 fills the window)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)

    config = VLAConfig(backbone=args.preset, hidden_size=512, lora_enable=True)  # the report's head and LoRA
    policy = VLAPolicy.from_config(config, seed=0, device=args.device)
    obs_fn = random_obs_fn(360, 640)
    results = {}
    for cached in (True, False):
        overrides = {"device": args.device, "use_feature_cache": cached}
        policy = VLAPolicy(policy.model, resolve(policy.config, overrides=overrides))
        results[cached] = measure_latency(policy, obs_fn, n=args.n, warmup=args.warmup)
    on, off = results[True], results[False]
    print(f"preset {args.preset} on {args.device}, {args.n} calls after {args.warmup} warm-up")
    print(f"{'mode':<10}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'cached':<10}{on['p50_ms']:>10.1f}{on['p95_ms']:>10.1f}")
    print(f"{'uncached':<10}{off['p50_ms']:>10.1f}{off['p95_ms']:>10.1f}")
    print(f"speed-up (uncached p50 / cached p50): {off['p50_ms'] / on['p50_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
