"""``python -m eval.realgap --real DIR [--ckpt CKPT ...] [--profile P] [--appearance A ...] --out DIR``

How far apart are the real camera's frames and the simulator's, and does a checkpoint act alike
on both? For a folder of real episodes (the real ``.h5`` format, stored BGR: ``--channel-order``)
or of plain JPEG/PNG images:

- each episode whose file name names the simulated scene (``1box_hori``) is **paired**: its
  recorded actions are replayed in the calibrated scene of its side, lighting and distance from
  the nominal layout, and real frame t meets simulated frame t (same pose);
- every other episode, and plain images, are **unpaired**: compared as distributions with the
  simulator's reference frames (the representative real key sequences replayed by day).

Reported per scene, overall and for the unpaired frames, per ``--appearance`` (default: the
bundled ``default``): (a) the appearance gap (CIELAB mean/spread, histogram distance, SSIM and
gradients at the model's input size, paired pixel colour difference); (b) the feature gap
(Fréchet distance in the checkpoint's own Kosmos-2 image features); (c) the behaviour gap (open
loop under ``--profile``, default ``as_trained``: direction agreement of the actions on real vs
paired simulated windows, mean absolute difference, each one's agreement with the recorded key);
(d) contact sheets (real | simulated | difference). Without ``--ckpt``, (b) and (c) use the bundled
reference run's best checkpoint (``assets/checkpoints/reference``), and the report says so.

Writes ``realgap.json``, ``report.html`` (self-contained: images embedded) and
``sheet_<appearance>_<scene>.png`` into ``--out``; prints the table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.realgap.analysis import run_analysis
from eval.realgap.report import format_table, render_html, write_sheets
from eval.realgap.sources import CHANNEL_ORDERS, load_real
from eval.select import REFERENCE_RUN_DIR, SelectionError, resolve_checkpoints
from mvla_sim.files import atomic_write_json, atomic_write_text
from policies.vla.profiles import DEFAULT_PROFILE

logger = logging.getLogger("eval.realgap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eval.realgap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--real", type=Path, required=True, help="folder of real .h5 episodes or JPEG/PNG images"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (report.html, realgap.json, sheets)"
    )
    parser.add_argument(
        "--ckpt",
        action="append",
        default=[],
        help="checkpoint(s): paths, or top3/best/last of --runs (repeatable)",
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="training output folder for top3/best/last"
    )
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"profile of the checkpoints (default {DEFAULT_PROFILE})"
    )
    parser.add_argument(
        "--appearance",
        action="append",
        default=[],
        help="appearance(s) to compare: bundled name (default, v0_tiles) or JSON path (repeatable; default: default)",
    )
    parser.add_argument(
        "--channel-order",
        choices=CHANNEL_ORDERS,
        default="auto",
        help="channel order the .h5 files store (auto: as each file records, else the real camera's bgr)",
    )
    parser.add_argument(
        "--width", type=int, default=256, help="analysis width in pixels, real aspect (default 256)"
    )
    parser.add_argument("--max-episodes", type=int, default=0, help="use at most N episodes (sorted; 0: all)")
    parser.add_argument("--no-behaviour", action="store_true", help="skip (c), the slowest part")
    parser.add_argument("--no-checkpoint", action="store_true", help="skip (b) and (c): appearance gap only")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def load_policies(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The checkpoints (``--ckpt``, else the bundled reference run's best) and notes saying which."""
    if args.no_checkpoint:
        return {}, ["(b) and (c) skipped (--no-checkpoint)"]
    from policies.vla.policy import VLAPolicy

    notes = []
    if args.ckpt:
        selection = resolve_checkpoints(args.ckpt, args.runs, runs_explicit=args.runs != Path("runs"))
    else:
        selection = resolve_checkpoints(["best"], REFERENCE_RUN_DIR, runs_explicit=True)
        notes.append(
            f"no --ckpt: the feature and behaviour gaps use the bundled reference run's best checkpoint "
            f"({selection.choices[0].path}), a tiny Kosmos-2 trained on simulated episodes: its encoder, "
            "not a real checkpoint's"
        )
    policies = {c.policy_id: VLAPolicy.from_checkpoint(c.path, args.profile) for c in selection.choices}
    notes.append(
        f"checkpoints under profile {args.profile}: "
        + ", ".join(f"{k} ({c.path})" for k, c in zip(policies, selection.choices, strict=True))
    )
    return policies, notes


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    start = time.monotonic()
    try:
        episodes = load_real(args.real, args.channel_order, args.width)
        if args.max_episodes > 0:
            episodes = episodes[: args.max_episodes]
        policies, notes = load_policies(args)
        appearances = args.appearance or ["default"]
        result, sims_by = run_analysis(episodes, appearances, policies, behaviour=not args.no_behaviour)
    except (FileNotFoundError, ValueError, SelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paired = sum(e.paired for e in episodes)
    notes += [f"{e.name}: unpaired ({e.why_unpaired})" for e in episodes if not e.paired]
    standins = sum(e.standin for e in episodes)
    if standins:
        notes.insert(
            0,
            f"{standins} of {len(episodes)} episodes are stand-ins (source=standin): rendered, NOT real frames",
        )
    result.update(
        real=str(args.real),
        channel_order=args.channel_order,
        profile=args.profile,
        episodes={
            "paired": paired,
            "unpaired": len(episodes) - paired,
            "standins": standins,
            "names": [e.name for e in episodes],
        },
        notes=notes,
        seconds=round(time.monotonic() - start, 1),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    sheets = write_sheets(episodes, sims_by, args.out)
    result["sheets"] = {k: {s: str(p) for s, p in v.items()} for k, v in sheets.items()}
    atomic_write_json(args.out / "realgap.json", result)
    atomic_write_text(args.out / "report.html", render_html(result, sheets))
    print(format_table(result))
    for note in notes:
        print(f"note: {note}")
    print(f"\nwrote {args.out}/report.html and realgap.json in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
