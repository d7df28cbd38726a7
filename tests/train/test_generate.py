"""``train.generate``: expert rollouts saved as real-format episodes (small 64 x 36 frames)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mvla_sim.facts import (
    EVENT_EPISODE_START,
    EVENT_START_ACTION,
    EVENT_STOP_ACTION,
    INSTRUCTIONS,
    KEY_ACTIONS,
    key_char_of_action,
    real_key_sequences,
)
from train.episodes import ATTR_KEYS, parse_episode_name, read_episode
from train.generate import (
    CONFIG_FILE,
    REPORT_FILE,
    SOURCE,
    GenerateConfig,
    GenerateConfigError,
    episode_seeds,
    episode_timestamp,
    generate_episodes,
    main,
    parse_mix,
    plan_episodes,
    run_generation,
    scenario_schedule,
)

SMALL = (64, 36)
KEY_ARRAYS = {key: np.asarray(value, dtype=np.float32) for key, value in KEY_ACTIONS.items()}


def small_config(out: Path, **overrides: object) -> GenerateConfig:
    options: dict[str, object] = {
        "episodes": 4,
        "image_size": SMALL,
        "noise": 0.0,
        "keep_failures": True,
        "seed": 7,
    }
    options.update(overrides)
    return GenerateConfig(out=out, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateConfig, list[Path]]:
    config = small_config(tmp_path_factory.mktemp("clean"))
    return config, generate_episodes(config)


def _same_files(a: list[Path], b: list[Path]) -> None:
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        ea, eb = read_episode(pa), read_episode(pb)
        np.testing.assert_array_equal(ea.images, eb.images)
        np.testing.assert_array_equal(ea.actions, eb.actions)
        assert ea.event_types == eb.event_types and ea.instruction == eb.instruction
        assert ea.attrs.keys() == eb.attrs.keys()
        for key in ea.attrs:
            np.testing.assert_array_equal(np.asarray(ea.attrs[key]), np.asarray(eb.attrs[key]), err_msg=key)


def test_episodes_follow_the_real_format(clean_run: tuple[GenerateConfig, list[Path]]) -> None:
    config, paths = clean_run
    assert len(paths) == 4
    scenarios = Counter()
    for path in paths:
        name = parse_episode_name(path)
        episode = read_episode(path, strict_attrs=True)
        attrs = episode.attrs
        scenarios[(name.side, attrs["sim_lighting"])] += 1

        assert set(ATTR_KEYS) <= set(attrs)
        assert attrs["episode_name"] == path.stem and attrs["source"] == SOURCE
        assert attrs["num_frames"] == episode.num_frames
        if attrs["sim_success"]:
            assert episode.num_frames == 18
        assert episode.instruction == INSTRUCTIONS[name.side] == INSTRUCTIONS[attrs["sim_side"]]
        assert (name.boxes, name.layout, name.distance) == ("1box", "hori", "medium")
        assert name.kind == "core" and attrs["sim_noisy_presses"] == 0
        assert name.evening == (attrs["sim_lighting"] == "evening")
        assert attrs["time_period"] == attrs["sim_lighting"]
        assert attrs["collection_datetime"] == name.timestamp.isoformat()

        assert episode.images.shape == (episode.num_frames, SMALL[1], SMALL[0], 3)
        assert episode.images.dtype == np.uint8
        np.testing.assert_array_equal(episode.images[0], episode.images[1])  # both before the first press
        assert not np.array_equal(episode.images[1], episode.images[-1])

        actions = episode.actions
        assert actions.dtype == np.float32 and actions.shape == (episode.num_frames, 3)
        assert episode.event_types[0] == EVENT_EPISODE_START and not np.any(actions[0])
        assert not np.any(actions[:, 2])
        for action, event in zip(actions[1:], episode.event_types[1:], strict=True):
            assert any(np.array_equal(action, key) for key in KEY_ARRAYS.values()), action
            assert event == (EVENT_START_ACTION if np.any(action) else EVENT_STOP_ACTION)
        keys = "".join(key_char_of_action(a) for a in actions[1:])
        assert keys == attrs["sim_keys"] == attrs["sim_intended_keys"]
        np.testing.assert_array_equal(np.asarray(attrs["sim_intended_actions"], dtype=np.float32), actions)
        json.loads(attrs["sim_layout"])
    assert scenarios == Counter(
        {("left", "day"): 1, ("left", "evening"): 1, ("right", "day"): 1, ("right", "evening"): 1}
    )

    assert json.loads((config.out / CONFIG_FILE).read_text()) == config.to_json()
    report = json.loads((config.out / REPORT_FILE).read_text())
    assert [r["file"] for r in report["episodes"]] == [p.name for p in paths]
    assert report["totals"]["written"] == 4


def test_same_seed_gives_identical_files_whatever_the_workers(
    clean_run: tuple[GenerateConfig, list[Path]], tmp_path: Path
) -> None:
    _, paths = clean_run
    again = generate_episodes(small_config(tmp_path / "two_workers", workers=2))
    _same_files(paths, again)

    other = generate_episodes(small_config(tmp_path / "other_seed", seed=8, episodes=1))
    assert other[0].name != paths[0].name
    assert not np.array_equal(read_episode(other[0]).images, read_episode(paths[0]).images)


def test_rerun_resumes_and_extends(tmp_path: Path) -> None:
    config = small_config(tmp_path, episodes=2)
    first = generate_episodes(config)
    mtimes = [p.stat().st_mtime_ns for p in first]

    result = run_generation(small_config(tmp_path, episodes=3), progress=False)
    assert [r["status"] for r in result.records] == ["existing", "existing", "written"]
    assert result.paths[:2] == first and [p.stat().st_mtime_ns for p in first] == mtimes

    with pytest.raises(GenerateConfigError, match="seed: 7 there vs 8 now"):
        generate_episodes(small_config(tmp_path, episodes=3, seed=8))


def test_noise_stores_executed_keys_and_names_variants(tmp_path: Path) -> None:
    result = run_generation(small_config(tmp_path, episodes=2, noise=1.0), progress=False)
    assert len(result.paths) == 2
    for path in result.paths:
        episode = read_episode(path)
        intended = np.asarray(episode.attrs["sim_intended_actions"], dtype=np.float32)
        deviations = int(np.sum(np.any(episode.actions != intended, axis=1)))
        assert deviations == episode.attrs["sim_noisy_presses"] > 0
        assert parse_episode_name(path).kind == "variant"
        for action in episode.actions[1:]:
            assert any(np.array_equal(action, key) for key in KEY_ARRAYS.values())

    dropped = run_generation(
        small_config(tmp_path / "drop", episodes=2, noise=1.0, keep_failures=False), progress=False
    )
    totals = dropped.totals
    assert totals["dropped_failures"] == 2 - totals["expert_successes"] == 2 - len(dropped.paths)
    assert [r["success"] for r in dropped.records] == [r["success"] for r in result.records]


def test_noise_free_episodes_press_real_sequences_or_close_corrections(
    clean_run: tuple[GenerateConfig, list[Path]],
) -> None:
    config, paths = clean_run
    report = json.loads((config.out / REPORT_FILE).read_text())
    table = report["totals"]["key_sequences"]
    for side in ("left", "right"):
        real = real_key_sequences(side)
        assert [r["keys"] for r in table[side]["real"]] == [s.keys for s in real]
        assert [r["real_episodes"] for r in table[side]["real"]] == [s.episodes for s in real]
        written = [r["keys"] for r in report["episodes"] if r["scenario"].startswith(side)]
        assert table[side]["written"] == len(written) == 2
        exact = sum(r["sim_episodes"] for r in table[side]["real"])
        assert exact + table[side]["other"]["sim_episodes"] == len(written)
        for keys in written:
            assert min(sum(a != b for a, b in zip(keys, s.keys, strict=True)) for s in real) <= 4, keys


def test_at_the_default_noise_the_expert_recovers_in_the_large_majority(tmp_path: Path) -> None:
    config = GenerateConfig(episodes=40, out=tmp_path, image_size=SMALL, keep_failures=True)
    assert config.noise == 0.1
    result = run_generation(config, progress=False)
    totals = result.totals
    assert totals["expert_success_rate"] >= 0.9, totals
    assert totals["variant"] >= 20  # noise was injected, and the successes show the recoveries
    keys = "".join(r["keys"] for r in result.records)
    assert set(keys) <= set("WQADE")  # the teleoperators' keys only


def test_no_evening_suffix_keeps_lighting_in_attributes(tmp_path: Path) -> None:
    (path,) = generate_episodes(
        small_config(tmp_path, episodes=1, mix="left_evening=1", evening_suffix=False)
    )
    assert not parse_episode_name(path).evening
    attrs = read_episode(path, load_images=False).attrs
    assert attrs["sim_lighting"] == "evening" == attrs["time_period"]


def test_schedule_seeds_and_timestamps() -> None:
    balanced = Counter(scenario_schedule(parse_mix("balanced"), ["medium"], 8))
    assert set(balanced.values()) == {2} and len(balanced) == 4

    real = scenario_schedule(parse_mix("real"), ["medium"], 468)
    counts = Counter((side, lighting) for side, lighting, _ in real)
    assert abs(counts[("left", "day")] - 206) <= 1 and abs(counts[("left", "evening")] - 12) <= 1
    assert abs(counts[("right", "day")] - 250) <= 1 and counts[("right", "evening")] == 0
    assert real[:100] == scenario_schedule(parse_mix("real"), ["medium"], 100)

    by_distance = Counter(d for _, _, d in scenario_schedule(parse_mix("right=1"), ["close", "far"], 10))
    assert by_distance == Counter({"close": 5, "far": 5})

    stamps = [episode_timestamp(3, i) for i in range(2000)] + [episode_timestamp(4, i) for i in range(2000)]
    assert len(set(stamps)) == len(stamps) and max(stamps).year < 2025
    assert len({episode_seeds(0, i) for i in range(100)}) == 100 and episode_seeds(0, 5) == episode_seeds(
        0, 5
    )

    plans = plan_episodes(small_config(Path("unused"), episodes=6))
    names = [plan.name("core", True).filename for plan in plans]
    assert len(set(names)) == 6 and all(parse_episode_name(n).stem == n[:-3] for n in names)


def test_parse_mix() -> None:
    mix = parse_mix("left=0.44, left_evening=0.03,right=0.53")
    assert mix == pytest.approx({"left": 0.44, "left_evening": 0.03, "right": 0.53, "right_evening": 0.0})
    assert parse_mix("left=206,left_evening=12,right=250") == pytest.approx(parse_mix("real"))
    assert parse_mix("balanced") == dict.fromkeys(mix, 0.25)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"episodes": 0}, "episodes=0"),
        ({"distances": "medium,near"}, "'near'"),
        ({"mix": "left=1,up=2"}, "'up'"),
        ({"mix": "left=-1"}, "-1"),
        ({"mix": "left"}, "'left' is not NAME=WEIGHT"),
        ({"image_size": "256x256"}, "16:9"),
        ({"image_size": "big"}, "'big'"),
        ({"noise": 1.5}, "noise=1.5"),
        ({"mode": "joystick"}, "'joystick'"),
        ({"workers": 0}, "workers=0"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_config_rejects_bad_values(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(GenerateConfigError, match=message.replace("(", r"\(")):
        small_config(tmp_path, **overrides)


@pytest.mark.parametrize(
    "args",
    [
        ["--episodes", "0"],
        ["--episodes", "2", "--distances", "near"],
        ["--episodes", "2", "--mix", "left=abc"],
        ["--episodes", "2", "--image-size", "100x100"],
    ],
)
def test_cli_bad_input_exits_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(tmp_path / "out")])
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_cli_writes_episodes_and_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    code = main(
        ["--episodes", "2", "--out", str(out), "--image-size", "64x36", "--noise", "0", "--seed", "3"]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "Episodes per scenario" in stdout and "Key presses" in stdout
    assert "Key sequences written, beside the teleoperators' real ones" in stdout
    assert "expert success 2/2" in stdout.splitlines()[-1]
    assert len(list(out.glob("episode_*.h5"))) == 2
    assert json.loads((out / CONFIG_FILE).read_text())["seed"] == 3


def test_generated_files_are_bgr_like_the_collector_and_say_so(tmp_path: Path) -> None:
    """The default stores the env's frames with red and blue swapped, as the collector stores the
    camera's bgr8; --channel-order rgb keeps them; each file records its order."""
    bgr = generate_episodes(small_config(tmp_path / "bgr", episodes=1))
    rgb = generate_episodes(small_config(tmp_path / "rgb", episodes=1, channel_order="rgb"))
    eb, er = read_episode(bgr[0]), read_episode(rgb[0])
    assert (eb.channel_order, eb.channel_order_source) == ("bgr", "attribute")
    assert (er.channel_order, er.channel_order_source) == ("rgb", "attribute")
    np.testing.assert_array_equal(eb.images, er.images[..., ::-1])
    assert not np.array_equal(eb.images, er.images)
    with pytest.raises(GenerateConfigError, match="channel_order='grb'"):
        small_config(tmp_path / "x", channel_order="grb")


def test_python_dash_m_runs_the_package(tmp_path: Path) -> None:
    """``python -m train.generate`` (the package's ``__main__``) parses the same options."""
    repo = Path(__file__).resolve().parents[2]
    shown = subprocess.run(
        [sys.executable, "-m", "train.generate", "--help"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0
    for option in ("--episodes", "--out", "--mix", "--distances", "--image-size", "--noise", "--workers"):
        assert option in shown.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "train.generate", "--episodes", "0", "--out", str(tmp_path / "o")],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: episodes=0") and "\n" not in bad.stderr.strip()
