"""``eval.rollout`` against a server with sessions: one session per episode, episodes in parallel,
the same records as one episode at a time and as the checkpoint in process; one lane against a
server without sessions (the team's)."""

from __future__ import annotations

import json
from pathlib import Path

from eval.config import RolloutConfig
from eval.results import records as rec
from eval.rollout import run_rollout
from eval.runner.policy_factory import PolicySpec
from eval.select import REPO_ROOT
from policies.http.serve import (
    PolicyServer,
    build_parser,
    create_app,
    enable_sessions,
    load_checkpoint_policy,
    running_server,
)

KEY = "eval-sessions-key-0123"
REFERENCE = REPO_ROOT / "assets" / "checkpoints" / "reference" / "epoch_epoch=10-val_loss=val_loss=0.070.ckpt"


def config(tmp_path: Path, **kw) -> RolloutConfig:
    base = dict(
        ckpt=[], baselines=[], sides=("left", "right"), lightings=("day",), episodes=2, workers=2,
        out=tmp_path / "out", videos=0, videos_dir=tmp_path / "videos", env_factory="eval_fakes:make_fake_env",
        policy_options={"api_key": KEY},
    )  # fmt: skip
    base.update(kw)
    return RolloutConfig(**base)


def outcomes(out: Path, policy_id: str) -> dict:
    fields = ("success", "failure_reason", "actions", "trajectory", "steps", "side_passed")
    return {
        (r["cell"], r["seed"]): {f: r[f] for f in fields}
        for r in rec.read_records(out / "episodes.jsonl")
        if r["policy_id"] == policy_id
    }


def client_settings(out: Path, policy_id: str) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return next(p for p in summary["policies"] if p["policy_id"] == policy_id)["settings"]


def test_sessions_in_parallel_equal_one_lane_and_in_process(tmp_path: Path) -> None:
    policy = load_checkpoint_policy(REFERENCE, "as_deployed")
    with_sessions = PolicyServer(policy, "reference@as_deployed")
    enable_sessions(
        with_sessions, build_parser().parse_args(["--ckpt", str(REFERENCE), "--max-wait-ms", "20"])
    )
    teams = PolicyServer(load_checkpoint_policy(REFERENCE, "as_deployed"), "reference@as_deployed")
    with (
        running_server(create_app(with_sessions, KEY)) as url,
        running_server(create_app(teams, KEY)) as plain,
    ):
        parallel = run_rollout(config(tmp_path / "a", baselines=[url]), progress=False)
        one_lane = run_rollout(config(tmp_path / "b", baselines=[plain]), progress=False)
    in_process = run_rollout(
        config(tmp_path / "c", ckpt=[str(REFERENCE)], profiles=("as_deployed",), workers=1), progress=False
    )
    a, b = outcomes(parallel, url), outcomes(one_lane, plain)
    c = outcomes(in_process, "epoch10-val0.070@as_deployed")
    assert len(a) == 4 and a == b == c
    assert len({tuple(map(tuple, o["actions"])) for o in a.values()}) > 1
    assert client_settings(parallel, url)["sessions"] is True  # found in /health: episodes in parallel
    assert client_settings(one_lane, plain)["sessions"] is False  # the team's server: one lane
    assert with_sessions.sessions.steps == sum(o["steps"] for o in a.values())
    assert teams.sessions is None and teams.steps > 0
    with_sessions.sessions.close()


def test_lanes_follow_the_sessions_option() -> None:
    url = "http://127.0.0.1:8000"
    assert PolicySpec("http", url, url).lane == url
    assert PolicySpec("http", url, url, options={"sessions": True}).lane is None
    assert PolicySpec("http", url, url, options={"sessions": False}).lane == url
