"""``python -m eval.replay``: the calibration table: every real key sequence replayed open-loop, with videos.

Each accepted key sequence of FACTS.md (``mvla_sim.facts.REAL_KEY_SEQUENCES``: 6 left, 3 right,
with their real episode counts) is pressed key by key from the nominal start (randomization off)
in its own scene and in the mirrored one, by day and in the evening. A faithful simulator makes
every one succeed in its own scene and fail the side rule in the mirrored one. The table lists,
per sequence: the real count, the outcome per scene and lighting, the end pose (m, deg), the
smallest clearance along the path (m, and to what) and the distance to the bottle (m).

``--randomized N`` adds, per sequence, its success rate in its own scene over N seeds of the
``--randomization`` setting (``default``: the real set-up's repeatability, where the real
sequences should still succeed in the large majority; ``hard``: beyond it). One video per
sequence (own scene, by day) goes to ``videos/replay/``; its name ends with the outcome.

``--episodes PATH ...`` replays recorded episode files instead (files or folders, in any layout
the team writes: collector, v3, v5, read by ``train.episodes.read_episode``): each file's actions,
open-loop from the nominal start of the scene its instruction names (lighting from its file name's
``_evening`` suffix), one line per file with its layout, where its instruction came from, the keys
and the outcome. Exit status 0 when every file succeeds in its own scene, 1 otherwise.

Exit status 0 when the calibration holds, 1 when a sequence behaves unlike the real data.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eval.results.video import EpisodeVideo, caption
from mvla_sim.facts import (
    INSTRUCTIONS,
    LIGHTINGS,
    REAL_KEY_SEQUENCES,
    SIDES,
    RealKeySequence,
    key_sequence_actions,
)
from mvla_sim.make import SceneDescription, make_env
from mvla_sim.task import outcome_from_info
from train.episodes import (
    EPISODE_GLOB,
    EpisodeFormatError,
    EpisodeNameError,
    find_episodes,
    parse_episode_name,
    read_episode,
)
from train.stats import key_of_action

SCENES: tuple[tuple[str, str], ...] = tuple((side, lighting) for side in SIDES for lighting in LIGHTINGS)
RATE_IMAGE_SIZE = (64, 36)
"""Frame size of the randomized runs (the outcome does not depend on it; 16:9 like the camera)."""


def run_sequence(keys: str, scene: str, lighting: str, **options: Any) -> dict:
    """Press ``keys`` in the ``scene`` (``left``/``right``) scene; return the final info.

    ``options`` are :func:`run_actions`'s: ``seed``, ``randomization`` (``None`` replays from the
    nominal layout; otherwise the named setting with ``seed``), ``image_size`` and ``video`` (an mp4
    written there, renamed to end with ``__<outcome>.mp4``).
    """
    actions = np.asarray(key_sequence_actions(keys), dtype=np.float32)
    return run_actions(actions, list(keys), scene, lighting, **options)


def run_actions(
    actions: np.ndarray,
    labels: Sequence[str],
    scene: str,
    lighting: str,
    *,
    seed: int = 0,
    randomization: str | None = None,
    image_size: tuple[int, int] | None = None,
    video: Path | None = None,
) -> dict:
    """Step ``actions`` (K, 2 or 3) in the scene, labelled ``labels`` in the video; see ``run_sequence``."""
    keys = "".join(label if len(label) == 1 else f"[{label}]" for label in labels)
    scene = SceneDescription(side=scene, lighting=lighting, randomization=randomization or "none")
    env = make_env(
        scene,
        render_mode="rgb_array" if video else None,
        **({"image_size": image_size} if image_size else {}),
    )
    writer = EpisodeVideo(video) if video is not None else None
    try:
        obs, info = env.reset(seed=seed)
        if writer is not None:
            writer.append(env.render(), caption(0, None, obs["instruction"], f"keys {keys}"))
        for step, (key, action) in enumerate(zip(labels, actions, strict=True), start=1):
            obs, _, terminated, truncated, info = env.step(np.asarray(action[:2], dtype=np.float32))
            if writer is not None:
                writer.append(env.render(), caption(step, action, obs["instruction"], f"key {key}"))
            if terminated or truncated:
                break
    finally:
        if writer is not None:
            writer.close()
        env.close()
    info = dict(info)
    info["outcome"] = outcome_from_info(info)
    if writer is not None:
        final = writer.path.with_name(f"{writer.path.stem}__{info['outcome']}.mp4")
        writer.path.replace(final)
        info["video"] = str(final)
    return info


@dataclass
class CalibrationRow:
    """One real sequence's line of the calibration table."""

    side: str
    keys: str
    name: str
    real_episodes: int
    outcomes: dict[str, str]
    end_xy_m: list[float]
    end_yaw_deg: float
    min_clearance_m: float
    min_clearance_to: str
    distance_to_bottle_m: float
    holds: bool
    video: str | None = None
    randomized: dict = field(default_factory=dict)


