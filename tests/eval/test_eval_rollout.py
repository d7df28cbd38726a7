"""Rollouts: failing policies, resume without duplicates, worker-count invariance, load failures, CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from eval_fakes import FakeCorridorEnv, NanPolicy, RaisingPolicy

from eval.config import Cell, RolloutConfig, SceneSettings, UsageError
from eval.results import records as rec
from eval.rollout import main, run_rollout
from eval.runner.episode import run_episode
from eval.runner.plan import episode_seed, other_spec
from eval.runner.policy_factory import PolicySpec
from eval.select import SelectionError

HAS_SIM = importlib.util.find_spec("mvla_sim.env") is not None
needs_sim = pytest.mark.skipif(not HAS_SIM, reason="mvla_sim env not available yet")
CELL = Cell("left", "day", "medium")


def fake_config(tmp_path: Path, **kw) -> RolloutConfig:
    base = dict(
        ckpt=[],
        baselines=["eval_fakes:core_policy"],
        sides=("left", "right"),
        lightings=("day",),
        episodes=3,
        workers=1,
        out=tmp_path / "out",
        videos=0,
        videos_dir=tmp_path / "videos",
        env_factory="eval_fakes:make_fake_env",
    )
    base.update(kw)
    return RolloutConfig(**base)


def comparable(records: list[dict]) -> list[dict]:
    """Records without wall-clock fields, video paths reduced to file names."""
    out = []
    for r in records:
        r = rec.without_timing(r)
        r["video"] = r["video"] and Path(r["video"]).name
        out.append(r)
    return out


def test_episode_seeds_are_fixed_and_shared() -> None:
    seeds = [episode_seed(0, "left-day-medium", i) for i in range(50)]
    assert seeds == [episode_seed(0, "left-day-medium", i) for i in range(50)]
    assert len(set(seeds)) == 50
    assert seeds[0] != episode_seed(0, "right-day-medium", 0) != episode_seed(1, "left-day-medium", 0)
    assert all(0 <= s < 2**31 for s in seeds)


def test_nan_action_ends_the_episode_as_a_failure() -> None:
    env = FakeCorridorEnv("left", "day", "medium")
    r = run_episode(env, NanPolicy(), PolicySpec("factory", "nan"), CELL, 0, 7).to_dict()
    assert r["success"] is False and r["steps"] == 2
    assert r["failure_reason"].startswith("non_finite_action") and "nan" in r["failure_reason"]
    assert len(r["trajectory"]) == 3 and len(r["latency_ms"]["steps"]) == 3
    json.dumps(rec.to_jsonable(r), allow_nan=False)


def test_raising_policy_and_bad_shape_are_failures_not_crashes() -> None:
    env = FakeCorridorEnv("left", "day", "medium")
    r = run_episode(env, RaisingPolicy(), PolicySpec("factory", "boom"), CELL, 0, 7).to_dict()
    assert (
        r["success"] is False
        and r["failure_reason"].startswith("policy_error")
        and "model exploded" in r["failure_reason"]
    )

    class FourNumbers(NanPolicy):
        def act(self, obs):
            return [1.0, 0.0, 0.0, 0.0]

    r = run_episode(env, FourNumbers(), PolicySpec("factory", "four"), CELL, 0, 7).to_dict()
    assert r["failure_reason"].startswith("policy_error") and "(4,)" in r["failure_reason"]


def test_env_rejecting_an_action_is_caught() -> None:
    class Strict(FakeCorridorEnv):
        def step(self, action):
            raise ValueError("action must be finite")

    r = run_episode(
        Strict("left", "day", "medium"), NanPolicy(), PolicySpec("factory", "x"), CELL, 0, 1
    ).to_dict()
    assert r["failure_reason"].startswith("invalid_action") and r["success"] is False


def test_resume_never_duplicates_and_extends(tmp_path: Path) -> None:
    cfg = fake_config(tmp_path)
    out = run_rollout(cfg, progress=False)
    first = rec.read_records(out / "episodes.jsonl")
    assert len(first) == 2 * 3
    run_rollout(fake_config(tmp_path), progress=False)
    again = rec.read_records(out / "episodes.jsonl")
    assert comparable(again) == comparable(first)  # nothing re-run, nothing duplicated

    # an interrupted run: one complete record lost, one torn line at the end
    lines = (out / "episodes.jsonl").read_text().splitlines(keepends=True)
    (out / "episodes.jsonl").write_text("".join(lines[:-1]) + lines[-1][:40])
    run_rollout(fake_config(tmp_path, episodes=4), progress=False)
    final = rec.read_records(out / "episodes.jsonl")
    keys = [rec.record_key(r) for r in final]
    assert len(keys) == len(set(keys)) == 2 * 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policies"][0]["overall"]["n"] == 8


def test_resume_refuses_other_episode_settings(tmp_path: Path) -> None:
    run_rollout(fake_config(tmp_path, episodes=1), progress=False)
    with pytest.raises(UsageError, match="other episode settings"):
        run_rollout(fake_config(tmp_path, episodes=1, seed=5), progress=False)


def test_workers_do_not_change_results(tmp_path: Path) -> None:
    kw = dict(baselines=["eval_fakes:core_policy", "eval_fakes:nan_policy"], episodes=4, videos=1)
    one = run_rollout(fake_config(tmp_path / "a", workers=1, **kw), progress=False)
    two = run_rollout(fake_config(tmp_path / "b", workers=2, **kw), progress=False)
    a, b = rec.read_records(one / "episodes.jsonl"), rec.read_records(two / "episodes.jsonl")
    assert len(a) == 2 * 2 * 4
    assert comparable(a) == comparable(b)
    videos = sorted(Path(r["video"]).name for r in b if r["video"])
    assert len(videos) == 2 * 2 and any(v.endswith("__success.mp4") or "__fail-" in v for v in videos)
    assert all(Path(r["video"]).exists() for r in b if r["video"])


def test_broken_checkpoint_is_reported_and_others_still_run(tmp_path: Path, tiny_vla_ckpt: Path) -> None:
    bad = tmp_path / "epoch_epoch=09-val_loss=val_loss=0.010.ckpt"
    bad.write_bytes(tiny_vla_ckpt.read_bytes()[:5000])  # truncated
    cfg = fake_config(
        tmp_path,
        ckpt=[str(tiny_vla_ckpt), str(bad)],
        baselines=[],
        sides=("left",),
        episodes=1,
        policy_options={"gain": 1.5},
    )
    out = run_rollout(cfg, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    by_id = {p["policy_id"]: p for p in summary["policies"]}
    good, broken = by_id["epoch04-val0.071"], by_id["epoch09-val0.010"]
    assert broken["status"] == "load_failed" and broken["reason"] and str(bad.name) not in ("",)
    assert good["status"] == "ok" and good["overall"]["n"] == 1 and good["val_loss"] == pytest.approx(0.071)
    assert good["key_report"]["ok"] is True and good["settings"]["profile"] == "as_trained"
    assert good["settings"]["settings"]["gain"] == 1.5  # --policy-option reached the policy
    (r,) = rec.read_records(out / "episodes.jsonl")
    assert r["val_loss"] == pytest.approx(0.071) and r["policy_kind"] == "checkpoint"

    with pytest.raises(SelectionError, match=bad.name):
        run_rollout(
            fake_config(tmp_path / "only_bad", ckpt=[str(bad)], baselines=[], episodes=1), progress=False
        )


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    for argv in (
        ["--ckpt", str(tmp_path / "missing.ckpt")],
        ["--runs", str(tmp_path / "no_such_dir")],
        ["--policy", "straight", "--ckpt", "top3"],
        ["--policy", "straight", "--sides", "up"],
        ["--policy", "straight", "--episodes", "0"],
        ["--policy", "straight", "--policy-option", "no_equals_sign"],
        ["--policy", "nope"],
        ["--ckpt", "top3", "--profile", "as_imagined"],
        ["--ckpt", "top3", "--profile", "as_trained,as_trained"],
        ["--ckpt", "top3", "--policy-option", "profile=as_deployed"],
        ["--policy", "http://127.0.0.1:notaport"],
        ["--policy", "http://127.0.0.1:1", "--policy-option", "device=cuda"],
        ["--policy", "http://127.0.0.1:1", "--policy-option", "timeout_s=-1"],
        ["--policy", "straight", "--max-server-faults", "0"],
    ):
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, err


def test_cli_help_explains_the_episode_count(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--quick" in text and "Wilson" in text and "+/-0.13" in text
    assert "http://HOST:PORT" in text and "VLA_API_KEY" in text and "as_deployed" in text


def test_profiles_listed_for_the_cli_are_the_policys() -> None:
    pytest.importorskip("torch")
    from eval.config import PROFILES
    from policies.vla.policy import PROFILES as POLICY_PROFILES

    assert PROFILES == tuple(POLICY_PROFILES)


@needs_sim
def test_real_env_workers_invariance_with_baselines(tmp_path: Path) -> None:
    kw = dict(
        baselines=["expert", "random"], env_factory=None, scene=SceneSettings(image_size=(64, 36)), episodes=2, lightings=("day", "evening"),
        sides=("right",), videos=1,
    )  # fmt: skip
    one = run_rollout(fake_config(tmp_path / "a", workers=1, **kw), progress=False)
    two = run_rollout(fake_config(tmp_path / "b", workers=2, **kw), progress=False)
    a, b = rec.read_records(one / "episodes.jsonl"), rec.read_records(two / "episodes.jsonl")
    assert len(a) == 2 * 2 * 2 and comparable(a) == comparable(b)
    assert {r["scene"] for r in a} == {"right-day-medium", "right-evening-medium"}
    assert all(r["layout"] and r["trajectory"][0] for r in a)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["environment"]["git"]["revision"]
    assert (two / "report.html").exists()


@needs_sim
def test_cli_policy_alone_end_to_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "res"
    argv = ["--policy", "straight", "--baselines", "always_left", "--episodes", "1", "--sides", "left", "--lightings", "day",
            "--image-size", "64x36", "--out", str(out), "--videos", "1", "--videos-dir", str(tmp_path / "v"),
            "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "straight" in text and "always_left" in text
    summary = json.loads((out / "summary.json").read_text())
    assert [p["policy_id"] for p in summary["policies"]] == ["straight", "always_left"]
    assert summary["recommendation"] is None
    vids = list((tmp_path / "v" / "res").glob("*.mp4"))
    assert len(vids) == 2 and all("__seed" in v.name for v in vids)


def test_other_spec() -> None:
    assert other_spec("expert") == PolicySpec(kind="baseline", id="expert", name="expert")
    assert other_spec("mymod:make").kind == "factory"
    url = other_spec("http://127.0.0.1:8000/", {"api_key": "secret"})
    assert url.kind == "http" and url.id == url.url == "http://127.0.0.1:8000" and url.lane == url.url
    assert url.to_dict()["options"] == {"api_key": "<set>"}  # the key is never written out


def test_written_records_have_exactly_the_documented_fields(tmp_path: Path) -> None:
    out = run_rollout(fake_config(tmp_path, episodes=1, sides=("left",)), progress=False)
    (line,) = (out / "episodes.jsonl").read_text().splitlines()
    assert tuple(json.loads(line)) == rec.RECORD_FIELDS
    for name in rec.RECORD_FIELDS:  # and the module docstring / dataclass document each of them
        assert name in rec.EpisodeRecord.__annotations__


def test_backbone_dir_flag_reaches_checkpoint_policies_and_not_presets(tmp_path):
    """--backbone-dir goes to every checkpoint policy (a real run's Kosmos-2 folder); a run of a
    random-weight preset (the bundled reference) ignores it."""
    from eval.rollout_cli import build_parser, config_from_args
    from policies.vla.policy import VLAPolicy

    args = build_parser().parse_args(
        ["--backbone-dir", str(tmp_path / "kosmos"), "--policy-option", "era=2025-11-20"]
    )
    cfg = config_from_args(args)
    assert cfg.options.checkpoint == {"backbone_dir": str(tmp_path / "kosmos"), "era": "2025-11-20"}
    reference = sorted(
        (Path(__file__).resolve().parents[2] / "assets" / "checkpoints" / "reference").glob("epoch_*.ckpt")
    )[0]
    policy = VLAPolicy.from_checkpoint(reference, backbone_dir=tmp_path / "kosmos")
    assert policy.config.backbone == "tiny"


@needs_sim
def test_cli_refuses_scene_settings_the_env_refuses_before_writing(tmp_path: Path, capsys) -> None:
    for argv in (
        ["--image-size", "8x4"],
        ["--image-size", "2000x1000"],
        ["--lens-distortion", "2"],
        ["--drive-model", "warp"],
        ["--renderer", "vulkan"],
        ["--randomization", "wild"],
        ["--max-steps", "0"],
    ):
        out = tmp_path / "o"
        assert main(["--policy", "straight", "--workers", "1", "--out", str(out), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, err
        assert not out.exists(), argv


@needs_sim
def test_scene_settings_reach_every_env_and_are_recorded(tmp_path: Path) -> None:
    from eval.runner.workers import make_env

    scene = SceneSettings(
        randomization="hard", drive_model="velocity", lens_distortion=0.1, image_size=(64, 36), max_steps=5
    )
    env = make_env(CELL, RolloutConfig(scene=scene, out=tmp_path / "unused"))
    try:
        base = env.unwrapped
        assert (base.randomization, base.drive_model, base.max_steps) == ("hard", "velocity", 5)
        assert base.camera.lens_distortion == 0.1 and env.reset(seed=0)[0]["image"].shape == (36, 64, 3)
    finally:
        env.close()
    env = make_env(CELL, RolloutConfig(scene=SceneSettings(randomization="none"), out=tmp_path / "unused"))
    try:
        assert env.unwrapped.randomization == "none" and env.reset(seed=0)[1]["randomization"] == "none"
    finally:
        env.close()

    out = tmp_path / "res"
    argv = ["--policy", "straight", "--episodes", "1", "--sides", "left", "--lightings", "day", "--videos", "0",
            "--randomization", "hard", "--drive-model", "velocity", "--lens-distortion", "0.1",
            "--image-size", "64x36", "--max-steps", "5", "--out", str(out), "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["scene"] == {
        "randomization": "hard",
        "drive_model": "velocity",
        "renderer": "tiny",
        "lens_distortion": 0.1,
        "image_size": [64, 36],
        "max_steps": 5,
    }
    (record,) = rec.read_records(out / "episodes.jsonl")
    assert record["steps"] == 5
    report = (out / "report.md").read_text()
    assert "randomization hard, drive model velocity, renderer tiny, lens distortion 0.1" in report
    assert "images 64x36 px, actions per episode 5" in report
