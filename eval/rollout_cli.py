"""The command line of ``python -m eval.rollout``: its parser, and the one step to a :class:`RolloutConfig`.

:func:`build_parser` documents every option; :func:`config_from_args` reads the parsed options
once into the typed config (:mod:`eval.config`) that the rest of the evaluation is handed.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from eval.config import (
    BACKENDS,
    DEFAULT_EPISODES,
    DEFAULT_MAX_SERVER_FAULTS,
    DEFAULT_RUNS,
    DEFAULT_VIDEOS,
    QUICK_EPISODES,
    RolloutConfig,
    SceneSettings,
    UsageError,
)
from eval.probes import DEFAULT_PROBES
from eval.select import REFERENCE_RUN_DIR, REPO_ROOT
from mvla_sim.facts import LIGHTINGS, SIDES
from policies.options import parse_key_values
from policies.vla.profiles import DEFAULT_PROFILE

_DESCRIPTION = (
    "Turn trained checkpoints into measured closed-loop success rates in the simulator.\n\n"
    "Picks checkpoints of the newest training run under --runs (by default the 3 with the lowest\n"
    "val_loss), runs every one on the same seeded episodes over the scene grid (left/right x\n"
    "day/evening x obstacle distance), and writes episodes.jsonl, summary.json, report.md/.html,\n"
    "plots, and videos whose names carry the outcome.\n\n"
    "A policy served over the team's HTTP inference protocol (their server, or python -m\n"
    "policies.http.serve) is evaluated like a checkpoint: --policy http://HOST:PORT. Each episode\n"
    "posts /reset, then each step posts /predict with the robot client's payload (224x224\n"
    "JPEG, base64, the instruction); the key comes from VLA_API_KEY."
)


def _epilog(hw50: float, hw10: float) -> str:
    return (
        "examples:\n"
        "  python -m eval.rollout --quick                      # top-3 of the newest run, a few minutes\n"
        "  python -m eval.rollout --ckpt top3 --baselines expert,straight,random\n"
        "  python -m eval.rollout --ckpt best,last --runs runs/my_exp\n"
        "  python -m eval.rollout --ckpt path/to/epoch_epoch=06-val_loss=val_loss=0.067.ckpt\n"
        "  python -m eval.rollout --ckpt top3 --profile as_trained,as_deployed   # both, side by side\n"
        "  python -m eval.rollout --ckpt best --randomization hard --lens-distortion 0.15   # a harder scene\n"
        "  python -m eval.rollout --policy expert --episodes 20\n"
        "  VLA_API_KEY=... python -m eval.rollout --policy http://127.0.0.1:8000   # a served policy\n"
        "  python -m eval.rollout --ckpt best --baselines http://gpu-box:8000 --policy-option timeout_s=2\n"
        "  python -m eval.rollout --quick --out results/quick     # run again to resume: finished episodes are kept\n"
        "  python -m eval.results.report results/20250101-120000          # rebuild report.md/.html\n\n"
        f"episodes per cell: the default {DEFAULT_EPISODES} gives a 95 % Wilson interval of at most\n"
        f"+/-{hw50:.2f} per cell (the worst case, at a 50 % success rate); --quick uses {QUICK_EPISODES}\n"
        f"(+/-{hw10:.2f}). Every policy runs the same episodes, so differences between checkpoints are\n"
        "tested pairwise (exact McNemar) on shared seeds.\n\n"
        "servers: before any episode each URL is checked (GET /health, then an authenticated\n"
        "/reset); an unreachable server, model_loaded: false or a refused key stop with a one-line\n"
        "error. Episodes against one URL run one at a time (the server holds one history). A\n"
        "timeout, a refused/reset connection or an HTTP error fails that episode with the reason\n"
        "recorded; --max-server-faults consecutive ones stop the run (rerun to resume).\n\n"
        "exit status: 0 done, 1 some episodes hit environment errors or server faults stopped the run,\n"
        "2 bad input (a server failing its check, or scene settings the env refuses, included), 130 interrupted.\n\n"
        "scene: --randomization, --drive-model, --renderer, --lens-distortion, --image-size and --max-steps go to\n"
        "every env of the run (mvla_sim.make_env) and are recorded in summary.json and the report; the simulator\n"
        "judges them before anything runs (a value it refuses stops with its one-line reason)."
    )


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _image_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT, e.g. 160x90")
    return int(m.group(1)), int(m.group(2))


def build_parser() -> argparse.ArgumentParser:
    from eval.results.stats import wilson_half_width  # scipy: not needed by worker processes

    hw50, hw10 = wilson_half_width(DEFAULT_EPISODES), wilson_half_width(QUICK_EPISODES)
    parser = argparse.ArgumentParser(
        prog="python -m eval.rollout",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_DESCRIPTION,
        epilog=_epilog(hw50, hw10),
    )
    _policy_arguments(parser.add_argument_group("what to evaluate"))
    _episode_arguments(parser.add_argument_group("episodes"), hw50)
    _scene_arguments(parser.add_argument_group("scene (every env of the run)"))
    _output_arguments(parser.add_argument_group("output"))
    _execution_arguments(parser.add_argument_group("execution"))
    return parser


def _policy_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--ckpt",
        nargs="+",
        default=None,
        metavar="SEL",
        help="checkpoints: topK (e.g. top3: lowest val_loss), best, last, or .ckpt paths; "
        "several allowed, commas too (default: top3)",
    )
    g.add_argument(
        "--runs",
        type=Path,
        default=None,
        metavar="DIR",
        help="training output folder; the newest folder under it holding *.ckpt is the run "
        "(default: runs/; when runs/ has none, the bundled reference run "
        f"{REFERENCE_RUN_DIR.relative_to(REPO_ROOT)}/ is used; another folder without checkpoints is an error)",
    )
    g.add_argument(
        "--profile",
        type=_csv,
        default=[DEFAULT_PROFILE],
        metavar="P",
        help="evaluate every checkpoint under each profile, on the same seeds: as_trained (what the model "
        "saw in training), as_deployed (what the team's server and robot client do); e.g. "
        f"as_trained,as_deployed (default {DEFAULT_PROFILE}; the first ranks the checkpoints)",
    )
    g.add_argument(
        "--baselines",
        type=_csv,
        default=[],
        metavar="NAMES",
        help="other policies evaluated on the same episodes: baselines (expert,straight,random,always_left), "
        "module:factory, or server URLs http://HOST:PORT",
    )
    g.add_argument(
        "--policy",
        action="append",
        type=_csv,
        default=None,
        metavar="NAME",
        help="evaluate policies without checkpoints: a baseline (e.g. expert), a 'module:factory' of your own, "
        "or a server URL http://HOST:PORT; repeatable, commas too",
    )
    g.add_argument(
        "--probes",
        default=None,
        metavar="P",
        help="instruction probes run for every policy on the same episodes, with the instruction replaced: "
        "swap (the other side's), neutral (same token count, no side), unrelated (unrelated text); a verdict "
        "per policy (follows its instruction / instruction-blind) in summary.json and the report "
        f"(default {','.join(DEFAULT_PROBES)} when checkpoints are evaluated, else none; 'none' turns them off)",
    )


def _episode_arguments(g: argparse._ArgumentGroup, hw50: float) -> None:
    g.add_argument(
        "--episodes",
        type=int,
        default=None,
        metavar="N",
        help=f"episodes per scene cell (default {DEFAULT_EPISODES}: 95%% CI half-width <= {hw50:.2f})",
    )
    g.add_argument(
        "--quick",
        action="store_true",
        help=f"a few-minute check: {QUICK_EPISODES} episodes per cell, 1 video per cell",
    )
    g.add_argument("--sides", type=_csv, default=list(SIDES), metavar="S", help="left,right (default both)")
    g.add_argument(
        "--lightings", type=_csv, default=list(LIGHTINGS), metavar="L", help="day,evening (default both)"
    )
    g.add_argument(
        "--distances",
        type=_csv,
        default=["medium"],
        metavar="D",
        help="obstacle distances: close,medium,far (default medium)",
    )
    g.add_argument("--seed", type=int, default=0, help="base seed of the episode list (default 0)")


def _scene_arguments(g: argparse._ArgumentGroup) -> None:
    """One option per :class:`SceneSettings` field, named after it; unset, the simulator's default."""
    g.add_argument(
        "--randomization",
        metavar="NAME",
        help="domain randomization of start/box/bottle poses, lighting, textures, camera pitch and speed: "
        "none (the nominal scene), default (within the real set-up's repeatability), hard (beyond it) "
        "(default: default)",
    )
    g.add_argument(
        "--drive-model",
        metavar="MODEL",
        help="throttle: the real driver (direction only, at the calibrated speed); velocity: proportional "
        "(default: throttle)",
    )
    g.add_argument(
        "--renderer",
        metavar="NAME",
        help="tiny: CPU TinyRenderer; egl: GPU, where PyBullet's EGL plugin loads (default: tiny)",
    )
    g.add_argument(
        "--lens-distortion",
        type=float,
        metavar="K",
        help="barrel distortion like the real lens, 0-1 (0.1-0.3 is mild; default: the appearance's)",
    )
    g.add_argument(
        "--appearance",
        metavar="PATH",
        help="what the simulator shows: a bundled appearance (default, v0_tiles) or a JSON file, e.g. one "
        "written by python -m mvla_sim.match (default: default); recorded with every result",
    )
    g.add_argument(
        "--image-size", type=_image_size, metavar="WxH", help="camera image size (default: 256x144)"
    )
    g.add_argument(
        "--max-steps", type=int, metavar="N", help="actions per episode (default: 17, the real protocol)"
    )


