"""What one evaluation is: the typed :class:`RolloutConfig`, and the command line that builds it.

``python -m eval.rollout``'s options are parsed here (:func:`build_parser`,
:func:`config_from_args`) into one :class:`RolloutConfig`, validated in ``__post_init__`` with
one-line :class:`UsageError` messages, and saved in ``summary.json``. The scene grid
(:class:`Cell`) and the seeded episode list (:func:`episode_seed`) are defined here too: every
policy meets the same episodes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eval.results import records as rec
from eval.select import REFERENCE_RUN_DIR, REPO_ROOT
from policies.vla.profiles import (  # torch-free: parsing the command line stays light
    PROFILES,
    parse_overrides,
)

SIDES = ("left", "right")
LIGHTINGS = ("day", "evening")
DISTANCES = ("close", "medium", "far")
DEFAULT_RUNS = Path("runs")
DEFAULT_EPISODES = 50
QUICK_EPISODES = 10
DEFAULT_VIDEOS = 2
LATENCY_BUDGET_MS = 100.0
"""act() budget per step (ms): the real robot sends a key press every 0.3-0.4 s, and the deployed
model needed about 120 ms on an RTX A5000."""
DEFAULT_MAX_SERVER_FAULTS = 3
"""Consecutive episodes ending in a server fault (same URL) that stop a run."""
HTTP_OPTION_NAMES = ("api_key", "strategy", "timeout_s", "retries", "keep_alive", "sessions")
"""``--policy-option`` keys that go to HTTP server policies (``policies.http.client.OPTION_NAMES``);
the other keys go to checkpoint policies."""
SECRET_OPTIONS = ("api_key",)
BACKENDS = ("local", "ray")
"""Options never written to disk (``summary.json``, ``run_config.json``)."""


class UsageError(Exception):
    """Bad command-line input; the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class Cell:
    """One scene condition of the grid. ``name`` matches the env's ``info["scene"]``."""

    side: str
    lighting: str
    distance: str

    @property
    def name(self) -> str:
        return f"{self.side}-{self.lighting}-{self.distance}"


