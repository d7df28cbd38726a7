"""``python -m mvla_sim.match --real DIR --out appearance.json``: fit the appearance to real frames.

The real episodes of ``DIR`` that can be paired (``eval.realgap.sources``) are replayed in the
calibrated scene their names describe (``eval.realgap.pairing``); every third episode (sorted by
name) is held out, the rest are fitted. The fit changes only the continuous numbers of the
appearance (``FIT_FIELDS``: exposure, white balance, ambient and diffuse light per lighting the
episodes show, floor and wall colours, gamma, saturation, vignetting, blur, lens distortion);
textures, tape marks, sensor noise and JPEG quality stay the base appearance's, and geometry the
scene spec's. It minimises the paired appearance gap (``eval.realgap.metrics.pixel_delta_e``:
mean per-pixel CIE76 difference at 64 x 36, of frames rendered at ``FIT_SIZE`` from the replayed
poses), plus, with ``--ckpt``, ``--feature-weight`` times the Fréchet distance in that
checkpoint's image features (``eval.realgap.features``). The optimiser is SciPy's bounded Powell
(``scipy.optimize.minimize``, derivative-free) on the fields scaled to [0, 1]; it stops at
``--max-evals`` objective evaluations or after ``--time-limit`` seconds, whichever comes first,
and keeps the best point seen.

It prints the gap before and after, per scene, on the held-out episodes, and writes the fitted
appearance with a ``fit`` section: the fields (before, after, bounds), the episodes used and held
out, the objective, the residual and the time.

Imports: the simulator itself never needs torch or policies. This command line reads episode
files through ``train.episodes`` and pairs them through ``eval.realgap`` (imported when it runs);
``--ckpt`` imports torch and ``policies.vla`` lazily, through ``eval.realgap.features``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from mvla_sim.appearance import Appearance, get_value, load_appearance, with_values
from mvla_sim.files import atomic_write_json

FIT_SIZE = (128, 72)
"""Render size (16:9) of the frames the objective compares; the metric itself is taken at 64 x 36."""
DEFAULT_MAX_EVALS = 300
DEFAULT_TIME_LIMIT_S = 240.0
FRAME_STRIDE = 2
"""Every second frame of an episode enters the fit (frames 0 and 1 show the same pose)."""
FIT_FIELDS: tuple[tuple[str, float, float], ...] = (
    ("lighting.{L}.exposure", 0.4, 1.6),
    ("lighting.{L}.ambient", 0.2, 1.0),
    ("lighting.{L}.diffuse", 0.0, 0.9),
    ("lighting.{L}.white_balance_rgb.0", 0.7, 1.3),
    ("lighting.{L}.white_balance_rgb.2", 0.6, 1.3),
    ("materials.floor.rgb.0", 0.3, 1.0),
    ("materials.floor.rgb.1", 0.3, 1.0),
    ("materials.floor.rgb.2", 0.3, 1.0),
    ("materials.wall.rgb.0", 0.5, 1.0),
    ("materials.wall.rgb.2", 0.5, 1.0),
    ("camera.gamma", 0.6, 1.8),
    ("camera.saturation", 0.4, 1.5),
    ("camera.vignetting", 0.0, 0.6),
    ("camera.blur_sigma_px", 0.0, 6.0),
    ("camera.lens_distortion", 0.0, 0.6),
)
"""(dotted field, low, high); ``{L}`` stands for each lighting the fitted episodes show."""


class _TimeUp(Exception):
    pass


def fields_for(lightings: Sequence[str]) -> list[tuple[str, float, float]]:
    """``FIT_FIELDS`` with ``{L}`` expanded to the given lightings (each field once)."""
    out: list[tuple[str, float, float]] = []
    for path, lo, hi in FIT_FIELDS:
        names = [path.format(L=light) for light in sorted(set(lightings))] if "{L}" in path else [path]
        out += [(name, lo, hi) for name in names if (name, lo, hi) not in out]
    return out


@dataclass
class Target:
    """One paired episode to fit: the env of its scene, its replayed poses and its real frames."""

    name: str
    scene: str
    env: Any
    poses: list[tuple[float, float, float]]
    real: np.ndarray
    """uint8 RGB real frames at the env's image size, one per pose."""


@dataclass
class FitResult:
    appearance: Appearance
    before: float
    after: float
    evaluations: int
    seconds: float
    stopped: str
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)