def _output_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="results folder (default results/<timestamp>/); reuse it to resume",
    )
    g.add_argument(
        "--videos",
        type=int,
        default=None,
        metavar="K",
        help=f"record the first K episodes of each cell and policy, successes and failures (default {DEFAULT_VIDEOS}; 0 = none)",
    )
    g.add_argument(
        "--real",
        type=Path,
        metavar="DIR",
        help="folder of real .h5 episodes: the report adds each checkpoint's open-loop direction agreement "
        "on those frames and on paired simulated frames beside its closed-loop success (eval.realgap)",
    )
    g.add_argument(
        "--real-channel-order",
        choices=("auto", "bgr", "rgb"),
        default="auto",
        help="channel order of --real (auto: as each file records, else bgr)",
    )
    g.add_argument(
        "--videos-dir",
        type=Path,
        default=REPO_ROOT / "videos",
        metavar="DIR",
        help="videos go to DIR/<run>/ (default videos/)",
    )


def _execution_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes (default: all CPUs); results do not depend on it",
    )
    g.add_argument(
        "--torch-threads", type=int, default=1, metavar="N", help="torch threads per worker (default 1)"
    )
    g.add_argument(
        "--policy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a policy setting, repeatable. For checkpoints: device=cuda, dtype=bfloat16, era=2025-11-20, "
        "token_layout=upstream, gain=1.5, execute_steps=2 ... (results on a GPU may differ in the last bits between "
        "runs). For server URLs: api_key=... (default: $VLA_API_KEY; never written to disk), timeout_s=1.0 (per read), "
        "deadline_s=2.0 (per request; default 2 x timeout_s), retries=0, strategy=chunk_reuse|receding_horizon "
        "(default: none sent, as the robot), "
        "keep_alive=false, sessions=false (default: one session per episode, episodes in parallel, when the "
        "server's /health offers X-Session-Id sessions; else one episode at a time). Recorded in summary.json",
    )
    g.add_argument(
        "--backbone-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="local microsoft/kosmos-2-patch14-224 folder for real checkpoints whose config names a hub id or "
        "a path of the training machine (default: $MVLA_KOSMOS2_DIR, else .vlms/ under the run's repo)",
    )
    g.add_argument(
        "--max-server-faults",
        type=int,
        default=DEFAULT_MAX_SERVER_FAULTS,
        metavar="K",
        help=f"stop the run after K consecutive episodes of one server ending in a fault (default {DEFAULT_MAX_SERVER_FAULTS})",
    )
    _backend_arguments(g)
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--dry-run", action="store_true", help="show the chosen checkpoints and the plan, run nothing"
    )
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _backend_arguments(g: argparse._ArgumentGroup) -> None:
    """Where episodes run: batched slots around one model, or Ray tasks."""
    g.add_argument(
        "--batch",
        type=int,
        default=0,
        metavar="N",
        help="run N envs in lock-step around one model per checkpoint (one forward per step for all; "
        "a finished episode is replaced by the next seed); replaces --workers; same records",
    )
    g.add_argument(
        "--backend",
        default="local",
        choices=BACKENDS,
        help="local (default) or ray: checkpoints x cells x seed chunks as Ray tasks, models in actors "
        "(pip install .[ray]); same records",
    )
    g.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="with --backend ray: the cluster to join (ray://HOST:10001, or auto); default: start a local Ray",
    )