def calibrate(
    sequence: RealKeySequence, videos: Path | None, randomized: int, randomization: str, progress: bool
) -> CalibrationRow:
    """The table row of ``sequence``: nominal outcomes in every scene and, optionally, its rate."""
    outcomes: dict[str, str] = {}
    own: dict | None = None
    video = None
    for scene, lighting in SCENES:
        path = None
        if videos is not None and scene == sequence.side and lighting == "day":
            path = videos / f"{sequence.name.replace(' ', '_')}__{scene}-{lighting}-medium.mp4"
        info = run_sequence(sequence.keys, scene, lighting, video=path)
        outcomes[f"{scene}-{lighting}"] = info["outcome"]
        if scene == sequence.side and lighting == "day":
            own, video = info, info.get("video")
    assert own is not None
    holds = all(
        (outcome == "success") == (cell.split("-")[0] == sequence.side) for cell, outcome in outcomes.items()
    ) and all(
        outcome == "wrong_side" for cell, outcome in outcomes.items() if cell.split("-")[0] != sequence.side
    )
    row = CalibrationRow(
        side=sequence.side,
        keys=sequence.keys,
        name=sequence.name,
        real_episodes=sequence.episodes,
        outcomes=outcomes,
        end_xy_m=[round(v, 3) for v in own["robot_xy"]],
        end_yaw_deg=round(math.degrees(own["robot_yaw"]), 1),
        min_clearance_m=round(own["min_clearance_m"], 3),
        min_clearance_to=own["min_clearance_to"],
        distance_to_bottle_m=round(own["distance_to_goal"], 3),
        holds=holds,
        video=video,
    )
    if randomized:
        seeds = range(randomized)
        results = [
            run_sequence(
                sequence.keys,
                sequence.side,
                "day",
                seed=s,
                randomization=randomization,
                image_size=RATE_IMAGE_SIZE,
            )["outcome"]
            for s in tqdm(seeds, desc=sequence.name, unit="ep", disable=not progress, leave=False)
        ]
        counts = {o: results.count(o) for o in sorted(set(results))}
        row.randomized = {
            "randomization": randomization,
            "episodes": randomized,
            "successes": counts.get("success", 0),
            "rate": counts.get("success", 0) / randomized,
            "outcomes": counts,
        }
    return row


def format_table(rows: list[CalibrationRow]) -> str:
    """The calibration table as Markdown."""
    cells = [f"{s}-{light}" for s, light in SCENES]
    head = ["sequence", "real", *cells, "end x, y (m)", "min clearance (m)", "to bottle (m)"]
    randomized = rows[0].randomized if rows else {}
    if randomized:
        head.append(f"success, {randomized['randomization']} rand. ({randomized['episodes']} seeds)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        line = [
            f"`{r.name}`",
            str(r.real_episodes),
            *(r.outcomes[c] for c in cells),
            f"{r.end_xy_m[0]:.2f}, {r.end_xy_m[1]:+.2f}",
            f"{r.min_clearance_m:.3f} ({r.min_clearance_to})",
            f"{r.distance_to_bottle_m:.2f}",
        ]
        if r.randomized:
            line.append(
                f"{100 * r.randomized['rate']:.0f} % ({r.randomized['successes']}/{r.randomized['episodes']})"
            )
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def episode_files(paths: Sequence[Path]) -> list[Path]:
    """The episode files named by ``paths`` (files, or folders searched for ``episode_*.h5``)."""
    files: list[Path] = []
    for path in paths:
        files.extend(find_episodes(path, EPISODE_GLOB) if path.is_dir() else [path])
    return files


