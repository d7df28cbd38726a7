"""Checkpoint loading: Lightning layout, every key alias, loud failures, one-line file errors."""

from __future__ import annotations

import json

import pytest
import torch

from policies.checkpoint import (
    FORM_BACKBONE,
    FORM_PEFT_BACKBONE,
    FORM_PEFT_MODEL,
    CheckpointError,
    canonical_key,
    count_parameters,
    load_model,
    load_policy,
    match_keys,
    read_checkpoint,
    save_checkpoint,
)
from policies.vla_config import VLAConfig
from policies.vla_model import MobileVLAModel

LORA_KEY = "text_model.model.layers.1.self_attn.v_proj.lora_A.default.weight"


@pytest.fixture(scope="module")
def model(perturbed_model) -> MobileVLAModel:
    return perturbed_model


@pytest.fixture(scope="module")
def ckpt_path(model, tmp_path_factory):
    return save_checkpoint(
        model, tmp_path_factory.mktemp("run") / "epoch_epoch=06-val_loss=val_loss=0.067.ckpt", epoch=6
    )


def rewrite(src, dst, edit):
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


def assert_same_weights(a: MobileVLAModel, b: MobileVLAModel) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=key)


# ------------------------------------------------------------------------------ happy paths
def test_lightning_checkpoint_loads_with_nothing_missing(model, ckpt_path):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    keys = ckpt["state_dict"].keys()
    assert f"model.backbone.{LORA_KEY}" in keys and f"model.model.base_model.model.{LORA_KEY}" in keys
    assert "model.action_token" in keys and "model.act_head.rnn.weight_ih_l3" in keys
    assert ckpt["hyper_parameters"]["configs"]["act_head"]["type"] == "LSTMDecoder"

    loaded = load_model(ckpt_path)
    report = loaded.report
    assert report.ok and report.loaded == report.expected
    assert not report.missing_trained and not report.missing_frozen and not report.unexpected
    assert report.forms[FORM_BACKBONE] == report.forms[FORM_PEFT_MODEL] > 0
    assert any(a.startswith("lightning") for a in report.aliases)
    assert any(a.startswith(FORM_PEFT_MODEL) for a in report.aliases)
    assert_same_weights(model, loaded.model)
    # built with meta parameters then assigned: ties, LSTM flat weights and buffers must hold
    lm = loaded.model.backbone.text_model
    assert lm.lm_head.weight is lm.model.embed_tokens.weight
    assert not any(p.is_meta for p in loaded.model.parameters())
    text = model.text_inputs("go left")
    frames = [torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    torch.testing.assert_close(
        loaded.model.eval().predict_window(frames, text), model.predict_window(frames, text)
    )


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

    path = rewrite(ckpt_path, tmp_path / "third.ckpt", to_third_form)
    loaded = load_model(path)
    assert loaded.report.ok and set(loaded.report.forms) == {FORM_PEFT_BACKBONE, "act_head.* / action_token"}
    assert any(a.startswith(FORM_PEFT_BACKBONE) for a in loaded.report.aliases)
    assert_same_weights(model, loaded.model)


def test_one_alias_alone_is_enough(model, ckpt_path, tmp_path):
    def drop_peft_alias(ckpt):
        ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("model.model.")}

    loaded = load_model(rewrite(ckpt_path, tmp_path / "backbone_only.ckpt", drop_peft_alias))
    assert loaded.report.ok and FORM_PEFT_MODEL not in loaded.report.forms
    assert_same_weights(model, loaded.model)


def test_raw_state_dict_and_config_beside(model, tmp_path):
    path = tmp_path / "raw.pt"
    torch.save(model.state_dict(), path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(model.config.to_robovlms()), encoding="utf-8")
    with pytest.raises(CheckpointError, match="--config"):
        load_model(path)
    loaded = load_model(path, config_path=config)
    assert loaded.report.ok
    assert_same_weights(model, loaded.model)


def test_velocities_head_round_trip(tmp_path):
    m = MobileVLAModel.build(VLAConfig(head_type="MobileVLALSTMDecoder"), seed=1)
    loaded = load_model(save_checkpoint(m, tmp_path / "vel.ckpt"))
    assert loaded.config.head_type == "MobileVLALSTMDecoder" and loaded.report.ok
    assert_same_weights(m, loaded.model)


def test_load_policy_records_checkpoint_and_report(ckpt_path):
    policy = load_policy(ckpt_path, dead_zone=0.0)
    settings = policy.settings()
    assert settings["checkpoint"] == str(ckpt_path)
    assert settings["key_report"]["ok"] and settings["key_report"]["missing_trained"] == 0
    assert settings["postprocess"]["dead_zone"] == 0.0


