"""``python -m train.generate``: the command line (options, the statistics table, the summary line)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mvla_sim.facts import OBSTACLE_DISTANCES
from train.episodes import CHANNEL_ORDERS, EPISODE_LAYOUTS, EpisodeFormatError
from train.generate.config import EXPERT_MODES, GenerateConfig, GenerateConfigError
from train.generate.key_report import format_key_sequence_distribution
from train.generate.run import CONFIG_FILE, REPORT_FILE, run_generation
from train.stats import format_summary, summarize_episodes


def build_parser() -> argparse.ArgumentParser:
    defaults = GenerateConfig(episodes=1, out=Path("."))
    parser = argparse.ArgumentParser(
        prog="python -m train.generate",
        description=(
            "Generate simulated training episodes: the scripted expert drives the simulated robot\n"
            "around the box in randomized corridor scenes, and every rollout is saved as one .h5\n"
            "file in the real robot's episode format (18 frames: episode_start + 17 key presses).\n"
            "Rerun the same command to resume an interrupted run: existing episodes are kept."
        ),
        epilog=(
            "examples:\n"
            "  python -m train.generate --episodes 200 --out data/sim\n"
            "  python -m train.generate --episodes 468 --out data/sim_real_mix --mix real --workers 2\n"
            "  python -m train.generate --episodes 40 --out data/sim_720p --image-size 1280x720 "
            "--distances close,medium,far\n\n"
            f"Besides the episodes, OUT gets {CONFIG_FILE} (the settings) and {REPORT_FILE} "
            "(one record per episode)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--episodes", type=int, required=True, metavar="N", help="number of rollouts (episode indices)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the .h5 episode files"
    )
    parser.add_argument(
        "--mix",
        default="balanced",
        metavar="MIX",
        help=(
            "share of each scenario, left / left_evening / right / right_evening: 'balanced' (default, "
            "a quarter each, so the scarce evening scenes get as much data as day ones), 'real' (the "
            "real data's 206/12/250 of 468) or weights like left=0.44,left_evening=0.03,right=0.53"
        ),
    )
    parser.add_argument(
        "--distances",
        default=",".join(defaults.distances),
        metavar="LIST",
        help=f"obstacle distances, comma-separated among {','.join(OBSTACLE_DISTANCES)} (default medium, as all real data)",
    )
    parser.add_argument(
        "--image-size",
        default="x".join(str(v) for v in defaults.image_size),
        metavar="WxH",
        help="frame size, 16:9 (default 256x144, quick; 1280x720 is the real camera's, about 20x slower and 25x larger)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="run seed; episode i depends only on (seed, i) (default 0)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=defaults.noise,
        metavar="P",
        help=(
            f"probability per key press of a random movement key instead of the expert's (default {defaults.noise}); "
            "the pressed key is recorded, so the data shows the expert correcting; 0 gives clean 'core' episodes"
        ),
    )
    parser.add_argument(
        "--mode",
        choices=EXPERT_MODES,
        default=defaults.mode,
        help="expert actions: the 8 teleoperation key directions (default, as the real data) or any direction",
    )
    parser.add_argument(
        "--keep-failures",
        action="store_true",
        help="also save episodes in which the expert failed (default: drop them and report how many)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        metavar="N",
        help=f"parallel processes (default 1; this machine has {os.cpu_count()} cores); results do not depend on it",
    )
    parser.add_argument(
        "--evening-suffix",
        action=argparse.BooleanOptionalAction,
        default=defaults.evening_suffix,
        help="end evening episodes' file names with '_evening' as the real files do (default); "
        "--no-evening-suffix names them like day episodes (lighting kept in the attributes)",
    )
    parser.add_argument(
        "--layout",
        choices=EPISODE_LAYOUTS,
        default=defaults.layout,
        help="the team's episode file layout to write: collector (default, November 2025: what the fork's "
        "MobileVLAH5Dataset reads), v3 (instruction in attrs['task']) or v5 (observations/images, "
        "their current data)",
    )
    parser.add_argument(
        "--channel-order",
        choices=CHANNEL_ORDERS,
        default=defaults.channel_order,
        help="colour order of the stored images: bgr (default, like the team's collector, so sim and real "
        "episodes mix in the fork's loader) or rgb (the env's frames as they are); recorded in every file",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no statistics table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m train.generate``: generate episodes, then print their statistics and a summary line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = GenerateConfig(
            episodes=args.episodes,
            out=args.out,
            mix=args.mix,
            distances=args.distances,
            image_size=args.image_size,
            seed=args.seed,
            noise=args.noise,
            mode=args.mode,
            keep_failures=args.keep_failures,
            workers=args.workers,
            evening_suffix=args.evening_suffix,
            layout=args.layout,
            channel_order=args.channel_order,
        )
        result = run_generation(config, progress=not args.quiet)
    except (GenerateConfigError, EpisodeFormatError) as exc:
        parser.exit(2, f"error: {exc}\n")
    except OSError as exc:
        parser.exit(1, f"error: {exc}\n")
    if result.paths and not args.quiet:
        sys.stdout.write(format_summary(summarize_episodes(result.paths)) + "\n\n")
        sys.stdout.write(format_key_sequence_distribution(result.totals["key_sequences"]) + "\n\n")
    sys.stdout.write(result.summary_line() + "\n")
    return 0 if result.paths else 1