def make_objective(
    targets: list[Target], feature_term: Callable[[np.ndarray, np.ndarray], float] | None = None
) -> Callable[[Appearance], float]:
    """Appearance -> mean paired pixel gap over ``targets`` (+ the feature term on all frames)."""
    from eval.realgap.metrics import pixel_delta_e
    from eval.realgap.pairing import render_at

    def objective(appearance: Appearance) -> float:
        gaps, reals, sims = [], [], []
        for t in targets:
            t.env.unwrapped.set_appearance(appearance)
            sim = render_at(t.env, t.poses)
            gaps.append(pixel_delta_e(t.real, sim))
            reals.append(t.real)
            sims.append(sim)
        value = float(np.mean(gaps))
        if feature_term is not None:
            value += feature_term(np.concatenate(reals), np.concatenate(sims))
        return value

    return objective


def fit(
    base: Appearance,
    objective: Callable[[Appearance], float],
    fields: list[tuple[str, float, float]],
    max_evals: int = DEFAULT_MAX_EVALS,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
) -> FitResult:
    """Minimise ``objective`` over ``fields`` from ``base`` (bounded Powell, best point kept)."""
    lo = np.array([f[1] for f in fields])
    span = np.array([f[2] - f[1] for f in fields])
    x0 = np.clip((np.array([get_value(base, f[0]) for f in fields]) - lo) / span, 0.0, 1.0)
    start = time.monotonic()
    best: dict[str, Any] = {"value": np.inf, "x": x0, "n": 0}

    def appearance_at(x: np.ndarray) -> Appearance:
        values = dict(zip((f[0] for f in fields), lo + np.clip(x, 0, 1) * span, strict=True))
        return with_values(base, values, name=f"{base.name}-fitted")

    def scaled(x: np.ndarray) -> float:
        if best["n"] >= max_evals or time.monotonic() - start > time_limit_s:
            raise _TimeUp
        best["n"] += 1
        value = objective(appearance_at(x))
        if value < best["value"]:
            best.update(value=value, x=np.array(x))
        return value

    before = scaled(x0)
    stopped = "converged"
    try:
        optimize.minimize(
            scaled,
            x0,
            method="Powell",
            bounds=[(0.0, 1.0)] * len(fields),
            options={"xtol": 1e-2, "ftol": 1e-3},
        )
    except _TimeUp:
        stopped = "max_evals" if best["n"] >= max_evals else "time_limit"
    fitted = appearance_at(best["x"])
    report = {
        f[0]: {
            "before": round(get_value(base, f[0]), 4),
            "after": round(get_value(fitted, f[0]), 4),
            "bounds": [f[1], f[2]],
        }
        for f in fields
    }
    return FitResult(
        fitted, before, float(best["value"]), best["n"], time.monotonic() - start, stopped, report
    )


