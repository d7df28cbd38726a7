"""The sim-vs-real tools on stand-ins (rendered with a known perturbed appearance; never real frames)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.realgap.__main__ import main as realgap_main
from eval.realgap.behaviour import behaviour_gap, key_class
from eval.realgap.features import frechet_distance
from eval.realgap.metrics import appearance_gap
from eval.realgap.pairing import make_env, replay
from eval.realgap.sources import load_real
from eval.realgap.standins import perturbed_appearance, write_standins
from mvla_sim.facts import KEY_ACTIONS, MOVE_KEYS
from mvla_sim.match import fields_for, fit, held_out_gaps, load_targets, make_objective, split_held_out

SIZE = (160, 90)


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("standins")
    write_standins(out, episodes=4, size=SIZE, unpaired=1, progress=False)
    return out


def test_standins_are_stored_bgr_in_the_real_format_and_marked(standins):
    names = sorted(p.name for p in standins.glob("episode_*.h5"))
    assert len(names) == 5 and sum("2box_vert" in n for n in names) == 1
    episodes = load_real(standins, "bgr", width=SIZE[0])
    assert [e.paired for e in episodes].count(True) == 4
    assert all(e.standin for e in episodes)  # reports say so: never called real
    unpaired = next(e for e in episodes if not e.paired)
    assert "2box_vert" in unpaired.why_unpaired and unpaired.scene == "unpaired"
    from train.episodes import read_episode

    raw = read_episode(next(standins.glob("*1box_hori*.h5")))
    assert raw.attrs["source"] == "standin" and raw.images.shape[1:] == (SIZE[1], SIZE[0], 3)


def test_identical_frames_give_zero_gap_and_full_agreement():
    frames = np.random.default_rng(0).integers(0, 255, (5, 36, 64, 3), dtype=np.uint8)
    gap = appearance_gap(frames, frames, paired=True)
    assert gap["pixel_delta_e"] == 0 and gap["delta_e_means"] == 0 and gap["hist_hellinger"] == 0
    assert gap["ssim"] == pytest.approx(1.0) and gap["gradient_ratio"] == 1.0
    w, q, d = (np.asarray(KEY_ACTIONS[k], np.float32) for k in "WQD")
    actions = np.stack([w, q, d, np.array([0.02, 0.0, 0.0], np.float32)])[:, :2]
    recorded = np.stack([np.zeros(3, np.float32), q, d, w])
    beh = behaviour_gap(actions, actions.copy(), recorded)
    assert beh["direction_agreement"] == 1.0 and beh["mean_abs_diff"] == 0.0
    assert beh["real_vs_recorded"] == beh["sim_vs_recorded"] == pytest.approx(2 / 3)
    feats = np.random.default_rng(1).normal(size=(40, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(feats, feats + 1.0) == pytest.approx(8.0, rel=1e-3)


def test_key_classes_follow_the_key_table():
    for key in MOVE_KEYS:
        assert key_class(KEY_ACTIONS[key]) == key
        assert key_class(np.asarray(KEY_ACTIONS[key]) * 0.5) == key
    assert key_class(KEY_ACTIONS[" "]) == "space" and key_class([0.05, -0.05]) == "space"


def test_pairing_matches_the_standin_and_a_wrong_channel_order_shows(standins):
    truth = perturbed_appearance()
    right = next(e for e in load_real(standins, "bgr", width=SIZE[0]) if e.paired)
    wrong = next(e for e in load_real(standins, "rgb", width=SIZE[0]) if e.paired)
    played = replay(right, make_env(right, SIZE, truth))
    assert len(played.frames) == len(right.frames) == 18 and played.outcome == "success"
    good = appearance_gap(right.frames, played.frames, paired=True)
    bad = appearance_gap(wrong.frames, played.frames, paired=True)
    assert good["delta_e_means"] < 2.0 and good["pixel_delta_e"] < 4.0
    assert bad["delta_e_means"] > 4 * good["delta_e_means"] + 5.0


def test_fit_recovers_a_known_perturbation_on_held_out_episodes(standins):
    episodes = [e for e in load_real(standins, "bgr", width=SIZE[0]) if e.paired]
    fit_names, held_names = split_held_out([e.name for e in episodes])
    assert held_names and not set(fit_names) & set(held_names)
    base = "default"
    from mvla_sim.appearance import load_appearance

    look = load_appearance(base)
    targets = load_targets([e for e in episodes if e.name in fit_names], look)
    result = fit(look, make_objective(targets), fields_for(["day"]), max_evals=150, time_limit_s=240)
    assert result.after < result.before
    held = held_out_gaps(
        [e for e in episodes if e.name in held_names], {"before": look, "after": result.appearance}
    )
    for scene in held.values():
        assert scene["after"]["pixel_delta_e"] <= 0.3 * scene["before"]["pixel_delta_e"]


def test_realgap_cli_appearance_only_on_standins_and_images(standins, tmp_path, capsys):
    out = tmp_path / "gap"
    assert realgap_main(["--real", str(standins), "--out", str(out), "--no-checkpoint", "--width", "128",
                         "--appearance", "v0_tiles", "--appearance", str(standins / "standin_appearance.json")]) == 0  # fmt: skip
    result = json.loads((out / "realgap.json").read_text())
    v0, truth = result["appearances"]["v0_tiles"], result["appearances"]["standin"]
    assert set(v0["appearance_gap"]) == {"left-day-medium", "right-day-medium", "overall", "unpaired"}
    assert (
        truth["appearance_gap"]["overall"]["pixel_delta_e"]
        < 0.2 * v0["appearance_gap"]["overall"]["pixel_delta_e"]
    )
    assert not v0["appearance_gap"]["unpaired"]["paired"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list(out.glob("sheet_*.png"))) == 6
    printed = capsys.readouterr().out
    assert "unpaired" in printed and "NOT real" in printed and result["episodes"]["standins"] == 5
    images = tmp_path / "images"
    images.mkdir()
    for i, frame in enumerate(load_real(standins, "bgr", width=128)[0].frames[:4]):
        Image.fromarray(frame).save(images / f"frame{i}.jpg")
    assert realgap_main(["--real", str(images), "--out", str(tmp_path / "img"), "--no-checkpoint"]) == 0
    assert realgap_main(["--real", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2


def test_rollout_options_record_the_appearance_and_check_real(tmp_path):
    from eval.config import Cell, UsageError
    from eval.rollout_cli import build_parser, config_from_args
    from eval.runner.provenance import episode_settings
    from eval.runner.workers import make_env

    config = config_from_args(
        build_parser().parse_args(["--appearance", "v0_tiles", "--real", str(tmp_path)])
    )
    assert (
        config.scene.appearance == "v0_tiles"
        and episode_settings(config)["scene"]["appearance"] == "v0_tiles"
    )
    assert config.to_dict()["real"] == str(tmp_path)
    assert config_from_args(build_parser().parse_args([])).scene.appearance == "default"
    env = make_env(Cell("left", "day", "medium"), config)
    try:
        assert env.reset(seed=0)[1]["appearance"] == "v0_tiles"
    finally:
        env.close()
    with pytest.raises(UsageError, match="appearance 'nope' not found"):
        config_from_args(build_parser().parse_args(["--appearance", "nope"]))
    with pytest.raises(UsageError, match="--real"):
        config_from_args(build_parser().parse_args(["--real", str(tmp_path / "missing")]))


def test_feature_and_behaviour_gaps_with_a_model_are_zero_on_identical_frames(standins):
    from eval.realgap.analysis import behaviour_gaps, feature_gaps, groups, simulate
    from policies.vla.config import VLAConfig
    from policies.vla.policy import VLAPolicy

    policy = VLAPolicy.from_config(
        VLAConfig(backbone="tiny", hidden_size=32, num_lstm_layers=1, window_size=4)
    )
    episodes = [e for e in load_real(standins, "bgr", width=SIZE[0]) if e.paired][:1]
    sims = simulate(episodes, perturbed_appearance())
    episode = episodes[0]
    sims.paired[episode.name] = episode.frames[
        : len(sims.paired[episode.name])
    ]  # the sim shows the real frames
    fd = feature_gaps(policy, groups(episodes, sims))
    assert fd[episode.scene] == pytest.approx(0.0, abs=1e-6)
    beh = behaviour_gaps(policy, episodes, sims)["episodes"][episode.name]
    assert beh["direction_agreement"] == 1.0 and beh["mean_abs_diff"] == 0.0 and beh["steps"] == 18
    assert beh["real_vs_recorded"] == beh["sim_vs_recorded"]
    other = simulate(episodes, "v0_tiles")
    assert feature_gaps(policy, groups(episodes, other))[episode.scene] > 1e-4
