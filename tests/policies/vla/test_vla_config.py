"""VLAConfig, TrainingConfig, TrainingRecipe: one typed source of defaults (the fork's when a key
is absent), validation that quotes the bad value, derived values."""

from __future__ import annotations

import json

import pytest

from policies.vla.config import (
    CLASS_MAPS,
    CONSTANT_INSTRUCTION,
    DEFAULT_PROMPT_TEMPLATE,
    TINY_KOSMOS2_CONFIG,
    ConfigError,
    TrainingConfig,
    TrainingRecipe,
    UnsupportedConfigError,
    VLAConfig,
)


# ------------------------------------------------------------------------------ defaults
def test_defaults_are_the_forks_when_a_key_is_absent():
    cfg = VLAConfig()
    assert (cfg.head_type, cfg.hidden_size, cfg.num_lstm_layers, cfg.num_classes) == (
        "LSTMDecoder",
        1024,
        4,
        6,
    )
    assert (cfg.window_size, cfg.fwd_pred_next_n, cfg.image_size, cfg.max_text_len) == (8, 10, 224, 256)
    assert (cfg.lora_enable, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_bias) == (
        False,
        32,
        16,
        0.1,
        "none",
    )
    assert cfg.lora_target_modules is None and cfg.freeze_backbone and not cfg.train_vision
    assert (cfg.history_type, cfg.latent, cfg.down_sample, cfg.action_dim) == ("post", 1, "none", 2)
    assert cfg.prompt_template == DEFAULT_PROMPT_TEMPLATE == "<grounding>An image of a robot {instruction}"
    assert cfg.recipe is None and cfg.abs_action is False and cfg.inference_mode is None


def test_training_defaults_are_lightnings_and_written_once():
    t = TrainingConfig()
    assert t.accumulate_grad_batches == 1 and t.precision == "32-true"
    assert (t.learning_rate, t.weight_decay, t.max_epochs, t.batch_size, t.train_split) == (
        1e-4,
        0.01,
        20,
        1,
        0.8,
    )
    assert VLAConfig().training == t


def test_recipe_defaults_and_constant_instruction():
    r = TrainingRecipe()
    assert (r.normalization, r.channel_order, r.instruction, r.token_layout, r.resize) == (
        "clip",
        "rgb",
        "verbatim",
        "fork",
        "bilinear",
    )
    assert r.constant_instruction == CONSTANT_INSTRUCTION == "Navigate to the target location"
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()


# ------------------------------------------------------------------------------ derived values
def test_preset_and_folder_backbones():
    assert VLAConfig().is_preset and VLAConfig(backbone="kosmos2-base").is_preset
    assert not VLAConfig(backbone="/models/kosmos-2-patch14-224").is_preset
    assert VLAConfig().resolved_backbone_config() == TINY_KOSMOS2_CONFIG
    assert VLAConfig(backbone="/models/kosmos").resolved_backbone_config() is None
    own = {"text_config": {"embed_dim": 32}}
    assert VLAConfig(backbone="/models/kosmos", backbone_config=own).resolved_backbone_config() == own
    # the preset dict is copied, never shared
    VLAConfig().resolved_backbone_config()["latent_query_num"] = 1
    assert TINY_KOSMOS2_CONFIG["latent_query_num"] == 16


@pytest.mark.parametrize("num_classes", [6, 9])
def test_classification_class_map_from_the_facts_tables(num_classes):
    cfg = VLAConfig(head_type="MobileVLAClassificationDecoder", num_classes=num_classes)
    assert cfg.is_classification and cfg.head_output_dim == num_classes
    table = cfg.resolved_class_map()
    assert table == CLASS_MAPS[num_classes] and sorted(table) == list(range(num_classes))
    assert table[0] == (0.0, 0.0) and table[1] == (1.15, 0.0)
    if num_classes == 6:
        assert (table[2], table[3], table[4], table[5]) == (
            (0.0, 1.15),
            (0.0, -1.15),
            (1.15, 1.15),
            (1.15, -1.15),
        )
    else:
        assert (table[2], table[3], table[4]) == ((-1.15, 0.0), (0.0, 1.15), (0.0, -1.15))
        assert (table[7], table[8]) == ((-1.15, 1.15), (-1.15, -1.15))


