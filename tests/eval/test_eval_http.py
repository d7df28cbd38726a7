"""``eval.rollout`` against policies served by ``policies.http.serve`` on loopback (real servers, no HTTP mocks).

Same actions in-process and over HTTP, pre-flight errors, server faults (recorded, or stopping the
run and resuming), one episode at a time per URL, and checkpoints under several profiles.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eval.config import RolloutConfig
from eval.results import records as rec
from eval.rollout import RolloutStopped, main, run_rollout
from eval.select import REPO_ROOT
from policies.http.serve import PolicyServer, create_app, load_checkpoint_policy, running_server

KEY = "eval-test-key-0123456"
REFERENCE_CKPT = (
    REPO_ROOT / "assets" / "checkpoints" / "reference" / "epoch_epoch=10-val_loss=val_loss=0.070.ckpt"
)


def config(tmp_path: Path, **kw: Any) -> RolloutConfig:
    base = dict(
        ckpt=[],
        baselines=[],
        sides=("left", "right"),
        lightings=("day",),
        episodes=2,
        workers=1,
        out=tmp_path / "out",
        videos=0,
        videos_dir=tmp_path / "videos",
        env_factory="eval_fakes:make_fake_env",
        policy_options={"api_key": KEY},
    )
    base.update(kw)
    return RolloutConfig(**base)


def by_policy(out: Path) -> dict[str, dict[tuple[str, int], dict]]:
    table: dict[str, dict[tuple[str, int], dict]] = {}
    for r in rec.read_records(out / "episodes.jsonl"):
        table.setdefault(r["policy_id"], {})[(r["cell"], r["seed"])] = r
    return table


class Served:
    """A policy behind the server whose action depends on the steps since reset; it can be told to fail."""

    name = "served"

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.down = False
        self.fail_in_episode: int | None = None  # fails at step 3 of that episode (1 = the first)
        self.slow_in_episode: int | None = None  # sleeps 0.6 s at step 3 of that episode
        self.episodes = 0
        self.sleep_s = sleep_s
        self.t = 0

    def reset(self, instruction: str) -> None:
        self.t = 0
        self.episodes += 1
        self.side = 1.0 if "left" in instruction else -1.0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        time.sleep(self.sleep_s)
        if self.down or (self.episodes == self.fail_in_episode and self.t == 2):
            raise RuntimeError("CUDA out of memory")
        if self.episodes == self.slow_in_episode and self.t == 2:
            time.sleep(0.6)
        self.t += 1
        return np.array([1.15, self.side * 1.15 if 4 <= self.t <= 9 else 0.0], np.float32)

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name}


def test_same_checkpoint_same_actions_in_process_and_served(tmp_path: Path) -> None:
    policy = load_checkpoint_policy(REFERENCE_CKPT, "as_deployed")
    assert policy.settings()["transport"] == "none"
    with running_server(create_app(PolicyServer(policy, "reference@as_deployed"), KEY)) as url:
        cfg = config(tmp_path, ckpt=[str(REFERENCE_CKPT)], profiles=("as_deployed",), baselines=[url])
        out = run_rollout(cfg, progress=False)
    table = by_policy(out)
    local, served = table.pop("epoch10-val0.070@as_deployed"), table.pop(url)
    assert set(local) == set(served) and len(local) == 4
    for key, r in local.items():
        assert r["profile"] == "as_deployed" and served[key]["url"] == url
        assert served[key]["actions"] == r["actions"], key  # bit-identical actions, hence trajectories
        assert served[key]["trajectory"] == r["trajectory"]
        assert r["actions"][0] == [0.0, 0.0]  # the first call after a reset is zeroed, as deployed
    distinct = {tuple(a) for r in local.values() for a in r["actions"]}
    assert len(distinct) > 3, distinct  # the comparison is not between constant outputs

    summary = json.loads((out / "summary.json").read_text())
    block = next(p for p in summary["policies"] if p["policy_id"] == url)
    assert block["kind"] == "http" and block["url"] == url
    assert (
        block["health"]["model_name"] == "reference@as_deployed" and block["health"]["model_loaded"] is True
    )
    for key in ("round_trip_ms", "server_latency_ms"):
        lat = block["overall"][key]
        assert lat["n_steps"] > 0 and lat["p50"] <= lat["p95"] <= lat["p99"] and lat["budget"] == 100.0
    assert block["overall"]["round_trip_ms"]["p50"] >= block["overall"]["server_latency_ms"]["p50"]
    for name in ("summary.json", "run_config.json", "episodes.jsonl", "report.md"):
        assert KEY not in (out / name).read_text(), name  # the key is never written
    assert "Policies served over HTTP" in (out / "report.md").read_text()


def test_preflight_errors_are_one_line_and_start_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv("VLA_API_KEY", "wrong-key-0123456789")
    with (
        running_server(create_app(PolicyServer(Served(), "served"), KEY)) as keyed,
        running_server(create_app(PolicyServer(None, "loading"), None)) as empty,
    ):
        for url, words in (
            (dead, "unreachable"),
            (keyed, "refused the API key"),
            (empty, "model_loaded: false"),
            ("http://user:pw@127.0.0.1:1", "not in the URL"),
        ):
            out = tmp_path / f"out{len(words)}"
            assert main(["--policy", url, "--out", str(out), "--no-progress"]) == 2, url
            err = capsys.readouterr().err.strip()
            assert err.startswith("error:") and "\n" not in err and words in err, err
            assert not out.exists()  # nothing started, nothing written


def test_isolated_fault_and_timeout_are_recorded_failures(tmp_path: Path) -> None:
    served = Served()
    # a 500 in the 2nd episode, a timeout in the last one (so that no request queues behind it)
    served.fail_in_episode, served.slow_in_episode = 2, 6
    with running_server(create_app(PolicyServer(served, "served"), KEY)) as url:
        cfg = config(tmp_path, baselines=[url], episodes=3, policy_options={"api_key": KEY, "timeout_s": 0.3})
        out = run_rollout(cfg, progress=False)
        time.sleep(0.4)  # the slow request finishes before the server stops
    records = sorted(by_policy(out)[url].values(), key=lambda r: (r["cell"], r["episode_index"]))
    reasons = [r["failure_reason"] or "" for r in records]
    assert len(records) == 6
    assert sum(x.startswith("server_fault: http_500") and "CUDA out of memory" in x for x in reasons) == 1
    assert sum(x.startswith("server_fault: timeout: no answer within 0.3 s") for x in reasons) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policies"][0]["overall"]["server_faults"] == 2 and summary["stopped"] is None


def test_consecutive_faults_stop_the_run_and_a_rerun_resumes(tmp_path: Path, capsys) -> None:
    served = Served()
    served.down = True
    with running_server(create_app(PolicyServer(served, "served"), KEY)) as url:
        cfg = dict(baselines=["eval_fakes:core_policy", url], max_server_faults=2, episodes=3)
        with pytest.raises(RolloutStopped, match="failed 2 episodes in a row"):
            run_rollout(config(tmp_path, **cfg), progress=False)
        out = tmp_path / "out"
        table = by_policy(out)
        assert len(table["core_policy"]) == 6 and url not in table  # finished kept, the streak not recorded
        assert "failed 2 episodes in a row" in json.loads((out / "summary.json").read_text())["stopped"]

        served.down = False
        run_rollout(config(tmp_path, **cfg), progress=False)
    table = by_policy(out)
    assert len(table["core_policy"]) == 6 and len(table[url]) == 6
    assert not any((r["failure_reason"] or "").startswith("server_fault") for r in table[url].values())
    assert json.loads((out / "summary.json").read_text())["stopped"] is None


def test_one_episode_at_a_time_per_url_whatever_the_workers(tmp_path: Path) -> None:
    """Two servers in parallel; episodes of one server never interleave (its history is one episode's)."""
    with (
        running_server(create_app(PolicyServer(Served(sleep_s=0.002), "a"), KEY)) as a,
        running_server(create_app(PolicyServer(Served(sleep_s=0.002), "b"), KEY)) as b,
    ):
        kw = dict(baselines=[a, b, "eval_fakes:core_policy"], episodes=3)
        one = run_rollout(config(tmp_path / "one", workers=1, **kw), progress=False)
        two = run_rollout(config(tmp_path / "two", workers=2, **kw), progress=False)
    strip = lambda out: [rec.without_timing(r) for r in rec.read_records(out / "episodes.jsonl")]  # noqa: E731
    first, second = strip(one), strip(two)
    assert len(first) == 3 * 6 and first == second
    assert any(r["success"] for r in first if r["policy_id"] == a)  # the served policy really drives


def test_checkpoints_under_both_profiles_side_by_side(tmp_path: Path, tiny_vla_ckpt: Path) -> None:
    cfg = config(tmp_path, ckpt=[str(tiny_vla_ckpt)], profiles=("as_trained", "as_deployed"), episodes=1)
    out = run_rollout(cfg, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    ids = [p["policy_id"] for p in summary["policies"]]
    assert ids == ["epoch04-val0.071", "epoch04-val0.071@as_deployed"]
    assert [p["profile"] for p in summary["policies"]] == ["as_trained", "as_deployed"]
    assert [p["settings"]["profile"] for p in summary["policies"]] == ["as_trained", "as_deployed"]
    (row,) = summary["profile_comparisons"]
    assert (row["profile_a"], row["profile_b"], row["n_pairs"]) == ("as_trained", "as_deployed", 2)
    assert {"difference", "a_only", "b_only", "pvalue", "pvalue_holm"} <= set(row)
    assert summary["recommendation"]["policy_id"] == "epoch04-val0.071"  # ranked under the first profile
    records = rec.read_records(out / "episodes.jsonl")
    assert {(r["policy_id"], r["profile"]) for r in records} == {
        ("epoch04-val0.071", "as_trained"),
        ("epoch04-val0.071@as_deployed", "as_deployed"),
    }
    deployed = [r for r in records if r["profile"] == "as_deployed"]
    assert all(r["actions"][0] == [0.0, 0.0] for r in deployed)
    assert "Profiles side by side" in (out / "report.md").read_text()
