"""eval.rollout --batch N: N envs in lock-step around one model; every record equals the unbatched
run's (timing apart), videos, resume and Ctrl-C as without --batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from eval.config import RolloutConfig, SceneSettings, UsageError
from eval.results import records as rec
from eval.rollout import run_rollout
from eval.runner.batched import BatchedPool
from eval.runner.episode import HarnessError
from eval.runner.plan import plan_episodes
from eval.runner.policy_factory import PolicySpec
from eval.runner.workers import WorkerPool
from eval.select import REPO_ROOT
from mvla_sim.facts import INSTRUCTIONS

SMALL = (64, 36)


def comparable(records: list[dict]) -> list[dict]:
    """Records without wall-clock fields, video paths reduced to file names, in key order."""
    out = []
    for r in sorted(records, key=rec.record_key):
        r = rec.without_timing(r)
        r["video"] = r["video"] and Path(r["video"]).name
        out.append(r)
    return out


def sim_config(tmp_path: Path, ckpt: Path, **kw) -> RolloutConfig:
    base = dict(
        ckpt=[str(ckpt)],
        profiles=("as_trained", "as_deployed"),
        baselines=["expert"],
        sides=("left", "right"),
        lightings=("day",),
        episodes=2,
        scene=SceneSettings(image_size=SMALL),
        workers=1,
        out=tmp_path / "out",
        videos=1,
        videos_dir=tmp_path / "videos",
    )
    base.update(kw)
    return RolloutConfig(**base)


def test_batched_records_equal_unbatched_in_the_simulator(tmp_path: Path, tiny_vla_ckpt: Path) -> None:
    kw = dict(probes=("swap",))
    one = run_rollout(sim_config(tmp_path / "a", tiny_vla_ckpt, **kw), progress=False)
    batched = run_rollout(sim_config(tmp_path / "b", tiny_vla_ckpt, batch=3, **kw), progress=False)
    a, b = rec.read_records(one / "episodes.jsonl"), rec.read_records(batched / "episodes.jsonl")
    assert len(a) == 3 * 2 * 2 * 2  # (2 profiles + the expert) x (own + swapped instruction) x 2 cells x 2
    assert comparable(b) == comparable(a)
    assert {r["probe_instruction"] for r in b if r["probe"]} == set(INSTRUCTIONS.values())
    assert len({tuple(map(tuple, r["actions"])) for r in a if r["policy_kind"] == "checkpoint"}) > 2
    videos = [Path(r["video"]) for r in b if r["video"]]
    assert len(videos) == 3 * 2 and all(v.exists() and v.parent.name == "out" for v in videos)
    summary = json.loads((batched / "summary.json").read_text())
    assert summary["config"]["batch"] == 3 and (batched / "report.html").exists()


def test_a_checkpoint_that_cannot_load_fails_its_episodes_as_in_a_worker(tmp_path: Path, tiny_vla_ckpt: Path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(tiny_vla_ckpt.read_bytes()[:5000])  # truncated
    config = RolloutConfig(
        ckpt=[], sides=("left",), lightings=("day",), episodes=2, workers=1, out=tmp_path / "out", videos=0,
        env_factory="eval_fakes:make_fake_env",
    )  # fmt: skip
    specs = [
        PolicySpec("checkpoint", "bad", path=str(bad), profile="as_trained"),
        PolicySpec("factory", "core_policy", "eval_fakes:core_policy"),
    ]
    plan, _ = plan_episodes(specs, config, set(), tmp_path / "videos")
    outcomes = []
    for pool in (WorkerPool(config, True, len(plan)), BatchedPool(replace(config, batch=2), True, len(plan))):
        with pool:
            results = list(pool.run(plan, progress=False))
        errors = sorted((e.policy_id, e.seed, e.error) for e in results if isinstance(e, HarnessError))
        records = comparable([r.to_dict() for r in results if not isinstance(r, HarnessError)])
        outcomes.append((errors, records))
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0][0]) == 2 and len(outcomes[0][1]) == 2


def test_batch_and_backend_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--batch -1"):
        RolloutConfig(ckpt=[], baselines=["straight"], batch=-1)
    with pytest.raises(UsageError, match="--backend"):
        RolloutConfig(ckpt=[], baselines=["straight"], backend="spark")
    with pytest.raises(UsageError, match="--ray-address needs --backend ray"):
        RolloutConfig(ckpt=[], baselines=["straight"], ray_address="auto")


def interrupt_then_resume(tmp_path: Path, ckpt: Path, extra: list[str], wait_records: int = 2) -> list[dict]:
    """Start ``eval.rollout`` as a subprocess, Ctrl-C it (SIGINT to its process group, as a terminal
    does) once ``wait_records`` episodes are on disk, then rerun it to the end; returns the records."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "eval.rollout", "--ckpt", str(ckpt), "--baselines", "random", "--episodes", "4",
            "--lightings", "day", "--image-size", "64x36", "--out", str(out), "--videos", "1",
            "--videos-dir", str(tmp_path / "videos"), "--probes", "none", "--no-progress", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    log = out / "episodes.jsonl"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= wait_records:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before it was interrupted: {proc.communicate()[1][-500:]}"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-800:]
    assert "rerun the same command" in err
    saved = rec.read_records(log)
    assert wait_records <= len(saved) < 2 * 2 * 4
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-800:]
    final = rec.read_records(log)
    keys = [rec.record_key(r) for r in final]
    assert len(keys) == len(set(keys)) == 2 * 2 * 4  # nothing lost, nothing twice
    before = {rec.record_key(r): r for r in comparable(saved)}
    assert all(before[rec.record_key(r)] == r for r in comparable(final) if rec.record_key(r) in before)
    assert not list((tmp_path / "videos").rglob("*__running.mp4"))
    return final


@pytest.mark.slow
def test_ctrl_c_during_a_batched_run_loses_nothing_and_the_rerun_resumes(tmp_path: Path, tiny_vla_ckpt: Path):
    final = interrupt_then_resume(tmp_path, tiny_vla_ckpt, ["--batch", "2"])
    assert {r["policy_kind"] for r in final} == {"checkpoint", "baseline"}
