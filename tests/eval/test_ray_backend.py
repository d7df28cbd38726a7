"""eval.rollout --backend ray on a local Ray with 2 CPUs: the same records as the local backend,
videos gathered into the run's folder, Ctrl-C loses nothing and the rerun resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_batched import comparable, interrupt_then_resume, sim_config

from eval.config import Cell
from eval.results import records as rec
from eval.rollout import run_rollout
from eval.runner.episode import EpisodeTask
from eval.runner.policy_factory import PolicySpec
from mvla_sim.facts import INSTRUCTIONS

pytest.importorskip("ray")

from eval.runner.ray_backend import chunks_of  # noqa: E402


def test_ray_records_equal_the_local_backend(tmp_path: Path, tiny_vla_ckpt: Path) -> None:
    kw = dict(baselines=["expert"], profiles=("as_trained",), probes=("swap",))
    local = run_rollout(sim_config(tmp_path / "a", tiny_vla_ckpt, **kw), progress=False)
    ray = run_rollout(
        sim_config(tmp_path / "b", tiny_vla_ckpt, backend="ray", workers=2, **kw), progress=False
    )
    a, b = rec.read_records(local / "episodes.jsonl"), rec.read_records(ray / "episodes.jsonl")
    assert len(a) == 2 * 2 * 2 * 2 and comparable(b) == comparable(a)  # (ckpt, expert) x (own, swap) x 2 x 2
    assert {r["probe_instruction"] for r in b if r["probe"]} == set(INSTRUCTIONS.values())
    videos = [Path(r["video"]) for r in b if r["video"]]
    assert len(videos) == 2 * 2 and all(
        v.exists() and v.parent == tmp_path / "b" / "videos" / "out" for v in videos
    )
    assert not list((tmp_path / "b" / "videos").rglob("*__running.mp4"))


def test_chunks_are_policy_cell_seed_groups_and_a_lane_stays_whole() -> None:
    cells = [Cell("left", "day", "medium"), Cell("right", "day", "medium")]
    url = "http://127.0.0.1:8000"
    specs = [PolicySpec("baseline", "expert", "expert"), PolicySpec("http", url, url)]
    plan = [EpisodeTask(s, c, i, 100 + i) for s in specs for c in cells for i in range(6)]
    chunks = chunks_of(plan, size=4)
    assert [len(c) for c in chunks] == [4, 2, 4, 2, 12]
    assert all(len({(t.spec.id, t.cell.name) for t in c}) == 1 for c in chunks[:4])
    assert sorted(id(t) for c in chunks for t in c) == sorted(id(t) for t in plan)


@pytest.mark.slow
def test_ctrl_c_during_a_ray_run_loses_nothing_and_the_rerun_resumes(tmp_path: Path, tiny_vla_ckpt: Path):
    final = interrupt_then_resume(tmp_path, tiny_vla_ckpt, ["--backend", "ray", "--workers", "2"])
    assert {r["policy_kind"] for r in final} == {"checkpoint", "baseline"}