def parse_policy_options(items: list[str]) -> dict[str, Any]:
    """``["device=cuda", "gain=1.5"]`` -> ``{"device": "cuda", "gain": 1.5}`` (JSON values)."""
    try:
        return parse_key_values(items)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def config_from_args(args: argparse.Namespace) -> RolloutConfig:
    """The parsed command line, read once into the typed config.

    Raises:
        UsageError: contradictory or out-of-range options (one line).
    """
    policies = [name for group in (args.policy or []) for name in group]
    if policies and args.ckpt:
        raise UsageError(
            "--policy evaluates policies without checkpoints; drop --ckpt, or use --baselines to add them"
        )
    options = parse_policy_options(args.policy_option)
    if args.backbone_dir is not None:
        options["backbone_dir"] = str(args.backbone_dir)
    ckpt = [] if policies else (args.ckpt or ["top3"])
    return RolloutConfig(
        policy_options=options,
        ckpt=ckpt,
        runs=args.runs or DEFAULT_RUNS,
        # the default training output (runs/) may be empty: then the reference run is used;
        # any other folder the user names must hold checkpoints
        runs_explicit=args.runs is not None and args.runs.resolve() != DEFAULT_RUNS.resolve(),
        baselines=list(dict.fromkeys(policies + list(args.baselines))),
        profiles=tuple(args.profile),
        sides=tuple(args.sides),
        lightings=tuple(args.lightings),
        distances=tuple(args.distances),
        scene=SceneSettings(**{f.name: getattr(args, f.name) for f in fields(SceneSettings)}),
        episodes=_or(args.episodes, QUICK_EPISODES if args.quick else DEFAULT_EPISODES),
        seed=args.seed,
        workers=args.workers,
        out=args.out,
        videos=_or(args.videos, 1 if args.quick else DEFAULT_VIDEOS),
        videos_dir=args.videos_dir,
        torch_threads=args.torch_threads,
        max_server_faults=args.max_server_faults,
        real=args.real,
        real_channel_order=args.real_channel_order,
        probes=(DEFAULT_PROBES if ckpt else ()) if args.probes is None else args.probes,
        batch=args.batch,
        backend=args.backend,
        ray_address=args.ray_address,
    )


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


__all__ = ["build_parser", "config_from_args", "parse_policy_options"]
