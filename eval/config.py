"""What one evaluation is: the typed :class:`RolloutConfig`, read once and passed down.

A :class:`RolloutConfig` holds the policies to evaluate, the scene grid (:class:`Cell`), the
:class:`SceneSettings` every env of the run gets, the episode count and seed, and where results
go. It is built once (by ``python -m eval.rollout``'s command line, :mod:`eval.rollout_cli`, or
by a caller), validated in ``__post_init__`` with one-line :class:`UsageError` messages, and
saved in ``summary.json``; what it derives (the cells, the policy options split by kind, the
results folder) is derived there too, so no later room has to ask it again.

The scene grid's names (sides, lightings, distances) are the simulator's own tuples, imported
from :mod:`mvla_sim.facts`; the scene settings are checked and completed by the simulator's env
factory (:class:`mvla_sim.make.SceneDescription`): nothing here copies its rules or defaults.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from eval.probes import ProbeError, parse_probes
from eval.results.records import to_jsonable
from eval.select import REPO_ROOT
from mvla_sim.facts import LIGHTINGS, OBSTACLE_DISTANCES, SIDES
from policies.http.client import OPTION_NAMES as HTTP_OPTION_NAMES
from policies.vla.profiles import DEFAULT_PROFILE, PROFILES

DEFAULT_RUNS = Path("runs")
DEFAULT_EPISODES = 50
QUICK_EPISODES = 10
DEFAULT_VIDEOS = 2
LATENCY_BUDGET_MS = 100.0
"""act() budget per step (ms): the real robot sends a key press every 0.3-0.4 s, and the deployed
model needed about 120 ms on an RTX A5000."""
DEFAULT_MAX_SERVER_FAULTS = 3
"""Consecutive episodes ending in a server fault (same URL) that stop a run."""
SECRET_OPTIONS = ("api_key",)
"""Options never written to disk (``summary.json``, ``run_config.json``)."""
BACKENDS = ("local", "ray")
"""Where episodes run (``--backend``): this machine's processes, or Ray (:mod:`eval.runner.backends`)."""


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