def test_class_map_from_config_wins_and_regression_heads_have_none():
    own = {i: (float(i), 0.0) for i in range(6)}
    assert VLAConfig(head_type="MobileVLAClassificationDecoder", class_map=own).resolved_class_map() == own
    assert (
        VLAConfig().head_output_dim == 2 and VLAConfig(head_type="MobileVLALSTMDecoder").head_output_dim == 2
    )
    with pytest.raises(ConfigError, match="not a classification head"):
        VLAConfig().resolved_class_map()


def test_replace_validates_again_and_to_dict_is_plain_json():
    cfg = VLAConfig(
        head_type="MobileVLAClassificationDecoder",
        num_classes=9,
        class_weights=(1.0,) * 9,
        class_map=dict(CLASS_MAPS[9]),
        lora_target_modules=("q_proj", "v_proj"),
    )
    assert cfg.replace(window_size=6).window_size == 6 and cfg.window_size == 8
    with pytest.raises(ConfigError, match="window_size"):
        cfg.replace(window_size=0)
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["class_map"]["8"] == [-1.15, -1.15] and d["lora_target_modules"] == ["q_proj", "v_proj"]
    assert "robovlms_source" not in d and "notes" not in d and d["training"]["accumulate_grad_batches"] == 1


def test_source_and_notes_do_not_change_equality():
    assert VLAConfig(robovlms_source={"x": 1}, notes=("a",)) == VLAConfig()


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window_size": 0}, "window_size.*0"),
        ({"fwd_pred_next_n": -1}, "fwd_pred_next_n.*-1"),
        ({"hidden_size": 1.5}, "hidden_size.*1.5"),
        ({"num_lstm_layers": True}, "num_lstm_layers.*True"),
        ({"head_type": "FCDecoder"}, "FCDecoder"),
        ({"prompt_template": "no slot"}, "instruction"),
        ({"lora_dropout": 1.5}, "1.5"),
        ({"lora_bias": "some"}, "'some'"),
        ({"lora_target_modules": ()}, "lora_target_modules"),
        ({"image_std": (0.1, 0.0, 0.1)}, "image_std"),
        ({"image_mean": (0.5, 0.5)}, "image_mean"),
        ({"action_dim": 7}, "action_dim.*7"),
        ({"latent": 2}, "latent.*2"),
        ({"history_type": "pre"}, "'pre'"),
        ({"down_sample": "resampler"}, "'resampler'"),
        ({"norm_min": 1.0, "norm_max": -1.0}, "norm_min"),
        ({"inference_mode": "argmax"}, "'argmax'"),
        ({"backbone": " "}, "backbone"),
        ({"head_type": "MobileVLAClassificationDecoder", "num_classes": 7}, "num_classes 7"),
        ({"head_type": "MobileVLAClassificationDecoder", "class_weights": (1.0,) * 5}, "6 values, got 5"),
        ({"head_type": "MobileVLAClassificationDecoder", "class_map": {0: (0.0, 0.0)}}, "classes 0..5"),
        ({"recipe": {"normalization": "clip"}}, "TrainingRecipe"),
        ({"training": {}}, "TrainingConfig"),
    ],
)
def test_config_post_init_quotes_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VLAConfig(**kwargs)


def test_seven_class_head_with_its_own_class_map_is_valid():
    own = {i: (0.0, 0.0) for i in range(7)}
    cfg = VLAConfig(head_type="MobileVLAClassificationDecoder", num_classes=7, class_map=own)
    assert cfg.resolved_class_map() == own


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"normalization": "zscore"}, "zscore"),
        ({"channel_order": "grb"}, "grb"),
        ({"instruction": "random"}, "random"),
        ({"token_layout": "llava"}, "llava"),
        ({"resize": "nearest"}, "nearest"),
        ({"constant_instruction": " "}, "constant_instruction"),
    ],
)
def test_recipe_post_init_quotes_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainingRecipe(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"accumulate_grad_batches": 0}, "accumulate_grad_batches.*0"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"train_split": 1.5}, "train_split.*1.5"),
    ],
)
def test_training_post_init_quotes_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainingConfig(**kwargs)


def test_unsupported_is_a_config_error():
    assert issubclass(UnsupportedConfigError, ConfigError) and issubclass(ConfigError, ValueError)
