"""Reports are built from summary.json (+ episodes.jsonl) alone: md + self-contained html + plots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from eval.results import records as rec
from eval.results.report import build_report, main
from eval.results.summary import build_summary, format_table

CELLS = ["left-day-medium", "left-evening-medium", "right-day-medium", "right-evening-medium"]
LAYOUT = {
    "corridor_half_width": 1.1, "corridor_length": 5.6, "corridor_x_min": -0.6, "box_center": [1.15, 0.0],
    "box_half_extents": [0.14, 0.22], "box_yaw": 0.05, "bottle_xy": [2.6, 0.0], "bottle_radius": 0.035,
    "goal_radius": 1.2, "start_xy": [0.0, 0.0],
}  # fmt: skip
POLICIES = {
    "epoch04-val0.067": (0.067, 0.8),
    "epoch06-val0.071": (0.071, 0.6),
    "epoch02-val0.090": (0.090, 0.3),
}


def synthetic_records(n: int = 6) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for pid, (vl, p) in POLICIES.items():
        for cell in CELLS:
            side, lighting, distance = cell.split("-")
            for i in range(n):
                ok = bool(rng.random() < (p - 0.2 if lighting == "evening" else p))
                reason = (
                    None
                    if ok
                    else str(
                        rng.choice(["collision", "wrong_side", "goal_not_reached", "non_finite_action: nan"])
                    )
                )
                ys = np.linspace(0, 0.7 if side == "left" else -0.7, 18)
                out.append({
                    "policy_id": pid, "policy_kind": "checkpoint", "checkpoint": f"/runs/x/{pid}.ckpt", "val_loss": vl,
                    "cell": cell, "side": side, "lighting": lighting, "distance": distance, "episode_index": i,
                    "seed": 1000 + i, "success": ok, "collided": reason == "collision", "wrong_side": reason == "wrong_side",
                    "side_passed": side, "spl": 0.8 if ok else 0.0, "path_length": 2.4, "steps": 17, "terminated": False,
                    "truncated": True, "timed_out": reason == "goal_not_reached", "failure_reason": reason,
                    "latency_ms": {"steps": [12.0] * 17, "p50": 12.0, "p95": 12.0, "mean": 12.0, "max": 12.0},
                    "time_s": {"act": 0.2, "env_step": 0.4, "render": 0.0, "total": 0.7},
                    "video": f"/repo/videos/run/{pid}__{cell}__seed{1000 + i}__x.mp4" if i == 0 else None,
                    "trajectory": [[float(x), float(y)] for x, y in zip(np.linspace(0, 1.8, 18), ys, strict=True)],
                    "layout": LAYOUT,
                })  # fmt: skip
    return out


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    records = synthetic_records()
    entries = [
        {"spec": {"kind": "checkpoint", "id": pid, "path": f"/runs/x/{pid}.ckpt", "val_loss": vl, "epoch": 4,
                  "val_loss_source": "callback_state", "role": f"top{i + 1}"},
         "status": "ok", "reason": None,
         "settings": {"preprocess": {"channel_order": "rgb"}, "key_report": {"loaded": 185, "expected": 185}}}
        for i, (pid, (vl, _)) in enumerate(POLICIES.items())
    ]  # fmt: skip
    entries.append(
        {"spec": {"kind": "checkpoint", "id": "broken", "path": "/runs/x/broken.ckpt", "val_loss": 0.05},
         "status": "load_failed", "reason": "CheckpointError: truncated file", "settings": None}
    )  # fmt: skip
    entries.append(
        {
            "spec": {"kind": "baseline", "id": "expert", "name": "expert"},
            "status": "ok",
            "settings": {"policy": "expert"},
        }
    )
    records += [dict(r, policy_id="expert", policy_kind="baseline", val_loss=None, success=True, failure_reason=None)
                for r in records if r["policy_id"] == "epoch04-val0.067"]  # fmt: skip
    summary = build_summary(
        records=records,
        entries=entries,
        cells=CELLS,
        config={"episodes": 6, "latency_budget_ms": 100.0},
        selection={"run_dir": "/runs/x", "notes": ["a note"], "used_reference": False, "searched": []},
        environment={
            "python": "3.11",
            "packages": {"numpy": "2"},
            "git": {"revision": "abc123", "dirty": False},
        },
    )
    rec.write_json_atomic(tmp_path / "summary.json", summary)
    with rec.EpisodeLog(tmp_path / "episodes.jsonl") as log:
        for r in records:
            log.append(r)
    return tmp_path


def test_summary_has_the_promised_fields(results_dir: Path) -> None:
    s = json.loads((results_dir / "summary.json").read_text())
    by_id = {p["policy_id"]: p for p in s["policies"]}
    assert by_id["broken"]["status"] == "load_failed" and "truncated" in by_id["broken"]["reason"]
    top = by_id["epoch04-val0.067"]
    assert set(top["by_cell"]) == set(CELLS)
    assert {"day", "evening"} == set(top["by_condition"]["lighting"])
    for key in ("n", "successes", "success_rate", "ci95_low", "ci95_high", "spl_mean", "collision_rate",
                "wrong_side_rate", "timeouts", "latency_ms"):  # fmt: skip
        assert key in top["overall"]
    assert top["key_report"] == {"loaded": 185, "expected": 185}
    assert s["rank_agreement"]["n"] == 3 and s["rank_agreement"]["spearman_rho"] is not None
    assert len(s["paired_tests"]) == 3
    assert s["recommendation"]["policy_id"] in POLICIES
    assert s["recommended_vs_baselines"] and s["lighting"]
    assert "load_failed" in format_table(s)


def test_report_md_and_self_contained_html(results_dir: Path) -> None:
    md, page = build_report(results_dir)
    text, doc = md.read_text(), page.read_text()
    for pid in POLICIES:
        assert f"| {pid} |" in text
        assert f"<td>{pid}</td>" in doc
    assert "Recommended checkpoint" in text and "Evening vs day" in text
    assert "load_failed" in text and "truncated file" in doc
    # self-contained: inline CSS, images as base64, no external resources
    assert "<style>" in doc and "<link" not in doc and "<script" not in doc
    srcs = re.findall(r'src="([^"]+)"', doc)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert len(srcs) >= 2 + len(POLICIES)  # success, val_loss plot, one trajectory plot per policy
    assert 'href="../' in doc or 'href="/' in doc or ".mp4" in doc
    for png in ("success_by_condition.png", "valloss_vs_success.png", "trajectories_epoch04-val0.067.png"):
        assert (results_dir / "plots" / png).stat().st_size > 1000


def test_report_cli(results_dir: Path, tmp_path_factory: pytest.TempPathFactory, capsys) -> None:
    assert main([str(results_dir)]) == 0
    assert (results_dir / "report.html").exists()
    empty = tmp_path_factory.mktemp("empty")
    assert main([str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "summary.json" in err and "\n" not in err