# ------------------------------------------------------------------------------ failures
def test_missing_lora_key_fails_listing_it(ckpt_path, tmp_path):
    def drop_lora(ckpt):
        for prefix in ("model.backbone.", "model.model.base_model.model."):
            del ckpt["state_dict"][prefix + LORA_KEY]

    with pytest.raises(CheckpointError) as info:
        load_model(rewrite(ckpt_path, tmp_path / "no_lora.ckpt", drop_lora))
    assert f"backbone.{LORA_KEY}" in str(info.value) and "trained weights missing" in str(info.value)


@pytest.mark.parametrize("key", ["model.action_token", "model.act_head.gripper.mlp.6.bias"])
def test_missing_head_or_action_token_fails(ckpt_path, tmp_path, key):
    path = rewrite(ckpt_path, tmp_path / "no_head.ckpt", lambda c: c["state_dict"].pop(key))
    with pytest.raises(CheckpointError, match=key.removeprefix("model.").replace(".", r"\.")):
        load_model(path)


def test_missing_frozen_weight_fails_for_random_backbone(ckpt_path, tmp_path):
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


def test_shape_mismatch_fails(ckpt_path, tmp_path):
    def other_chunk(ckpt):
        ckpt["hyper_parameters"]["configs"]["fwd_pred_next_n"] = 5

    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(rewrite(ckpt_path, tmp_path / "chunk5.ckpt", other_chunk))


def test_truncated_file_is_one_line_error_naming_it(ckpt_path, tmp_path):
    path = tmp_path / "last.ckpt"
    data = ckpt_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_garbage_or_missing_file_errors(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "absent.ckpt")


# ------------------------------------------------------------------------------ units
@pytest.mark.parametrize(
    "key, canonical, form",
    [
        ("backbone.a.b", "backbone.a.b", FORM_BACKBONE),
        ("model.base_model.model.a.b", "backbone.a.b", FORM_PEFT_MODEL),
        ("backbone.base_model.model.a.b", "backbone.a.b", FORM_PEFT_BACKBONE),
        ("act_head.rnn.weight_ih_l0", "act_head.rnn.weight_ih_l0", "act_head.* / action_token"),
    ],
)
def test_canonical_key(key, canonical, form):
    assert canonical_key(key) == (canonical, form)


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


def test_parameter_counts_from_shapes_match_model(model):
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    counts = count_parameters(shapes)
    expected = model.parameter_counts()
    for key in ("total", "trainable", "lora", "head", "action_token"):
        assert counts[key] == expected[key], key


# ------------------------------------------------------------------------------ folder backbone
@pytest.fixture(scope="module")
def training_root(tmp_path_factory):
    """A training repo root with a (tiny) Kosmos-2 saved as `.vlms/kosmos-2-patch14-224`."""
    from policies.vla_model import build_backbone

    root = tmp_path_factory.mktemp("repo")
    torch.manual_seed(5)
    backbone, tokenizer, _ = build_backbone(VLAConfig())
    folder = root / ".vlms" / "kosmos-2-patch14-224"
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return root


def test_lora_only_checkpoint_fills_frozen_weights_from_folder(training_root, tmp_path):
    folder = training_root / ".vlms" / "kosmos-2-patch14-224"
    m = MobileVLAModel.build(VLAConfig(backbone=str(folder)), seed=2)
    assert m.backbone_source == "pretrained"
    path = save_checkpoint(m, tmp_path / "full.ckpt")

    def keep_trained(ckpt):
        ckpt["state_dict"] = {
            k: v
            for k, v in ckpt["state_dict"].items()
            if "lora_" in k or k.startswith(("model.act_head.", "model.action_token"))
        }

    loaded = load_model(rewrite(path, tmp_path / "lora_only.ckpt", keep_trained))
    assert loaded.report.ok and loaded.report.filled_from_pretrained and not loaded.report.missing_frozen
    assert loaded.model.backbone_source == "pretrained"
    assert_same_weights(m, loaded.model)


def test_relative_backbone_resolved_from_runs_path(training_root):
    m = MobileVLAModel.build(
        VLAConfig(backbone=str(training_root / ".vlms" / "kosmos-2-patch14-224")), seed=2
    )
    m.config = m.config.replace(backbone=".vlms/kosmos-2-patch14-224")  # as the real configs store it
    run_dir = training_root / "runs" / "exp" / "kosmos" / "mobile_vla_finetune" / "2025-11-14" / "exp"
    path = save_checkpoint(m, run_dir / "last.ckpt")
    loaded = load_model(path)
    assert loaded.config.backbone == str(training_root / ".vlms" / "kosmos-2-patch14-224")
    assert_same_weights(m, loaded.model)


def test_missing_backbone_folder_error_names_it(tmp_path):
    from policies.vla_model import BackboneNotFoundError

    m = MobileVLAModel.build(VLAConfig(), seed=0)
    m.config = m.config.replace(backbone=str(tmp_path / "nowhere" / "kosmos-2-patch14-224"))
    path = save_checkpoint(m, tmp_path / "needs_folder.ckpt")
    with pytest.raises(BackboneNotFoundError, match="nowhere"):
        load_model(path)
