"""Statistics of a set of episode files, as the team's own data analysis reported them.

``summarize_episodes(paths)`` returns a JSON-ready dict: episodes per scenario and per
side x lighting x obstacle distance, frames per episode (mean +- std), event types, a key-press
histogram (actions mapped back to the teleoperation keys of ``mvla_sim.facts.KEY_ACTIONS``;
"other" for anything else, e.g. continuous expert actions), the most common key sequences, and
histograms of ``linear_x`` / ``linear_y``. ``format_summary`` renders it as a plain-text table.
Unreadable files are counted and listed, not fatal.

Run ``python -m train.stats FOLDER [FOLDER ...]`` for the table of a folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mvla_sim.facts import (
    KEY_CHARS,
    KEY_MATCH_ATOL,
    LIGHTINGS,
    NO_KEY_CHAR,
    OBSTACLE_DISTANCES,
    SIDES,
    STOP_CHAR,
    key_char_of_action,
)
from mvla_sim.files import atomic_write_json
from train.episodes import (
    EPISODE_GLOB,
    EVENT_EPISODE_START,
    EVENT_TYPES,
    KINDS,
    Episode,
    EpisodeFormatError,
    EpisodeNameError,
    find_episodes,
    parse_episode_name,
    read_episode,
)

logger = logging.getLogger(__name__)

VALUE_BIN_EDGES: tuple[float, ...] = tuple(float(x) for x in np.linspace(-1.375, 1.375, 12))
"""Histogram bins of action values: width 0.25, centred on -1.25 .. 1.25 (the key value 1.15
falls in the outermost bins). Values beyond the edges count in the outermost bins."""

TOP_SEQUENCES = 10

_LABELS: dict[str, str] = {STOP_CHAR: "space", NO_KEY_CHAR: "other"}
"""Histogram labels of the key-string characters that are not keys themselves."""


def _label(char: str) -> str:
    return _LABELS.get(char, char)


def key_of_action(action: Sequence[float] | np.ndarray, atol: float = KEY_MATCH_ATOL) -> str:
    """The histogram label of ``action``'s key (``mvla_sim.facts.key_char_of_action``).

    Returns a key of ``KEY_ACTIONS`` ("W", "Q", ...), ``"space"`` for the all-zero action, or
    ``"other"`` when no key matches.
    """
    return _label(key_char_of_action(action, atol))


def _expand(paths: Iterable[str | os.PathLike[str]], pattern: str) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such episode folder or file")
        files.extend(find_episodes(p, pattern) if p.is_dir() else [p])
    return files


def _value_stats(values: np.ndarray) -> dict[str, Any]:
    clipped = np.clip(values, VALUE_BIN_EDGES[0], VALUE_BIN_EDGES[-1])
    counts, _ = np.histogram(clipped, bins=np.asarray(VALUE_BIN_EDGES))
    empty = values.size == 0
    return {
        "bin_edges": list(VALUE_BIN_EDGES),
        "counts": [int(c) for c in counts],
        "mean": 0.0 if empty else float(values.mean()),
        "std": 0.0 if empty else float(values.std()),
        "min": 0.0 if empty else float(values.min()),
        "max": 0.0 if empty else float(values.max()),
    }


def summarize_episodes(
    paths: Iterable[str | os.PathLike[str]],
    *,
    pattern: str = EPISODE_GLOB,
    progress: bool = False,
) -> dict[str, Any]:
    """Summarize episode files (folders are expanded with ``pattern``); images are not loaded.

    Key presses are the frames after ``episode_start``. The returned dict holds only str keys,
    ints, floats and lists (``json.dumps`` ready). Unreadable episode files are listed under
    ``"failed"``.

    Raises:
        FileNotFoundError: if a given folder or file does not exist.
    """
    tally = _Tally()
    for path in tqdm(_expand(paths, pattern), desc="episodes", unit="ep", disable=not progress):
        try:
            episode = read_episode(path, load_images=False)
        except (EpisodeFormatError, FileNotFoundError) as exc:
            logger.warning("skipping %s", exc)
            tally.failed.append({"path": str(path), "error": str(exc)})
            continue
        tally.add_name(path)
        tally.add_episode(episode)
    return tally.to_dict()


@dataclass
class _Tally:
    """The counts :func:`summarize_episodes` gathers, one episode at a time."""

    scenarios: Counter[str] = field(default_factory=Counter)
    grid: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=lambda: {
            side: {lighting: dict.fromkeys(OBSTACLE_DISTANCES, 0) for lighting in LIGHTINGS} for side in SIDES
        }
    )
    kinds: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(KINDS, 0)))
    events: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(EVENT_TYPES, 0)))
    keys: Counter[str] = field(
        default_factory=lambda: Counter({_label(c): 0 for c in [*KEY_CHARS.values(), NO_KEY_CHAR]})
    )
    sequences: Counter[str] = field(default_factory=Counter)
    instructions: Counter[str] = field(default_factory=Counter)
    frame_sizes: Counter[str] = field(default_factory=Counter)
    lengths: list[int] = field(default_factory=list)
    linear_x: list[np.ndarray] = field(default_factory=list)
    linear_y: list[np.ndarray] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def add_name(self, path: Path) -> None:
        """Count the scenario, grid cell and kind its file name gives (``unknown`` when it gives none)."""
        try:
            name = parse_episode_name(path)
        except EpisodeNameError:
            self.scenarios["unknown"] += 1
            self.kinds["unknown"] += 1
            return
        self.scenarios[name.scenario] += 1
        self.grid[name.side][name.lighting][name.distance] += 1
        self.kinds[name.kind] += 1

    def add_episode(self, episode: Episode) -> None:
        """Count its frames, events, instruction, frame size, key presses and action values."""
        self.lengths.append(episode.num_frames)
        self.events.update(episode.event_types)
        self.instructions[episode.instruction] += 1
        assert episode.image_shape is not None
        self.frame_sizes[f"{episode.image_shape[1]}x{episode.image_shape[2]}"] += 1
        pressed = [
            key_char_of_action(a)
            for a, e in zip(episode.actions, episode.event_types, strict=True)
            if e != EVENT_EPISODE_START
        ]
        self.keys.update(_label(c) for c in pressed)
        self.sequences["".join(pressed)] += 1
        self.linear_x.append(episode.actions[:, 0])
        self.linear_y.append(episode.actions[:, 1])

    def to_dict(self) -> dict[str, Any]:
        lengths = np.asarray(self.lengths, dtype=np.float64)
        n = len(self.lengths)
        return {
            "num_episodes": n,
            "num_failed": len(self.failed),
            "failed": self.failed,
            "scenarios": dict(sorted(self.scenarios.items())),
            "grid": self.grid,
            "kinds": dict(self.kinds),
            "frames": {
                "total": int(lengths.sum()),
                "mean": float(lengths.mean()) if n else 0.0,
                "std": float(lengths.std()) if n else 0.0,
                "min": int(lengths.min()) if n else 0,
                "max": int(lengths.max()) if n else 0,
                "counts": {str(k): v for k, v in sorted(Counter(self.lengths).items())},
            },
            "events": dict(self.events),
            "keys": dict(self.keys),
            "key_sequences": [{"keys": s, "count": c} for s, c in self.sequences.most_common(TOP_SEQUENCES)],
            "linear_x": _value_stats(np.concatenate(self.linear_x) if self.linear_x else np.zeros(0)),
            "linear_y": _value_stats(np.concatenate(self.linear_y) if self.linear_y else np.zeros(0)),
            "instructions": dict(self.instructions.most_common()),
            "frame_sizes": dict(self.frame_sizes.most_common()),
        }


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return [row.rstrip() for row in out]


def _histogram_rows(stats: dict[str, Any]) -> list[list[Any]]:
    edges = stats["bin_edges"]
    total = max(sum(stats["counts"]), 1)
    return [
        [f"{(lo + hi) / 2:+.2f}", count, "#" * round(40 * count / total)]
        for lo, hi, count in zip(edges[:-1], edges[1:], stats["counts"], strict=True)
        if count
    ]


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text report of ``summarize_episodes``'s result."""
    frames = summary["frames"]
    lines = [
        f"Episodes: {summary['num_episodes']}  (unreadable: {summary['num_failed']})",
        f"Frames per episode: {frames['mean']:.1f} +- {frames['std']:.1f}  "
        f"(min {frames['min']}, max {frames['max']}, total {frames['total']})",
        "Frame sizes (HxW): " + ", ".join(f"{k}: {v}" for k, v in summary["frame_sizes"].items()),
        "",
        "Episodes per scenario",
        *_table(["scenario", "episodes"], summary["scenarios"].items()),
        "",
        "Side x lighting x obstacle distance",
        *_table(
            ["side", "lighting", *OBSTACLE_DISTANCES],
            [
                [side, lighting, *summary["grid"][side][lighting].values()]
                for side in summary["grid"]
                for lighting in summary["grid"][side]
            ],
        ),
        "",
        "Kinds: " + ", ".join(f"{k}: {v}" for k, v in summary["kinds"].items()),
        "Events: " + ", ".join(f"{k}: {v}" for k, v in summary["events"].items()),
        "",
        "Key presses (frames after episode_start)",
    ]
    total_keys = max(sum(summary["keys"].values()), 1)
    lines += _table(
        ["key", "count", "share"],
        [[k, v, f"{100 * v / total_keys:.1f} %"] for k, v in summary["keys"].items() if v],
    )
    lines += ["", "Most common key sequences (_ = space, ? = other)"]
    lines += _table(
        ["keys", "episodes"], [[s["keys"] or "(none)", s["count"]] for s in summary["key_sequences"]]
    )
    for axis in ("linear_x", "linear_y"):
        stats = summary[axis]
        lines += [
            "",
            f"{axis}: mean {stats['mean']:+.3f}, std {stats['std']:.3f}, "
            f"range [{stats['min']:+.2f}, {stats['max']:+.2f}]",
            *_table(["bin centre", "frames", ""], _histogram_rows(stats)),
        ]
    if summary["failed"]:
        lines += ["", "Unreadable files"] + [f"  {f['error']}" for f in summary["failed"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m train.stats``: print the statistics table of episode folders or files."""
    parser = argparse.ArgumentParser(
        prog="python -m train.stats",
        description="Summarize Mobile VLA episode files (.h5, real format): episodes per scenario, "
        "frames per episode, key presses and action histograms.",
    )
    parser.add_argument("paths", nargs="+", help="episode folders and/or .h5 files")
    parser.add_argument(
        "--pattern", default=EPISODE_GLOB, help=f"file glob inside folders (default {EPISODE_GLOB})"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the summary as JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        files = _expand(args.paths, args.pattern)
    except FileNotFoundError as exc:
        parser.exit(2, f"error: {exc}\n")
    if not files:
        parser.exit(2, f"error: no episode files matching {args.pattern!r} in {args.paths}\n")
    summary = summarize_episodes(files, progress=True)
    sys.stdout.write(format_summary(summary) + "\n")
    if args.json is not None:
        atomic_write_json(args.json, summary)
        logger.info("summary written to %s", args.json)
    return 1 if summary["num_episodes"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
