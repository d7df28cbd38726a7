"""End to end on tiny data: generate sim episodes, fine-tune two epochs, check the run folder and load."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.vla.checkpoint import load_model
from policies.vla.policy import VLAPolicy
from train.episodes import read_episode, write_episode
from train.finetune import DataSpec, UsageError, seen_channel_order
from train.finetune import main as finetune_main
from train.generate import GenerateConfig, generate_episodes

REAL_NAME = re.compile(r"^epoch_epoch=(\d{2})-val_loss=val_loss=(\d+\.\d{3})\.ckpt$")


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    generate_episodes(GenerateConfig(episodes=6, out=out, image_size="64x36", noise=0.0, seed=3, workers=1))
    return out


@pytest.fixture(scope="module")
def run_dir(sim_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    code = finetune_main(
        ["--data", str(sim_data), "--run-dir", str(run), "--max-epochs", "4", "--batch-size", "2", "--quiet"]
    )
    assert code == 0
    return run


def test_run_folder_has_top3_and_last_with_real_names(run_dir):
    names = sorted(p.name for p in run_dir.glob("*.ckpt"))
    assert "last.ckpt" in names
    top = [n for n in names if n != "last.ckpt"]
    assert len(top) == 3 and all(REAL_NAME.match(n) for n in top), names
    ckpt = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=False)
    state = next(v for k, v in ckpt["callbacks"].items() if "ModelCheckpoint" in k)
    assert sorted(p.split("/")[-1] for p in state["best_k_models"]) == top
    losses = {REAL_NAME.match(n).group(2) for n in top}
    assert losses == {f"{float(v):.3f}" for v in state["best_k_models"].values()}
    assert ckpt["hyper_parameters"]["configs"]["mvla_sim"]["backbone"] == "tiny"
    assert json.loads((run_dir / "config.json").read_text())["trainer"]["max_epochs"] == 4


def test_metrics_csv_has_the_real_metric_names(run_dir):
    rows = list(csv.DictReader((run_dir / "version_0" / "metrics.csv").open()))
    columns = set(rows[0])
    for name in (
        "train_loss_step",
        "val_loss",
        "val_loss_velocity_act",
        "val_rmse_velocity_act",
        "val_true_rmse",
        "train_rmse_velocity_act_epoch",
    ):
        assert name in columns, sorted(columns)
    val = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    assert len(val) == 4 and all(np.isfinite(val))
    assert (run_dir / "version_0" / "hparams.yaml").is_file()


def test_checkpoint_loads_with_zero_missing_or_unexpected_keys_and_acts(run_dir):
    top = sorted(p for p in run_dir.glob("epoch_*.ckpt"))[0]
    loaded = load_model(top)
    report = loaded.report
    assert report.ok and report.missing_trained == [] and report.missing_frozen == []
    assert report.unexpected == [] and report.shape_mismatched == []
    assert report.loaded == report.expected > 0
    policy = VLAPolicy.from_checkpoint(top)
    policy.reset("Navigate around obstacles and reach the front of the beverage bottle on the left")
    action = policy.act({"image": np.zeros((36, 64, 3), np.uint8), "instruction": "x"})
    assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.15)


def test_training_lowers_the_loss(run_dir):
    rows = list(csv.DictReader((run_dir / "version_0" / "metrics.csv").open()))
    train = [float(r["train_loss_epoch"]) for r in rows if r.get("train_loss_epoch")]
    assert train[-1] < train[0]


def test_missing_data_folder_is_a_one_line_error(tmp_path, capsys):
    assert finetune_main(["--data", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope" in err and "\n" not in err


def test_too_few_episodes_to_validate_is_a_one_line_error_naming_the_fix(tmp_path, capsys, write_synthetic):
    for i, (side, evening) in enumerate([("left", False), ("left", True), ("right", False), ("right", True)]):
        write_synthetic(tmp_path / "data", side=side, evening=evening, index=i)
    args = [
        "--data",
        str(tmp_path / "data"),
        "--run-dir",
        str(tmp_path / "r"),
        "--quiet",
        "--split",
        "stratified",
    ]
    assert finetune_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: data: 4 episodes are too few to hold out a validation episode")
        and "\n" not in err
    )
    assert "--split sorted" in err and "max() arg" not in err


def test_standardize_features_folds_mean_and_std_into_the_final_layer_norm(sim_data):
    from train.dataset import EpisodeWindowDataset, collate
    from train.finetune import DEFAULT_CONFIG, load_config
    from train.lightning_module import MobileVLAModule

    module = MobileVLAModule(load_config(DEFAULT_CONFIG), init_seed=0)
    size = module.vla_config.image_size
    dataset = EpisodeWindowDataset(sim_data, subset="all", windows="episode", image_size=size)
    batch = collate([dataset[i] for i in range(len(dataset))])
    keys_before = set(module.state_dict())
    module.standardize_features([batch])
    assert set(module.state_dict()) == keys_before  # no new parameter: the checkpoint layout is unchanged
    module.eval()
    with torch.no_grad():
        feats = module.encode_batch(batch).flatten(0, 1)
    real = feats[batch["frame_mask"].flatten().bool()]
    assert real.mean(0).abs().max() < 1e-3
    std = real.std(0)
    assert (
        std.max() < 1.001 and (std > 0.999).float().mean() > 0.5
    )  # unit std, but for dims clamped at min_std


def test_as_trained_trace_equals_what_training_computed(run_dir, sim_data):
    """Train/infer parity: the as_trained policy of our own checkpoint (its recorded recipe)
    computes, frame by frame on raw env frames, the head outputs the training forward computed."""
    from train.dataset import EpisodeSource, EpisodeWindowDataset, collate
    from train.episodes import read_episode
    from train.lightning_module import MobileVLAModule

    top = sorted(run_dir.glob("epoch_*.ckpt"))[0]
    policy = VLAPolicy.from_checkpoint(top, "as_trained")
    ckpt = torch.load(top, map_location="cpu", weights_only=False)
    recipe = ckpt["hyper_parameters"]["configs"]["mvla_sim"]["recipe"]
    assert recipe["token_layout"] == "upstream" and policy.options.token_layout == "upstream"
    # generated files are BGR; finetune followed each file's record: the model saw true colours
    assert recipe["channel_order"] == "rgb" and policy.options.channel_order == "rgb"
    assert policy.resolution.era.source == "recipe"
    module = MobileVLAModule(ckpt["hyper_parameters"]["configs"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    dataset = EpisodeWindowDataset(
        EpisodeSource(sim_data, channel_order="file"),
        subset="all",
        windows="episode",
        image_size=module.vla_config.image_size,
    )
    item = dataset[0]
    with torch.no_grad():
        pred, _, _ = module._predict(collate([item]))
    episode = read_episode(item["episode"])
    assert episode.channel_order == "bgr"
    trace = policy.trace(episode.images[..., ::-1], item["instruction"])  # the env's RGB frames
    n = episode.num_frames
    assert n > module.vla_config.window_size  # inside the window and beyond it
    assert np.abs(pred[0, :n].numpy() - trace["chunks"]).max() < 1e-5


def test_data_folders_follow_each_files_colour_order_by_default():
    assert DataSpec.parse("data/sim") == DataSpec(Path("data/sim"), "file")
    assert DataSpec.parse("real:bgr") == DataSpec(Path("real"), "bgr")


def test_the_colour_order_the_model_sees_is_recorded_and_a_mix_refused(tmp_path, write_synthetic):
    from train.dataset import EpisodeSource, EpisodeWindowDataset

    rgb = write_synthetic(tmp_path / "rgb", side="left")
    bgr_file = tmp_path / "bgr" / rgb.name
    bgr_file.parent.mkdir()
    episode = read_episode(rgb)
    episode.images, episode.channel_order = episode.images[..., ::-1].copy(), "bgr"
    write_episode(bgr_file, episode)

    def seen(*sources):
        return seen_channel_order(EpisodeWindowDataset(list(sources), subset="all").episodes)

    assert (
        seen(
            EpisodeSource(rgb.parent, channel_order="file"),
            EpisodeSource(bgr_file.parent, channel_order="file"),
        )
        == "rgb"
    )
    assert seen(EpisodeSource(bgr_file.parent, channel_order="rgb")) == "bgr"  # as the fork read real files
    with pytest.raises(UsageError, match="swapped and the others not"):
        seen(
            EpisodeSource(rgb.parent, channel_order="rgb"),
            EpisodeSource(bgr_file.parent, channel_order="rgb"),
        )