@dataclass(frozen=True)
class SceneSettings:
    """The scene settings every env of a run gets (the :class:`Cell` adds side, lighting, distance).

    As given, ``None`` leaves a setting to the env factory (:class:`mvla_sim.make.SceneDescription`);
    :meth:`resolved` checks the values by the simulator's own rules and fills in its defaults,
    once, when a :class:`RolloutConfig` is made, so the config holds (and summary.json records)
    exactly what every env gets.

    Attributes:
        randomization: ``none`` (the nominal scene), ``default`` (start/box/bottle jitter, lighting,
            textures, camera pitch and speed within the real set-up's repeatability) or ``hard``
            (beyond it).
        drive_model: ``throttle`` (the real driver: direction only, at the calibrated speed) or
            ``velocity`` (proportional).
        renderer: ``tiny`` (CPU TinyRenderer) or ``egl`` (GPU, where PyBullet's plugin loads).
        lens_distortion: barrel distortion like the real lens (0 = none, 0.1-0.2 is mild).
        image_size: camera image (width, height) in pixels.
        max_steps: actions per episode (17 in the real protocol).
        appearance: what the simulator shows (``mvla_sim.appearance``): a bundled name (``default``,
            ``v0_tiles``) or a JSON path, e.g. one written by ``python -m mvla_sim.match``.
    """

    randomization: str | None = None
    drive_model: str | None = None
    renderer: str | None = None
    lens_distortion: float | None = None
    image_size: tuple[int, int] | None = None
    max_steps: int | None = None
    appearance: str | None = None

    def resolved(self) -> SceneSettings:
        """Every setting checked by the env factory and, where ``None``, set to its default.

        Raises:
            UsageError: the simulator refuses a value (its own one-line reason).
        """
        from mvla_sim.make import SceneDescription  # loads PyBullet: only once the cheap checks passed

        given = {k: v for k, v in asdict(self).items() if v is not None}
        try:
            described = SceneDescription(**given)
        except ValueError as exc:
            raise UsageError(f"the simulator refuses the scene settings: {exc}") from None
        return SceneSettings(**{f.name: getattr(described, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyOptions:
    """``--policy-option`` settings split by the kind of policy they go to.

    Attributes:
        checkpoint: keyword settings of ``VLAPolicy.from_checkpoint(path, profile, **checkpoint)``.
        http: keyword settings of ``HTTPPolicy(url, **http)``: the keys of
            ``policies.http.client.OPTION_NAMES``; the API key comes from ``VLA_API_KEY`` unless given.
    """

    checkpoint: dict[str, Any] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def split(cls, options: dict[str, Any]) -> PolicyOptions:
        http = {k: v for k, v in options.items() if k in HTTP_OPTION_NAMES}
        http.setdefault("api_key", os.environ.get("VLA_API_KEY") or None)
        return cls({k: v for k, v in options.items() if k not in HTTP_OPTION_NAMES}, http)


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
        scene: the scene settings of every env (randomization, drive model, renderer, lens
            distortion, image size, max steps).
        episodes: episodes per cell (shared by every policy, so comparisons are paired).
        seed: base seed; episode seeds derive from (seed, cell, index).
        workers: worker processes (results do not depend on it).
        out: results folder; reusing one resumes it (default ``results/<timestamp>``).
        videos: episodes recorded per cell and policy (the first ``videos`` of each cell).
        videos_dir: videos go to ``videos_dir/<out folder name>/``.
        torch_threads: torch intra-op threads per worker (fixed so results are reproducible).
        latency_budget_ms: act() latency budget per step (ms).
        env_factory: ``"module:function"`` building an env from (cell, config) instead of
            ``mvla_sim`` (tests and custom scenes).
        policy_options: settings for the policies, as given: the keys of
            ``policies.http.client.OPTION_NAMES`` go to server URLs, the others to every
            checkpoint, e.g. ``{"device": "cuda"}`` (split once into ``options``).
        max_server_faults: consecutive episodes of one server URL ending in a server fault
            (timeout, refused/reset connection, HTTP error) that stop the run.
        real: a folder of real episodes; the report then sets each checkpoint's closed-loop success
            beside its open-loop direction agreement on those frames and on paired simulated
            frames (``eval.realgap``).
        real_channel_order: channel order of the ``.h5`` files of ``real`` (``auto``: as each records).
        probes: instruction probes (``eval.probes``: swap, neutral, unrelated) run for every policy
            on the same episodes; empty = none (a string such as ``"swap,neutral"`` is parsed).
        batch: N > 0 runs N envs in lock-step around one model per checkpoint
            (:mod:`eval.runner.batched`) instead of ``workers`` processes; 0 = off.
        backend: ``local`` (this machine's processes) or ``ray`` (:mod:`eval.runner.ray_backend`).
        ray_address: the Ray cluster to join (``ray://HOST:10001`` or ``auto``); None starts a local Ray.

    Derived once, in ``__post_init__``: ``scene`` resolved (:meth:`SceneSettings.resolved`), ``cells``
    (the grid), ``options`` (:class:`PolicyOptions`).
    """

    ckpt: list[str] = field(default_factory=lambda: ["top3"])
    runs: Path = DEFAULT_RUNS
    runs_explicit: bool = False
    baselines: list[str] = field(default_factory=list)
    profiles: tuple[str, ...] = (DEFAULT_PROFILE,)
    sides: tuple[str, ...] = SIDES
    lightings: tuple[str, ...] = LIGHTINGS
    distances: tuple[str, ...] = ("medium",)
    scene: SceneSettings = field(default_factory=SceneSettings)
    episodes: int = DEFAULT_EPISODES
    seed: int = 0
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    out: Path | None = None
    videos: int = DEFAULT_VIDEOS
    videos_dir: Path = REPO_ROOT / "videos"
    torch_threads: int = 1
    latency_budget_ms: float = LATENCY_BUDGET_MS
    env_factory: str | None = None
    policy_options: dict[str, Any] = field(default_factory=dict)
    max_server_faults: int = DEFAULT_MAX_SERVER_FAULTS
    real: Path | None = None
    real_channel_order: str = "auto"
    probes: tuple[str, ...] = ()
    batch: int = 0
    backend: str = "local"
    ray_address: str | None = None
    cells: list[Cell] = field(init=False, repr=False)
    options: PolicyOptions = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._check_grid()
        self._check_counts()
        self._check_execution()
        if "profile" in self.policy_options:
            raise UsageError("--policy-option profile=...: use --profile as_trained,as_deployed instead")
        if self.real is not None and not Path(self.real).is_dir():
            raise UsageError(f"--real {self.real}: no such folder; give a folder of real .h5 episodes")
        try:
            self.probes = parse_probes(self.probes)
        except ProbeError as exc:
            raise UsageError(str(exc)) from None
        self.scene = self.scene.resolved()
        self.cells = [Cell(s, li, d) for s in self.sides for li in self.lightings for d in self.distances]
        self.options = PolicyOptions.split(self.policy_options)
        if self.out is None:
            self.out = Path("results") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")

    def _check_grid(self) -> None:
        for name, values, allowed in (
            ("sides", self.sides, SIDES),
            ("lightings", self.lightings, LIGHTINGS),
            ("distances", self.distances, OBSTACLE_DISTANCES),
            ("profile", self.profiles, PROFILES),
        ):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise UsageError(f"--{name} {','.join(values)!s}: choose from {','.join(allowed)}")
        if len(set(self.profiles)) != len(self.profiles):
            raise UsageError(f"--profile {','.join(self.profiles)}: list each profile once")

    def _check_counts(self) -> None:
        for name, value, least in (
            ("episodes", self.episodes, 1),
            ("workers", self.workers, 1),
            ("videos", self.videos, 0),
            ("torch-threads", self.torch_threads, 1),
            ("max-server-faults", self.max_server_faults, 1),
        ):
            if value < least:
                raise UsageError(f"--{name} {value}: must be {'0 or more' if least == 0 else 'at least 1'}")

    def _check_execution(self) -> None:
        if self.batch < 0:
            raise UsageError(f"--batch {self.batch}: give the number of envs in lock-step (0 = off)")
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend}: choose from {','.join(BACKENDS)}")
        if self.ray_address and self.backend != "ray":
            raise UsageError("--ray-address needs --backend ray")

    def to_dict(self) -> dict[str, Any]:
        """The config as written to disk: what was given, the API key redacted."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        data["scene"] = self.scene.to_dict()
        data["policy_options"] = redact(self.policy_options)
        return to_jsonable(data)


__all__ = [
    "HTTP_OPTION_NAMES",
    "PROFILES",
    "Cell",
    "PolicyOptions",
    "RolloutConfig",
    "SceneSettings",
    "UsageError",
    "redact",
]