def _scene_of(instruction: str, path: Path) -> tuple[str, str]:
    """(side, lighting) of a recorded episode: the side its instruction names, the lighting its name's."""
    sides = [side for side, text in INSTRUCTIONS.items() if text == instruction]
    sides = sides or [side for side in SIDES if f" {side}" in instruction.lower()]
    try:
        name = parse_episode_name(path)
    except EpisodeNameError:
        name = None
    if len(sides) != 1:
        if name is None:
            raise EpisodeFormatError(
                f"{path.name}: instruction {instruction!r} names no side (left or right)"
            )
        sides = [name.side]
    return sides[0], name.lighting if name is not None else "day"


def replay_episode_file(path: Path, videos: Path | None) -> dict:
    """Replay a recorded episode's actions (after its ``episode_start`` frame) in its own scene."""
    episode = read_episode(path, load_images=False, instruction_from_name=True)
    side, lighting = _scene_of(episode.instruction, path)
    actions = episode.actions[1:]
    labels = [key_of_action(a) for a in actions]
    video = None if videos is None else videos / f"{path.stem}__{side}-{lighting}-medium.mp4"
    info = run_actions(actions, labels, side, lighting, video=video)
    return {
        "file": path.name,
        "layout": episode.layout,
        "instruction_source": episode.instruction_source,
        "channel_order": episode.channel_order,
        "scene": f"{side}-{lighting}",
        "keys": " ".join(labels),
        "outcome": info["outcome"],
        "video": info.get("video"),
    }


def format_episode_table(rows: list[dict]) -> str:
    """The Markdown table of ``--episodes``: one line per file."""
    lines = [
        "| file | layout | instruction from | colour order | scene | keys | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = (
            r["file"],
            r["layout"],
            r["instruction_source"],
            r["channel_order"],
            r["scene"],
            r["keys"],
            r["outcome"],
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _replay_files(paths: Sequence[Path], videos: Path | None, quiet: bool) -> int:
    try:
        files = episode_files(paths)
        if not files:
            raise FileNotFoundError(f"no episode files in {', '.join(str(p) for p in paths)}")
        rows = [
            replay_episode_file(p, videos) for p in tqdm(files, desc="episodes", unit="ep", disable=quiet)
        ]
    except (FileNotFoundError, EpisodeFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_episode_table(rows))
    failed = [r["file"] for r in rows if r["outcome"] != "success"]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} recorded episodes succeed in their own scene")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--videos-dir",
        type=Path,
        default=Path("videos") / "replay",
        help="where the videos go (default videos/replay/)",
    )
    parser.add_argument("--no-videos", action="store_true", help="only print the table")
    parser.add_argument(
        "--randomized",
        type=int,
        default=0,
        metavar="N",
        help="also replay each sequence in N randomized scenes of its own side and report its success rate (e.g. 200)",
    )
    parser.add_argument(
        "--randomization",
        choices=("default", "hard"),
        default="default",
        help="randomization setting of --randomized: 'default' (the real set-up's repeatability) or 'hard'",
    )
    parser.add_argument(
        "--episodes",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="replay these recorded episode files or folders (collector, v3 or v5 layout) instead of the real "
        "key sequences",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the table as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.randomized < 0:
        parser.exit(2, f"error: --randomized {args.randomized} must be 0 or more seeds\n")
    videos = None if args.no_videos else args.videos_dir
    if args.episodes:
        return _replay_files(args.episodes, videos, args.quiet)
    rows = []
    for sequence in tqdm(REAL_KEY_SEQUENCES, desc="sequences", unit="seq", disable=args.quiet):
        rows.append(calibrate(sequence, videos, args.randomized, args.randomization, progress=not args.quiet))
    print(format_table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    broken = [r.name for r in rows if not r.holds]
    if videos is not None:
        print(f"\nvideos: {videos}/ (one per sequence, own scene by day)")
    if broken:
        print(f"calibration BROKEN: {', '.join(broken)} did not behave as in the real data")
        return 1
    print(
        f"calibration holds: all {len(rows)} real sequences succeed in their own scene, by day and in the "
        "evening, and fail the side rule in the mirrored one"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