def episode_seed(base_seed: int, cell: str, index: int) -> int:
    """Seed of episode ``index`` of ``cell``: a hash of (base seed, cell, index), in [0, 2**31).

    It does not depend on the policy, so every policy meets the same episodes (paired comparison).
    """
    digest = hashlib.sha256(f"mvla-eval/{int(base_seed)}/{cell}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def redact(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with secrets replaced by ``"<set>"`` (what may be written to disk)."""
    return {k: ("<set>" if k in SECRET_OPTIONS and v else v) for k, v in options.items()}


@dataclass
class RolloutConfig:
    """Everything that defines one evaluation (saved as ``config`` in summary.json).

    Attributes:
        ckpt: checkpoint selectors/paths: ``top3`` (any ``topK``), ``best``, ``last``, file paths.
            Empty when only baselines run.
        runs: training output folder searched for the newest run (``*.ckpt``).
        runs_explicit: the user named ``runs``; if it holds no checkpoints that is an error
            (otherwise the bundled reference run is used).
        baselines: other policies evaluated beside the checkpoints: baseline names (``expert``,
            ``straight``, ...), ``module:factory`` targets, or server URLs ``http://HOST:PORT``.
        profiles: every checkpoint is evaluated under each of these VLA profiles
            (``as_trained``, ``as_deployed``); the first one ranks checkpoints.
        sides, lightings, distances: the scene grid.
        randomize: domain randomization of the scenes (start jitter, lighting, textures, ...).
        episodes: episodes per cell (shared by every policy, so comparisons are paired).
        seed: base seed; episode seeds derive from (seed, cell, index).
        workers: worker processes (results do not depend on it).
        out: results folder; reusing one resumes it.
        videos: episodes recorded per cell and policy (the first ``videos`` of each cell).
        videos_dir: videos go to ``videos_dir/<out folder name>/``.
        image_size: camera image (width, height) in pixels, or None for the env's default.
        max_steps: actions per episode, or None for the env's default (17, the real protocol).
        torch_threads: torch intra-op threads per worker (fixed so results are reproducible).
        latency_budget_ms: act() latency budget per step (ms).
        env_factory: ``"module:function"`` building an env from (cell, config) instead of
            ``mvla_sim`` (tests and custom scenes).
        policy_options: settings for the policies: the keys of :data:`HTTP_OPTION_NAMES` go to
            server URLs (``HTTPPolicy(url, **options)``), the others to every checkpoint
            (``VLAPolicy.from_checkpoint(path, profile, **options)``), e.g. ``{"device": "cuda"}``.
        max_server_faults: consecutive episodes of one server URL ending in a server fault
            (timeout, refused/reset connection, HTTP error) that stop the run.
        batch: N > 0 runs N envs in lock-step around one model per checkpoint
            (:mod:`eval.runner.batched`) instead of ``workers`` processes; 0 = off.
        backend: ``local`` (this machine's processes) or ``ray`` (:mod:`eval.runner.ray_backend`).
        ray_address: the Ray cluster to join (``ray://HOST:10001`` or ``auto``); None starts a local Ray.
    """

    ckpt: list[str] = field(default_factory=lambda: ["top3"])
    runs: Path = DEFAULT_RUNS
    runs_explicit: bool = False
    baselines: list[str] = field(default_factory=list)
    profiles: tuple[str, ...] = ("as_trained",)
    sides: tuple[str, ...] = SIDES
    lightings: tuple[str, ...] = LIGHTINGS
    distances: tuple[str, ...] = ("medium",)
    randomize: bool = True
    episodes: int = DEFAULT_EPISODES
    seed: int = 0
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    out: Path | None = None
    videos: int = DEFAULT_VIDEOS
    videos_dir: Path = REPO_ROOT / "videos"
    image_size: tuple[int, int] | None = None
    max_steps: int | None = None
    torch_threads: int = 1
    latency_budget_ms: float = LATENCY_BUDGET_MS
    env_factory: str | None = None
    policy_options: dict[str, Any] = field(default_factory=dict)
    max_server_faults: int = DEFAULT_MAX_SERVER_FAULTS
    batch: int = 0
    backend: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        for name, values, allowed in (
            ("sides", self.sides, SIDES),
            ("lightings", self.lightings, LIGHTINGS),
            ("distances", self.distances, DISTANCES),
            ("profile", self.profiles, PROFILES),
        ):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise UsageError(f"--{name} {','.join(values)!s}: choose from {','.join(allowed)}")
        if len(set(self.profiles)) != len(self.profiles):
            raise UsageError(f"--profile {','.join(self.profiles)}: list each profile once")
        if self.episodes < 1:
            raise UsageError(f"--episodes {self.episodes}: must be at least 1")
        if self.workers < 1:
            raise UsageError(f"--workers {self.workers}: must be at least 1")
        if self.videos < 0:
            raise UsageError(f"--videos {self.videos}: must be 0 or more")
        if self.image_size is not None and (
            len(self.image_size) != 2 or self.image_size[0] < 16 or self.image_size[1] < 9
        ):
            size = "x".join(str(v) for v in self.image_size)
            raise UsageError(f"--image-size {size}: give WIDTHxHEIGHT of at least 16x9 pixels, e.g. 256x144")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps {self.max_steps}: must be at least 1")
        if self.torch_threads < 1:
            raise UsageError(f"--torch-threads {self.torch_threads}: must be at least 1")
        if self.max_server_faults < 1:
            raise UsageError(f"--max-server-faults {self.max_server_faults}: must be at least 1")
        if "profile" in self.policy_options:
            raise UsageError("--policy-option profile=...: use --profile as_trained,as_deployed instead")
        if self.batch < 0:
            raise UsageError(f"--batch {self.batch}: give the number of envs in lock-step (0 = off)")
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend}: choose from {','.join(BACKENDS)}")
        if self.ray_address and self.backend != "ray":
            raise UsageError("--ray-address needs --backend ray")

    @property
    def cells(self) -> list[Cell]:
        return [Cell(s, li, d) for s in self.sides for li in self.lightings for d in self.distances]

    def checkpoint_options(self) -> dict[str, Any]:
        """The ``policy_options`` for checkpoint policies (``VLAPolicySettings`` fields)."""
        return {k: v for k, v in self.policy_options.items() if k not in HTTP_OPTION_NAMES}

    def http_options(self) -> dict[str, Any]:
        """The ``policy_options`` for server URLs, the API key from ``VLA_API_KEY`` unless given."""
        options = {k: v for k, v in self.policy_options.items() if k in HTTP_OPTION_NAMES}
        if "api_key" not in options:
            options["api_key"] = os.environ.get("VLA_API_KEY") or None
        return options

    def episode_settings(self) -> dict[str, Any]:
        """The settings that change episode results: a resumed folder must match them."""
        return {
            "seed": self.seed,
            "randomize": self.randomize,
            "image_size": list(self.image_size) if self.image_size else None,
            "max_steps": self.max_steps,
            "env_factory": self.env_factory,
            "policy_options": {k: v for k, v in self.policy_options.items() if k not in SECRET_OPTIONS},
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["policy_options"] = redact(self.policy_options)
        return rec.to_jsonable(data)


# ----------------------------------------------------------------------------------------------
# Command line


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
        description=(
            "Turn trained checkpoints into measured closed-loop success rates in the simulator.\n\n"
            "Picks checkpoints of the newest training run under --runs (by default the 3 with the lowest\n"
            "val_loss), runs every one on the same seeded episodes over the scene grid (left/right x\n"
            "day/evening x obstacle distance), and writes episodes.jsonl, summary.json, report.md/.html,\n"
            "plots, and videos whose names carry the outcome.\n\n"
            "A policy served over the team's HTTP inference protocol (their server, or python -m\n"
            "policies.http.serve) is evaluated like a checkpoint: --policy http://HOST:PORT. Each episode\n"
            "posts /reset, then each step posts /predict with the robot client's payload (224x224\n"
            "JPEG, base64, the instruction); the key comes from VLA_API_KEY."
        ),
        epilog=(
            "examples:\n"
            "  python -m eval.rollout --quick                      # top-3 of the newest run, a few minutes\n"
            "  python -m eval.rollout --ckpt top3 --baselines expert,straight,random\n"
            "  python -m eval.rollout --ckpt best,last --runs runs/my_exp\n"
            "  python -m eval.rollout --ckpt path/to/epoch_epoch=06-val_loss=val_loss=0.067.ckpt\n"
            "  python -m eval.rollout --ckpt top3 --profile as_trained,as_deployed   # both, side by side\n"
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
            "2 bad input (a server failing its check included), 130 interrupted."
        ),
    )
    g = parser.add_argument_group("what to evaluate")
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
        default=["as_trained"],
        metavar="P",
        help="evaluate every checkpoint under each profile, on the same seeds: as_trained (what the model "
        "saw in training), as_deployed (what the team's server and robot client do); e.g. "
        "as_trained,as_deployed (default as_trained; the first ranks the checkpoints)",
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
    g = parser.add_argument_group("episodes")
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
    g.add_argument(
        "--randomize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="domain randomization: start/box jitter, lighting, textures, camera pitch (default on)",
    )
    g.add_argument("--seed", type=int, default=0, help="base seed of the episode list (default 0)")
    g.add_argument(
        "--image-size",
        type=_image_size,
        default=None,
        metavar="WxH",
        help="camera image size (default: the env's)",
    )
    g.add_argument(
        "--max-steps",
        type=int,
        default=None,
        metavar="N",
        help="actions per episode (default: the env's, 17)",
    )
    g = parser.add_argument_group("output")
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
        "--videos-dir",
        type=Path,
        default=REPO_ROOT / "videos",
        metavar="DIR",
        help="videos go to DIR/<run>/ (default videos/)",
    )
    g = parser.add_argument_group("execution")
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
        "token_layout=upstream, dead_zone=0.1, execute_steps=2 ... (results on a GPU may differ in the last bits between "
        "runs). For server URLs: api_key=... (default: $VLA_API_KEY; never written to disk), timeout_s=1.0, "
        "retries=0, strategy=chunk_reuse|receding_horizon (default: none sent, as the robot), "
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
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--dry-run", action="store_true", help="show the chosen checkpoints and the plan, run nothing"
    )
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def parse_policy_options(items: list[str]) -> dict[str, Any]:
    """``["device=cuda", "dead_zone=0.1"]`` -> ``{"device": "cuda", "dead_zone": 0.1}`` (JSON values)."""
    try:
        return parse_overrides(items)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def config_from_args(args: argparse.Namespace) -> RolloutConfig:
    policies = [name for group in (args.policy or []) for name in group]
    if policies and args.ckpt:
        raise UsageError(
            "--policy evaluates policies without checkpoints; drop --ckpt, or use --baselines to add them"
        )
    ckpt = [] if policies else (args.ckpt or ["top3"])
    baselines = list(dict.fromkeys(policies + list(args.baselines)))
    episodes = (
        args.episodes if args.episodes is not None else (QUICK_EPISODES if args.quick else DEFAULT_EPISODES)
    )
    videos = args.videos if args.videos is not None else (1 if args.quick else DEFAULT_VIDEOS)
    options = parse_policy_options(args.policy_option)
    if args.backbone_dir is not None:
        options["backbone_dir"] = str(args.backbone_dir)
    return RolloutConfig(
        policy_options=options,
        ckpt=ckpt,
        runs=args.runs or DEFAULT_RUNS,
        # the default training output (runs/) may be empty: then the reference run is used;
        # any other folder the user names must hold checkpoints
        runs_explicit=args.runs is not None and args.runs.resolve() != DEFAULT_RUNS.resolve(),
        baselines=baselines,
        profiles=tuple(args.profile),
        sides=tuple(args.sides),
        lightings=tuple(args.lightings),
        distances=tuple(args.distances),
        randomize=args.randomize,
        episodes=episodes,
        seed=args.seed,
        workers=args.workers,
        out=args.out,
        videos=videos,
        videos_dir=args.videos_dir,
        image_size=args.image_size,
        max_steps=args.max_steps,
        torch_threads=args.torch_threads,
        max_server_faults=args.max_server_faults,
        batch=args.batch,
        backend=args.backend,
        ray_address=args.ray_address,
    )