def split_held_out(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(fit, held out): every third name (sorted) is held out; one of two when there are two."""
    ordered = sorted(names)
    if len(ordered) < 2:
        raise ValueError(
            f"the fit needs at least 2 paired episodes (one to fit, one held out), got {len(ordered)}"
        )
    held = [n for i, n in enumerate(ordered) if i % 3 == 2] or ordered[-1:]
    return [n for n in ordered if n not in held], held


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mvla_sim.match",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--real", type=Path, required=True, help="folder of real .h5 episodes (the real format)"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the fitted appearance JSON")
    parser.add_argument(
        "--appearance",
        default="default",
        help="starting appearance: a bundled name or a JSON path (default: default)",
    )
    parser.add_argument(
        "--channel-order",
        choices=("auto", "bgr", "rgb"),
        default="auto",
        help="channel order the .h5 files store (auto: as each file records, else the real camera's bgr)",
    )
    parser.add_argument(
        "--max-evals", type=int, default=DEFAULT_MAX_EVALS, help="objective evaluations at most"
    )
    parser.add_argument(
        "--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, help="seconds at most for the fit"
    )
    parser.add_argument(
        "--max-episodes", type=int, default=12, help="paired episodes used at most (sorted by name)"
    )
    parser.add_argument("--ckpt", help="add the feature gap in this checkpoint's image features (torch)")
    parser.add_argument(
        "--profile", default="as_trained", help="profile of --ckpt (as_trained or as_deployed)"
    )
    parser.add_argument(
        "--feature-weight", type=float, default=1.0, help="weight of the feature term (default 1)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def load_targets(episodes: list[Any], base: Appearance, size: tuple[int, int] = FIT_SIZE) -> list[Target]:
    """Replay each paired episode once (at ``size``) and keep every ``FRAME_STRIDE``-th pose and frame."""
    from eval.realgap.pairing import make_env, replay
    from eval.realgap.sources import resize_frames

    targets = []
    for episode in episodes:
        env = make_env(episode, size, base)
        played = replay(episode, env)
        keep = list(range(1, len(played.poses), FRAME_STRIDE))
        real = resize_frames(episode.frames[: len(played.poses)], size)[keep]
        targets.append(Target(episode.name, episode.scene, env, [played.poses[i] for i in keep], real))
    return targets


def held_out_gaps(episodes: list[Any], appearances: dict[str, Appearance]) -> dict[str, dict[str, Any]]:
    """Per scene, per appearance: the appearance gap of the held-out episodes at analysis size."""
    from eval.realgap.metrics import appearance_gap
    from eval.realgap.pairing import make_env, replay

    scenes: dict[str, dict[str, Any]] = {}
    for scene in sorted({e.scene for e in episodes}):
        group = [e for e in episodes if e.scene == scene]
        size = (group[0].frames.shape[2], group[0].frames.shape[1])
        scenes[scene] = {"episodes": [e.name for e in group]}
        for label, appearance in appearances.items():
            reals, sims = [], []
            for episode in group:
                played = replay(episode, make_env(episode, size, appearance))
                reals.append(episode.frames[: len(played.frames)])
                sims.append(played.frames)
            scenes[scene][label] = appearance_gap(np.concatenate(reals), np.concatenate(sims), paired=True)
    return scenes


def _feature_term(args: argparse.Namespace) -> Callable[[np.ndarray, np.ndarray], float] | None:
    if not args.ckpt:
        return None
    from eval.realgap.features import embed, frechet_distance
    from policies.vla.policy import VLAPolicy

    policy = VLAPolicy.from_checkpoint(args.ckpt, args.profile)
    weight = float(args.feature_weight)

    def term(real: np.ndarray, sim: np.ndarray) -> float:
        return weight * frechet_distance(embed(policy, real), embed(policy, sim))

    return term


def format_held_out(scenes: dict[str, dict[str, Any]], labels: Sequence[str]) -> str:
    """A Markdown table of the held-out gaps per scene: pixel ΔE, mean-colour ΔE, histogram, SSIM."""
    head = ["scene", "episodes"] + [
        f"{m} ({label})" for m in ("pixel ΔE", "ΔE means", "SSIM") for label in labels
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scene, row in scenes.items():
        cells = [scene, str(len(row["episodes"]))]
        for metric in ("pixel_delta_e", "delta_e_means", "ssim"):
            cells += [f"{row[label][metric]:.3f}" for label in labels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_match(args: argparse.Namespace) -> int:
    """The command: load, split, fit, evaluate on the held-out episodes, write the appearance."""
    from eval.realgap.sources import load_real

    base = load_appearance(args.appearance)
    episodes = [e for e in load_real(args.real, args.channel_order) if e.paired][: args.max_episodes]
    fit_names, held_names = split_held_out([e.name for e in episodes])
    fit_set = [e for e in episodes if e.name in fit_names]
    held_set = [e for e in episodes if e.name in held_names]
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    log(f"fitting {base.name!r} on {len(fit_set)} paired episodes, {len(held_set)} held out")
    targets = load_targets(fit_set, base)
    fields = fields_for([e.lighting for e in fit_set])
    result = fit(base, make_objective(targets, _feature_term(args)), fields, args.max_evals, args.time_limit)
    log(
        f"objective {result.before:.3f} -> {result.after:.3f} in {result.evaluations} evaluations, "
        f"{result.seconds:.0f} s ({result.stopped})"
    )
    scenes = held_out_gaps(held_set, {"before": base, "after": result.appearance})
    log(format_held_out(scenes, ("before", "after")))
    fitted = result.appearance
    data = fitted.to_dict()
    data["description"] = f"{base.name} fitted by python -m mvla_sim.match to {args.real}"
    data["fit"] = {
        "base": base.name,
        "real": str(args.real),
        "channel_order": args.channel_order,
        "optimizer": "scipy.optimize.minimize(method='Powell'), fields scaled to [0, 1] within their bounds",
        "objective": "mean paired pixel CIE76 ΔE at 64x36"
        + (
            f" + {args.feature_weight} x Fréchet distance in {args.ckpt}'s image features"
            if args.ckpt
            else ""
        ),
        "fields": result.fields,
        "fit_episodes": fit_names,
        "held_out_episodes": held_names,
        "evaluations": result.evaluations,
        "seconds": round(result.seconds, 1),
        "stopped": result.stopped,
        "residual": {
            "fit_objective_before": round(result.before, 4),
            "fit_objective_after": round(result.after, 4),
            "held_out": scenes,
        },
    }
    atomic_write_json(args.out, data)
    log(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_match(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
