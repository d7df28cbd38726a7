"""Checkpoints: the Lightning layout, every key alias, loud failures, one-line file errors,
LoRA-only checkpoints, backbone folders resolved from the run's path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.vla.checkpoint import CheckpointError, load_model
from policies.vla.checkpoint_io import (
    config_from_checkpoint,
    extract_state_dict,
    one_line,
    read_checkpoint,
    save_checkpoint,
    training_root,
)
from policies.vla.checkpoint_keys import (
    FORM_BACKBONE,
    FORM_HEAD,
    FORM_KNOWN_UNUSED,
    FORM_OTHER,
    FORM_PEFT_BACKBONE,
    FORM_PEFT_MODEL,
    canonical_key,
    count_parameters,
    match_keys,
    strip_lightning_prefix,
)
from policies.vla.model import BackboneNotFoundError, MobileVLAModel, build_backbone
from policies.vla.policy import VLAPolicy
from policies.vla.robovlms_config import KOSMOS2_DIR_ENV, to_robovlms

LORA_KEY = "text_model.model.layers.1.self_attn.v_proj.lora_A.default.weight"
KOSMOS_DIR = ".vlms/kosmos-2-patch14-224"
FORK = Path(__file__).resolve().parents[2] / "fixtures" / "fork_reference"
CLASS_WEIGHTS = (0.5, 1.0, 2.0, 1.5, 1.5, 1.2, 1.2, 2.0, 2.0)


@pytest.fixture(scope="module")
def model(perturbed_model) -> MobileVLAModel:
    return perturbed_model


@pytest.fixture(scope="module")
def ckpt_path(model, tmp_path_factory) -> Path:
    return save_checkpoint(
        model, tmp_path_factory.mktemp("run") / "epoch_epoch=06-val_loss=val_loss=0.067.ckpt", epoch=6
    )


@pytest.fixture(scope="module")
def loaded(ckpt_path):
    return load_model(ckpt_path)


def rewrite(src: Path, dst: Path, edit) -> Path:
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


def assert_same_weights(a: MobileVLAModel, b: MobileVLAModel) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=key)


def frames(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(n)]


# ------------------------------------------------------------------------------ happy paths
def test_lightning_checkpoint_layout(model, ckpt_path):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    keys = ckpt["state_dict"].keys()
    assert f"model.backbone.{LORA_KEY}" in keys and f"model.model.base_model.model.{LORA_KEY}" in keys
    assert "model.action_token" in keys and "model.act_head.rnn.weight_ih_l1" in keys
    assert ckpt["hyper_parameters"]["configs"]["act_head"]["type"] == "LSTMDecoder"
    assert ckpt["epoch"] == 6 and len(keys) == len(model.state_dict())


def test_lightning_checkpoint_loads_with_nothing_missing(model, loaded):
    report = loaded.report
    assert report.ok and report.loaded == report.expected
    assert not (report.missing_trained or report.missing_frozen or report.unexpected or report.ignored_known)
    assert report.forms[FORM_BACKBONE] == report.forms[FORM_PEFT_MODEL] > 0
    assert any(a.startswith("lightning") for a in report.aliases)
    assert any(a.startswith(FORM_PEFT_MODEL) for a in report.aliases)
    assert loaded.config == model.config and loaded.checkpoint["epoch"] == 6
    assert "state_dict" not in loaded.checkpoint
    assert_same_weights(model, loaded.model)
    # built with meta parameters then assigned: ties, LSTM flat weights and buffers must hold
    lm = loaded.model.backbone.text_model
    assert lm.lm_head.weight is lm.model.embed_tokens.weight
    assert not any(p.is_meta for p in loaded.model.parameters())
    assert not any(b.is_meta for b in loaded.model.buffers())


def test_loaded_checkpoint_acts_like_the_saved_model(model, loaded):
    original = VLAPolicy(model, _resolution(model))
    again = VLAPolicy(loaded.model.eval(), _resolution(loaded.model))
    a, b = original.trace(frames(), "go left"), again.trace(frames(), "go left")
    np.testing.assert_allclose(a["chunks"], b["chunks"], atol=1e-6, rtol=1e-5)


def _resolution(m: MobileVLAModel):
    from policies.vla.profiles import resolve

    return resolve(m.config, "as_trained", overrides={"era": "clip_normalized"})


def test_third_alias_form_loads(model, ckpt_path, tmp_path):
    def to_third_form(ckpt):
        sd = {}
        for key, value in ckpt["state_dict"].items():
            if key.startswith("model.model.base_model.model."):
                continue
            if key.startswith("model.backbone."):
                key = "model.backbone.base_model.model." + key[len("model.backbone.") :]
            sd[key] = value
        ckpt["state_dict"] = sd

    result = load_model(rewrite(ckpt_path, tmp_path / "third.ckpt", to_third_form))
    assert result.report.ok and set(result.report.forms) == {FORM_PEFT_BACKBONE, FORM_HEAD}
    assert any(a.startswith(FORM_PEFT_BACKBONE) for a in result.report.aliases)
    assert_same_weights(model, result.model)


@pytest.mark.parametrize("drop", ["model.model.", "model.backbone."])
def test_one_alias_alone_is_enough(model, ckpt_path, tmp_path, drop):
    def drop_alias(ckpt):
        ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(drop)}

    result = load_model(rewrite(ckpt_path, tmp_path / "one_alias.ckpt", drop_alias))
    assert result.report.ok and result.report.loaded == result.report.expected
    assert_same_weights(model, result.model)


def test_raw_state_dict_needs_the_config_beside(model, tmp_path):
    path = tmp_path / "raw.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="--config"):
        load_model(path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(to_robovlms(model.config)), encoding="utf-8")
    result = load_model(path, config_path=config)
    assert result.report.ok and "lightning" not in " ".join(result.report.aliases)
    assert_same_weights(model, result.model)


def test_model_state_dict_and_json_text_config(model, ckpt_path, tmp_path):
    def repack(ckpt):
        ckpt["model_state_dict"] = ckpt.pop("state_dict")
        ckpt["hyper_parameters"]["configs"] = json.dumps(ckpt["hyper_parameters"]["configs"])

    result = load_model(rewrite(ckpt_path, tmp_path / "repacked.ckpt", repack))
    assert result.report.ok
    assert_same_weights(model, result.model)


@pytest.mark.parametrize(
    "changes",
    [
        {"head_type": "MobileVLALSTMDecoder"},
        {"head_type": "MobileVLAClassificationDecoder", "num_classes": 9, "class_weights": CLASS_WEIGHTS},
        {"head_type": "MobileVLAClassificationDecoder", "lora_target_modules": ("q_proj", "v_proj")},
    ],
    ids=["velocities", "classification_weights", "classification_lora_targets"],
)
def test_other_heads_round_trip(tmp_path, tiny_config, perturb, changes):
    m = perturb(MobileVLAModel.build(tiny_config(**changes), seed=1))
    result = load_model(save_checkpoint(m, tmp_path / "head.ckpt"))
    assert result.report.ok and result.config == m.config
    assert_same_weights(m, result.model)
    if "class_weights" in changes:
        assert result.model.act_head.class_weights_tensor.tolist() == pytest.approx(list(CLASS_WEIGHTS))


def test_from_checkpoint_records_the_checkpoint_report_and_era(tmp_path, model):
    run_dir = tmp_path / "runs" / "exp" / "kosmos" / "mobile_vla_finetune" / "2025-11-20" / "exp"
    path = save_checkpoint(model, run_dir / "last.ckpt")
    policy = VLAPolicy.from_checkpoint(path, gain=1.5)
    s = policy.settings()
    assert s["checkpoint"] == str(path) and s["source"] == "checkpoint"
    assert s["key_report"]["ok"] and s["key_report"]["missing_trained"] == 0
    assert s["era"]["era"] == "constant_instruction" and s["era"]["source"] == "run folder date"
    assert s["settings"]["normalization"] == "none" and s["settings"]["instruction"] == "constant"
    assert s["overrides"] == {"gain": 1.5} and s["settings"]["gain"] == 1.5


def test_vision_resampler_keys_are_recorded_as_ignored(model, ckpt_path, tmp_path):
    def add_resampler(ckpt):
        ckpt["state_dict"]["model.vision_resampler.latents"] = torch.zeros(4, 8)
        ckpt["state_dict"]["model.vision_resampler.layers.0.0.norm_media.weight"] = torch.ones(8)
        ckpt["hyper_parameters"]["configs"]["use_vision_resampler"] = True

    result = load_model(rewrite(ckpt_path, tmp_path / "resampler.ckpt", add_resampler))
    report = result.report
    assert report.ok and len(report.ignored_known) == 2 and not report.unexpected
    assert report.forms[FORM_KNOWN_UNUSED] == 2
    assert any(a.startswith("vision_resampler.*") for a in report.aliases)
    assert report.summary()["ignored_known"] == 2 and result.config.use_vision_resampler
    assert_same_weights(model, result.model)


def test_the_forks_resampler_run_loads_with_its_resampler_ignored():
    path = FORK / (FORK / "mobile_vla_lstm" / "checkpoint.txt").read_text().strip()
    result = load_model(path)
    report = result.report
    assert report.ok and report.loaded == report.expected and report.ignored_known
    assert all(k.startswith("vision_resampler.") for k in report.ignored_known)
    assert result.config.backbone == str(FORK / ".vlms" / "kosmos-2-tiny")


def test_unexpected_frozen_keys_are_logged_not_fatal(model, ckpt_path, tmp_path, caplog):
    def add_key(ckpt):
        ckpt["state_dict"]["model.some_logger_buffer"] = torch.zeros(3)

    with caplog.at_level("WARNING", logger="policies.vla.checkpoint"):
        result = load_model(rewrite(ckpt_path, tmp_path / "extra.ckpt", add_key))
    assert result.report.ok and result.report.unexpected == ["some_logger_buffer"]
    assert "unexpected keys ignored" in caplog.text


# ------------------------------------------------------------------------------ failures
def test_missing_lora_key_fails_listing_it(ckpt_path, tmp_path):
    def drop_lora(ckpt):
        for prefix in ("model.backbone.", "model.model.base_model.model."):
            del ckpt["state_dict"][prefix + LORA_KEY]

    with pytest.raises(CheckpointError) as info:
        load_model(rewrite(ckpt_path, tmp_path / "no_lora.ckpt", drop_lora))
    assert f"backbone.{LORA_KEY}" in str(info.value) and "trained weights missing" in str(info.value)


@pytest.mark.parametrize(
    "key", ["model.action_token", "model.act_head.gripper.mlp.6.bias", "model.act_head.rnn.weight_hh_l1"]
)
def test_missing_head_or_action_token_fails(ckpt_path, tmp_path, key):
    path = rewrite(ckpt_path, tmp_path / "no_head.ckpt", lambda c: c["state_dict"].pop(key))
    with pytest.raises(CheckpointError, match=key.removeprefix("model.").replace(".", r"\.")):
        load_model(path)


def test_missing_frozen_weight_fails_for_a_random_backbone(ckpt_path, tmp_path):
    def drop_frozen(ckpt):
        for prefix in ("model.backbone.", "model.model.base_model.model."):
            del ckpt["state_dict"][prefix + "text_model.model.layer_norm.weight"]

    with pytest.raises(CheckpointError, match="frozen backbone weights missing"):
        load_model(rewrite(ckpt_path, tmp_path / "no_frozen.ckpt", drop_frozen))


def test_head_type_mismatch_fails(ckpt_path, tmp_path):
    def relabel(ckpt):
        ckpt["hyper_parameters"]["configs"]["act_head"]["type"] = "MobileVLALSTMDecoder"

    with pytest.raises(CheckpointError) as info:
        load_model(rewrite(ckpt_path, tmp_path / "relabelled.ckpt", relabel))
    assert "act_head.velocities.mlp.0.weight" in str(info.value)
    assert "model has no place for" in str(info.value)


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.update(fwd_pred_next_n=5),
        lambda c: c["act_head"].update(hidden_size=16),
        lambda c: c["train_setup"].update(lora_r=8),
    ],
    ids=["chunk", "hidden", "lora_r"],
)
def test_shape_mismatch_fails(ckpt_path, tmp_path, edit):
    path = rewrite(
        ckpt_path, tmp_path / "reshaped.ckpt", lambda ckpt: edit(ckpt["hyper_parameters"]["configs"])
    )
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(path)


def test_class_weights_the_config_names_must_be_in_the_checkpoint(tmp_path, tiny_config):
    m = MobileVLAModel.build(tiny_config(head_type="MobileVLAClassificationDecoder", num_classes=9), seed=0)

    def add_weights(ckpt):
        ckpt["hyper_parameters"]["configs"]["act_head"]["class_weights"] = list(CLASS_WEIGHTS)

    path = rewrite(save_checkpoint(m, tmp_path / "plain.ckpt"), tmp_path / "weighted.ckpt", add_weights)
    with pytest.raises(CheckpointError, match="class_weights_tensor"):
        load_model(path)


def test_unsupported_config_in_a_checkpoint_names_the_feature(ckpt_path, tmp_path):
    def seven_d(ckpt):
        ckpt["hyper_parameters"]["configs"]["act_head"]["action_dim"] = 7

    with pytest.raises(CheckpointError, match="7-D action") as info:
        load_model(rewrite(ckpt_path, tmp_path / "seven.ckpt", seven_d))
    assert "seven.ckpt" in str(info.value) and "\n" not in str(info.value)


def test_truncated_file_is_a_one_line_error_naming_it(ckpt_path, tmp_path):
    path = tmp_path / "last.ckpt"
    data = ckpt_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize(
    "content, match",
    [(b"", "empty"), (b"not a checkpoint at all", "not a readable"), (b"\x00" * 64, "bad.ckpt")],
)
def test_garbage_files_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        read_checkpoint(path)
    assert "bad.ckpt" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "absent.ckpt")


def test_wrong_contents_are_named(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="expected a dict"):
        read_checkpoint(tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        extract_state_dict({"epoch": 1, "loops": {}}, "x.ckpt")
    with pytest.raises(CheckpointError, match="empty"):
        extract_state_dict({"state_dict": {}}, "x.ckpt")
    with pytest.raises(CheckpointError, match="not JSON"):
        config_from_checkpoint({"hyper_parameters": {"configs": "{oops"}}, "x.ckpt")


def test_one_line_keeps_the_first_line_short():
    message = one_line(ValueError("first line\nsecond line"))
    assert message == "ValueError: first line"
    assert len(one_line(RuntimeError("x" * 500))) <= 200


# ------------------------------------------------------------------------------ key units
@pytest.mark.parametrize(
    "key, canonical, form",
    [
        ("backbone.a.b", "backbone.a.b", FORM_BACKBONE),
        ("model.base_model.model.a.b", "backbone.a.b", FORM_PEFT_MODEL),
        ("backbone.base_model.model.a.b", "backbone.a.b", FORM_PEFT_BACKBONE),
        ("act_head.rnn.weight_ih_l0", "act_head.rnn.weight_ih_l0", FORM_HEAD),
        ("action_token", "action_token", FORM_HEAD),
        ("vision_resampler.latents", "vision_resampler.latents", FORM_KNOWN_UNUSED),
        ("lr_scheduler.state", "lr_scheduler.state", FORM_OTHER),
    ],
)
def test_canonical_key(key, canonical, form):
    assert canonical_key(key) == (canonical, form)


def test_lightning_prefix_is_detected_not_guessed(model):
    raw = {k: v for k, v in model.state_dict().items()}
    assert strip_lightning_prefix(raw)[1] is False  # the peft alias 'model.base_model...' is not Lightning's
    wrapped = {"model." + k: v for k, v in raw.items()}
    stripped, found = strip_lightning_prefix(wrapped)
    assert found and stripped.keys() == raw.keys()


def test_plain_linear_and_tied_lm_head_aliases():
    expected = {
        "backbone.x.k_proj.base_layer.weight": ((4, 4), False),
        "backbone.text_model.lm_head.weight": ((9, 4), False),
        "backbone.text_model.model.embed_tokens.weight": ((9, 4), False),
    }
    shapes = {"backbone.x.k_proj.weight": (4, 4), "backbone.text_model.model.embed_tokens.weight": (9, 4)}
    report, mapping = match_keys(shapes, expected)
    assert report.ok and report.loaded == 3 and not report.unexpected
    assert mapping["backbone.x.k_proj.base_layer.weight"] == "backbone.x.k_proj.weight"
    assert {a.split(":")[0] for a in report.aliases} == {FORM_BACKBONE, "plain_linear", "tied_lm_head"}


def test_key_report_formats_and_serialises():
    expected = {"act_head.w": ((2, 2), True), "backbone.f": ((3,), False)}
    report, _ = match_keys({"act_head.w": (2, 3), "act_head.extra": (1,)}, expected, checkpoint="c.ckpt")
    assert not report.ok and report.shape_mismatched == [("act_head.w", (2, 3), (2, 2))]
    assert report.missing_frozen == ["backbone.f"] and report.unexpected_trained == ["act_head.extra"]
    problems = " | ".join(report.problems())
    assert "ckpt [2, 3] vs model [2, 2]" in problems and "no place for" in problems
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False
    assert "shape mismatched: 1" in report.format()


@pytest.mark.parametrize(
    "changes",
    [{}, {"head_type": "MobileVLAClassificationDecoder", "num_classes": 9, "class_weights": CLASS_WEIGHTS}],
    ids=["lstm", "classification_weights"],
)
def test_parameter_counts_from_shapes_match_the_model(tiny_config, changes):
    m = MobileVLAModel.build(tiny_config(**changes), seed=0)
    counts = count_parameters({k: tuple(v.shape) for k, v in m.state_dict().items()})
    expected = m.parameter_counts()
    for key in ("total", "trainable", "lora", "head", "action_token"):
        assert counts[key] == expected[key], key


# ------------------------------------------------------------------------------ folder backbones
@pytest.fixture(scope="module")
def repo_root(tmp_path_factory) -> Path:
    """A training repo root with a (tiny) Kosmos-2 saved as ``.vlms/kosmos-2-patch14-224``."""
    from policies.vla.config import VLAConfig

    root = tmp_path_factory.mktemp("repo")
    torch.manual_seed(5)
    backbone, tokenizer, _ = build_backbone(VLAConfig())
    folder = root / KOSMOS_DIR
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return root


@pytest.fixture(scope="module")
def folder_model(repo_root, tiny_config, perturb) -> MobileVLAModel:
    m = MobileVLAModel.build(tiny_config(backbone=str(repo_root / KOSMOS_DIR)), seed=2)
    assert m.backbone_source == "pretrained"
    return perturb(m).eval()


def _keep_trained(ckpt) -> None:
    ckpt["state_dict"] = {
        k: v
        for k, v in ckpt["state_dict"].items()
        if "lora_" in k or k.startswith(("model.act_head.", "model.action_token"))
    }


def test_lora_only_checkpoint_fills_frozen_weights_from_the_folder(folder_model, tmp_path):
    full = save_checkpoint(folder_model, tmp_path / "full.ckpt")
    result = load_model(rewrite(full, tmp_path / "lora_only.ckpt", _keep_trained))
    report = result.report
    assert report.ok and report.filled_from_pretrained and not report.missing_frozen
    assert all("lora_" not in k and not k.startswith("act_head.") for k in report.filled_from_pretrained)
    assert result.model.backbone_source == "pretrained" and report.summary()["filled_from_pretrained"] > 0
    assert_same_weights(folder_model, result.model)


def test_lora_only_checkpoint_without_pretrained_weights_is_a_clear_error(folder_model, tmp_path):
    """A LoRA-only checkpoint whose Kosmos-2 folder holds only config and tokenizer (no weights)."""
    folder = tmp_path / KOSMOS_DIR
    folder.mkdir(parents=True)
    src = Path(folder_model.config.backbone)
    for name in os.listdir(src):
        if not name.endswith((".safetensors", ".bin")):
            (folder / name).write_bytes((src / name).read_bytes())
    m = MobileVLAModel.build(folder_model.config, seed=0)
    m.load_state_dict(folder_model.state_dict())
    m.config = m.config.replace(backbone=str(folder))
    path = rewrite(save_checkpoint(m, tmp_path / "full.ckpt"), tmp_path / "lora_only.ckpt", _keep_trained)
    with pytest.raises((CheckpointError, BackboneNotFoundError)) as info:
        load_model(path)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_relative_backbone_resolved_from_the_runs_path(folder_model, repo_root, tmp_path, monkeypatch):
    m = MobileVLAModel.build(folder_model.config, seed=0)
    m.load_state_dict(folder_model.state_dict())
    m.config = m.config.replace(backbone=KOSMOS_DIR)  # as the real configs store it
    run_dir = repo_root / "runs" / "exp" / "kosmos" / "mobile_vla_finetune" / "2025-11-14" / "exp"
    path = save_checkpoint(m, run_dir / "last.ckpt")
    monkeypatch.chdir(tmp_path)  # not from the current folder
    result = load_model(path)
    assert result.config.backbone == str(repo_root / KOSMOS_DIR)
    assert_same_weights(folder_model, result.model)


def test_hub_model_url_maps_to_vlms_under_the_training_root(folder_model, repo_root, tmp_path, monkeypatch):
    def hub_only(ckpt):
        cfg = ckpt["hyper_parameters"]["configs"]
        del cfg["mvla_sim"]["backbone"]
        for key in ("model_path", "model_config"):
            cfg.pop(key, None)
        cfg["vlm"]["pretrained_model_name_or_path"] = "microsoft/kosmos-2-patch14-224"
        cfg["tokenizer"]["pretrained_model_name_or_path"] = "microsoft/kosmos-2-patch14-224"
        cfg["model_url"] = "https://huggingface.co/microsoft/kosmos-2-patch14-224"

    run_dir = repo_root / "runs" / "hub" / "kosmos" / "mobile_vla_finetune" / "2026-01-10" / "hub"
    full = save_checkpoint(folder_model, run_dir / "full.ckpt")
    path = rewrite(full, run_dir / "hub.ckpt", hub_only)
    monkeypatch.chdir(tmp_path)
    result = load_model(path)
    assert result.config.backbone == str(repo_root / KOSMOS_DIR)
    assert_same_weights(folder_model, result.model)


def test_backbone_dir_and_env_replace_the_configs_folder(folder_model, repo_root, tmp_path, monkeypatch):
    m = MobileVLAModel.build(folder_model.config, seed=0)
    m.load_state_dict(folder_model.state_dict())
    m.config = m.config.replace(backbone=str(tmp_path / "moved" / KOSMOS_DIR))
    path = save_checkpoint(m, tmp_path / "moved.ckpt")
    with pytest.raises(CheckpointError, match="moved"):
        load_model(path)
    folder = repo_root / KOSMOS_DIR
    assert load_model(path, backbone_dir=folder).config.backbone == str(folder)
    monkeypatch.setenv(KOSMOS2_DIR_ENV, str(folder))
    result = load_model(path)
    assert result.config.backbone == str(folder)
    assert_same_weights(folder_model, result.model)


def test_missing_backbone_folder_error_names_it(tmp_path, tiny_config):
    m = MobileVLAModel.build(tiny_config(), seed=0)
    m.config = m.config.replace(backbone=str(tmp_path / "nowhere" / "kosmos-2-patch14-224"))
    path = save_checkpoint(m, tmp_path / "needs_folder.ckpt")
    with pytest.raises(CheckpointError, match="nowhere") as info:
        load_model(path)
    assert "--backbone-dir" in str(info.value) and "needs_folder.ckpt" in str(info.value)


def test_env_kosmos_dir_does_not_replace_a_preset_backbone(ckpt_path, tmp_path, monkeypatch, model):
    """$MVLA_KOSMOS2_DIR is for real Kosmos-2 runs; our tiny-preset checkpoints keep their preset."""
    monkeypatch.setenv(KOSMOS2_DIR_ENV, str(tmp_path / "kosmos-2-patch14-224"))
    result = load_model(ckpt_path)
    assert result.config.backbone == "tiny"
    assert_same_weights(model, result.model)


# ------------------------------------------------------------------------------ writing and roots
def test_save_checkpoint_is_atomic_and_overwrites(model, tmp_path):
    path = tmp_path / "deep" / "last.ckpt"
    save_checkpoint(model, path, epoch=1, extra={"callbacks": {"x": 1}})
    save_checkpoint(model, path, epoch=2, global_step=7)
    assert sorted(os.listdir(path.parent)) == ["last.ckpt"]  # no temporary file left behind
    ckpt = read_checkpoint(path)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 7 and "callbacks" not in ckpt
    assert ckpt["hyper_parameters"]["configs"]["mvla_sim"]["backbone"] == "tiny"


def test_training_root_is_the_folder_above_runs(tmp_path):
    path = tmp_path / "repo" / "runs" / "exp" / "kosmos" / "task" / "2025-11-14" / "exp" / "last.ckpt"
    assert training_root(path) == (tmp_path / "repo").resolve()
    assert training_root(tmp_path / "last.ckpt") is None


def test_config_root_resolves_the_relative_backbone(ckpt_path, repo_root, tmp_path):
    ckpt = read_checkpoint(ckpt_path)
    cfg = ckpt["hyper_parameters"]["configs"]
    cfg["mvla_sim"]["backbone"] = KOSMOS_DIR
    config = config_from_checkpoint(ckpt, ckpt_path, config_root=repo_root)
    assert config.backbone == str(repo_root / KOSMOS_DIR)
