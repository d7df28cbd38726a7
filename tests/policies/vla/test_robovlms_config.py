"""RoboVLMs config JSON <-> VLAConfig: every config form the team wrote parses, or is refused in one
line naming the feature; ``parent`` chains; backbone paths; writing our own runs' configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.vla.checkpoint_io import raw_config, read_checkpoint
from policies.vla.config import (
    CLASS_MAPS,
    TINY_KOSMOS2_CONFIG,
    ConfigError,
    TrainingRecipe,
    UnsupportedConfigError,
    VLAConfig,
)
from policies.vla.robovlms_config import (
    KOSMOS2_DIR_ENV,
    is_hub_reference,
    load_config_file,
    parse,
    resolve_backbone,
    to_robovlms,
)

REPO = Path(__file__).resolve().parents[3]
REFERENCE_CONFIG_PATH = REPO / "assets" / "configs" / "mobile_vla_20251114_lora.json"
FORK = REPO / "tests" / "fixtures" / "fork_reference"
KOSMOS_DIR = ".vlms/kosmos-2-patch14-224"
_REFERENCE = REFERENCE_CONFIG_PATH.read_text(encoding="utf-8")


def reference_config() -> dict:
    """A fresh copy of the report's RoboVLMs config."""
    return json.loads(_REFERENCE)


def fork_checkpoint(name: str) -> Path:
    return FORK / (FORK / name / "checkpoint.txt").read_text().strip()


def _with(changes: dict | None = None, **head) -> dict:
    """The reference config with top-level ``changes`` and ``act_head`` keys updated."""
    cfg = reference_config()
    cfg.update(changes or {})
    cfg["act_head"].update(head)
    return cfg


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ the report's run
def test_reference_config_parses_to_the_report_run(tmp_path):
    cfg = parse(REFERENCE_CONFIG_PATH, config_root=tmp_path)
    assert cfg.backbone == str(tmp_path / KOSMOS_DIR)
    assert (cfg.head_type, cfg.hidden_size, cfg.num_lstm_layers) == ("LSTMDecoder", 512, 4)
    assert (cfg.window_size, cfg.fwd_pred_next_n, cfg.image_size, cfg.max_text_len) == (8, 10, 224, 256)
    assert cfg.lora_enable and (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (32, 16, 0.1)
    assert cfg.lora_target_modules is None and cfg.norm_action and cfg.seed == 123
    t = cfg.training
    assert (t.accumulate_grad_batches, t.precision, t.max_epochs, t.gradient_clip_val) == (
        8,
        "16-mixed",
        20,
        1.0,
    )
    assert (t.warmup_epochs, t.learning_rate, t.exp_name) == (0.1, 1e-4, "mobile_vla_lora_20251114")
    # the act_head's window 1 / chunk 1 are overridden by the top level, and the parse says so
    assert any("window_size: top level 8 overrides act_head's 1" in n for n in cfg.notes)
    assert cfg.recipe is None  # a team run: the era decides what it saw


def test_dict_json_text_and_file_parse_the_same(tmp_path):
    text = REFERENCE_CONFIG_PATH.read_text(encoding="utf-8")
    a = parse(reference_config(), config_root=tmp_path)
    b = parse(text, config_root=tmp_path)
    c = parse(REFERENCE_CONFIG_PATH, config_root=tmp_path)
    assert a == b == c


def test_parse_does_not_change_its_input():
    raw = reference_config()
    parse(raw)
    assert raw == reference_config()


# ------------------------------------------------------------------------------ parent chains
def test_parent_is_resolved_relative_to_the_config_file(tmp_path, monkeypatch):
    base = reference_config()
    _write(tmp_path / "configs" / "base.json", base)
    _write(
        tmp_path / "configs" / "mid" / "mid.json",
        {"parent": "../base.json", "fwd_pred_next_n": 5, "train_setup": {"lora_r": 16}},
    )
    child = _write(
        tmp_path / "configs" / "mid" / "leaf" / "child.json",
        {"parent": "../mid.json", "act_head": {"type": "MobileVLALSTMDecoder"}, "exp_name": "child"},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the parent is found beside the file, not in the current folder
    merged = load_config_file(child)
    assert merged["exp_name"] == "child" and merged["fwd_pred_next_n"] == 5
    # nested dicts merge key by key: the child's act_head keeps the grandparent's hidden_size
    assert merged["act_head"]["type"] == "MobileVLALSTMDecoder" and merged["act_head"]["hidden_size"] == 512
    assert merged["train_setup"]["lora_r"] == 16 and merged["train_setup"]["lora_alpha"] == 16
    cfg = parse(child)
    assert (cfg.head_type, cfg.hidden_size, cfg.fwd_pred_next_n, cfg.lora_r) == (
        "MobileVLALSTMDecoder",
        512,
        5,
        16,
    )


def test_parent_falls_back_to_the_current_folder(tmp_path, monkeypatch):
    _write(tmp_path / "configs" / "base.json", reference_config())
    child = _write(tmp_path / "exp" / "child.json", {"parent": "configs/base.json", "window_size": 6})
    monkeypatch.chdir(tmp_path)  # RoboVLMs' loader opens the parent relative to where it runs
    assert parse(child).window_size == 6


def test_parent_relative_to_the_training_repo_root_is_found_from_a_subfolder(tmp_path, monkeypatch):
    """The team's configs/v3 children name 'configs/<parent>.json', relative to their repo root."""
    _write(tmp_path / "repo" / "configs" / "base.json", reference_config())
    child = _write(
        tmp_path / "repo" / "configs" / "child.json", {"parent": "configs/base.json", "window_size": 4}
    )
    monkeypatch.chdir(tmp_path)  # not the repo root
    assert parse(child).window_size == 4


def test_parent_named_by_the_training_machine_absolute_path_is_found_beside_the_file(tmp_path):
    _write(tmp_path / "configs" / "base.json", reference_config())
    child = _write(
        tmp_path / "configs" / "child.json",
        {"parent": "/home/someone/vla/Mobile_VLA/configs/base.json", "window_size": 12},
    )
    assert parse(child).window_size == 12


def test_unknown_robovlm_name_with_a_kosmos_model_is_noted_not_refused():
    cfg = reference_config()
    cfg["robovlm_name"] = "RoboVLM-Nav"
    parsed = parse(cfg)
    assert parsed.head_type == "LSTMDecoder" and any("RoboVLM-Nav" in n for n in parsed.notes)
    cfg["robovlm_name"] = "RoboPaliGemma"
    with pytest.raises(UnsupportedConfigError, match="PaliGemma"):
        parse(cfg)


def test_a_written_config_is_merged_and_self_contained(tmp_path):
    """What ``to_robovlms`` writes (into a checkpoint, or beside a run) holds the merged chain: it
    must not name the parent again, which would be looked up wherever the file now lives."""
    _write(tmp_path / "configs" / "base.json", reference_config())
    child = _write(tmp_path / "configs" / "child.json", {"parent": "base.json", "window_size": 6})
    parsed = parse(child)
    written = to_robovlms(parsed)
    assert written.get("parent") is None and written["window_size"] == 6
    moved = _write(tmp_path / "elsewhere" / "config.json", written)
    assert parse(moved) == parsed


def test_override_marker_replaces_a_section(tmp_path):
    _write(tmp_path / "base.json", reference_config())
    child = _write(
        tmp_path / "child.json",
        {"parent": "base.json", "act_head": {"__override__": True, "type": "MobileVLALSTMDecoder"}},
    )
    merged = load_config_file(child)
    assert merged["act_head"] == {"type": "MobileVLALSTMDecoder"}
    assert parse(child).hidden_size == 1024  # the parent's 512 is gone: the fork's default


def test_parent_cycle_is_a_one_line_error(tmp_path):
    _write(tmp_path / "a.json", {**reference_config(), "parent": "b.json"})
    _write(tmp_path / "b.json", {"parent": "a.json"})
    with pytest.raises(ConfigError, match="loops") as info:
        parse(tmp_path / "a.json")
    assert "a.json" in str(info.value) and "b.json" in str(info.value) and "\n" not in str(info.value)


def test_missing_parent_names_it_and_where_it_looked(tmp_path):
    child = _write(tmp_path / "child.json", {"parent": "nowhere/base.json"})
    with pytest.raises(ConfigError, match="nowhere/base.json") as info:
        parse(child)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "content, match", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), (None, "cannot read")]
)
def test_unreadable_config_file_names_it(tmp_path, content, match):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as info:
        parse(path)
    assert "bad.json" in str(info.value)


@pytest.mark.parametrize("config", ["{not json", "[1]", 42])
def test_bad_config_text_or_type(config):
    with pytest.raises(ConfigError):
        parse(config)


# ------------------------------------------------------------------------------ window and chunk
@pytest.mark.parametrize(
    "where",
    ["top", "act_head", "train_dataset", "train_dataset_list", "chunk_size_key"],
)
def test_window_and_chunk_are_read_where_the_config_puts_them(where):
    cfg = reference_config()
    del cfg["window_size"], cfg["fwd_pred_next_n"]
    del cfg["act_head"]["window_size"], cfg["act_head"]["fwd_pred_next_n"]
    if where == "top":
        cfg.update(window_size=12, fwd_pred_next_n=6)
    elif where == "act_head":
        cfg["act_head"].update(window_size=12, fwd_pred_next_n=6)
    elif where == "train_dataset":
        cfg["train_dataset"].update(window_size=12, fwd_pred_next_n=6)
    elif where == "train_dataset_list":
        cfg["train_dataset"] = [{**cfg["train_dataset"], "window_size": 12, "fwd_pred_next_n": 6}]
    else:
        cfg["train_dataset"].update(window_size=12, action_chunk_size=6)
    parsed = parse(cfg)
    assert (parsed.window_size, parsed.fwd_pred_next_n) == (12, 6)
    if where != "top":
        assert any("window_size 12 read from" in n for n in parsed.notes)


def test_top_level_wins_over_act_head_and_train_dataset():
    cfg = _with({"window_size": 16, "fwd_pred_next_n": 2}, window_size=4, fwd_pred_next_n=10)
    cfg["train_dataset"].update(window_size=6, fwd_pred_next_n=1)
    parsed = parse(cfg)
    assert (parsed.window_size, parsed.fwd_pred_next_n) == (16, 2)


@pytest.mark.parametrize("key", ["window_size", "fwd_pred_next_n"])
def test_missing_window_or_chunk_names_the_key(key):
    cfg = reference_config()
    del cfg[key], cfg["act_head"][key]
    with pytest.raises(ConfigError, match=key):
        parse(cfg)


# ------------------------------------------------------------------------------ heads
@pytest.mark.parametrize(
    "head_type", ["LSTMDecoder", "MobileVLALSTMDecoder", "MobileVLAClassificationDecoder"]
)
def test_every_head_type_parses(head_type):
    parsed = parse(_with(type=head_type))
    assert parsed.head_type == head_type
    assert parsed.is_classification == (head_type == "MobileVLAClassificationDecoder")


def test_hidden_size_and_layers_absent_are_the_forks_defaults():
    cfg = reference_config()
    del cfg["act_head"]["hidden_size"]
    parsed = parse(cfg)
    assert parsed.hidden_size == 1024 and parsed.num_lstm_layers == 4
    assert parse(_with(num_layers=2, policy_rnn_dropout_p=0.2)).num_lstm_layers == 2


@pytest.mark.parametrize("num_classes", [6, 9])
def test_classification_classes_from_the_facts_tables(num_classes):
    parsed = parse(_with(type="MobileVLAClassificationDecoder", num_classes=num_classes))
    assert parsed.num_classes == num_classes and parsed.class_map is None
    assert parsed.resolved_class_map() == CLASS_MAPS[num_classes]
    assert parsed.head_output_dim == num_classes


def test_classification_num_classes_at_top_level_and_default():
    assert parse(_with({"num_classes": 9}, type="MobileVLAClassificationDecoder")).num_classes == 9
    assert parse(_with(type="MobileVLAClassificationDecoder")).num_classes == 6


def test_class_map_from_config_with_string_keys():
    table = {str(i): [round(0.1 * i, 2), -round(0.1 * i, 2)] for i in range(6)}
    parsed = parse(_with({"class_map": table}, type="MobileVLAClassificationDecoder", num_classes=6))
    assert parsed.class_map == {i: (round(0.1 * i, 2), -round(0.1 * i, 2)) for i in range(6)}
    assert parsed.resolved_class_map()[5] == (0.5, -0.5)


def test_class_map_of_an_unknown_size_comes_from_the_config():
    table = {str(i): [0.0, 0.0] for i in range(4)}
    parsed = parse(_with({"class_map": table}, type="MobileVLAClassificationDecoder", num_classes=4))
    assert parsed.num_classes == 4 and len(parsed.resolved_class_map()) == 4
    with pytest.raises(ConfigError, match="num_classes 4"):
        parse(_with(type="MobileVLAClassificationDecoder", num_classes=4))


@pytest.mark.parametrize(
    "table, match", [({"zero": [0, 0]}, "zero"), ([[0, 0]], "class_map must be an object")]
)
def test_bad_class_map_is_a_config_error(table, match):
    with pytest.raises(ConfigError, match=match):
        parse(_with({"class_map": table}, type="MobileVLAClassificationDecoder", num_classes=6))


def test_class_weights_and_inference_mode():
    weights = [0.5, 1.0, 2.0, 1.5, 1.5, 1.2, 1.2, 2.0, 2.0]
    parsed = parse(
        _with(
            {"inference_mode": "classification", "discrete_action": True},
            type="MobileVLAClassificationDecoder",
            num_classes=9,
            class_weights=weights,
        )
    )
    assert parsed.class_weights == tuple(weights) and parsed.inference_mode == "classification"
    silent = parse(_with(type="MobileVLAClassificationDecoder", num_classes=9))
    assert any("without inference_mode" in n for n in silent.notes)
    with pytest.raises(ConfigError, match="9 values, got 2"):
        parse(_with(type="MobileVLAClassificationDecoder", num_classes=9, class_weights=[1.0, 2.0]))


def test_classification_action_dim_placeholder_is_accepted():
    parsed = parse(_with(type="MobileVLAClassificationDecoder", num_classes=9, action_dim=9))
    assert parsed.action_dim == 2 and any("placeholder" in n for n in parsed.notes)


# ------------------------------------------------------------------------------ other keys
def test_lora_target_modules_are_kept():
    cfg = reference_config()
    cfg["train_setup"]["lora_target_modules"] = ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert parse(cfg).lora_target_modules == ("q_proj", "k_proj", "v_proj", "out_proj")


def test_lora_target_modules_as_one_string_is_not_split_into_characters():
    cfg = reference_config()
    cfg["train_setup"]["lora_target_modules"] = "q_proj"
    try:
        parsed = parse(cfg)
    except ConfigError as exc:
        assert "lora_target_modules" in str(exc)
    else:
        assert parsed.lora_target_modules == ("q_proj",)


def test_lora_enable_absent_means_no_lora_and_says_so():
    cfg = reference_config()
    del cfg["train_setup"]["lora_enable"]
    parsed = parse(cfg)
    assert not parsed.lora_enable and any("lora_enable absent" in n for n in parsed.notes)


def test_vision_resampler_and_pooling_are_accepted_with_notes():
    parsed = parse(_with({"use_vision_resampler": True}, down_sample="pooling"))
    assert parsed.use_vision_resampler and parsed.down_sample == "pooling"
    assert any("use_vision_resampler" in n for n in parsed.notes)
    assert any("pooling" in n and "identity" in n for n in parsed.notes)


@pytest.mark.parametrize("where", ["train_dataset", "top"])
def test_abs_action_parses_with_a_note(where):
    cfg = reference_config()
    if where == "top":
        cfg["abs_action"] = True
    else:
        cfg["train_dataset"]["abs_action"] = True
    parsed = parse(cfg)
    assert parsed.abs_action and any("abs_action_side='instruction'" in n for n in parsed.notes)


def test_training_only_keys_never_block_loading():
    cfg = _with(
        {
            "optimizer": "lion",
            "use_color_jitter": True,
            "use_random_crop": True,
            "tune_mm_projector": True,
            "unknown_future_key": {"anything": [1, 2]},
            "use_state": True,
            "trainer": {"accumulate_grad_batches": "eight", "precision": "bf16-mixed"},
        }
    )
    cfg["train_dataset"].update(
        data_dir="/nonexistent/dataset", history_dropout_prob=0.3, episode_pattern="*.h5"
    )
    cfg["train_setup"]["tune_mm_projector"] = True
    parsed = parse(cfg)
    assert parsed.head_type == "LSTMDecoder" and parsed.tune_mm_projector
    notes = " | ".join(parsed.notes)
    for key in (
        "history_dropout_prob",
        "use_color_jitter",
        "use_random_crop",
        "use_state",
        "training settings",
    ):
        assert key in notes, key
    assert parsed.training.accumulate_grad_batches == 1  # unreadable: the defaults, said in a note


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    "changes, head, feature",
    [
        ({"model": "paligemma", "robovlm_name": "RoboPaligemma"}, {}, "PaliGemma"),
        ({"robovlm_name": "RoboPaligemma"}, {}, "PaliGemma"),
        ({"model": "llava", "robovlm_name": "RoboLLaVA"}, {}, "llava"),
        ({}, {"action_dim": 7}, "7-D action"),
        ({"action_dim": 7}, {}, "7-D action"),
        ({}, {"latent": 2}, "latent 2"),
        ({}, {"history_type": "pre"}, "history_type 'pre'"),
        ({}, {"history_type": "video"}, "history_type 'video'"),
        ({"fwd_head": {"type": "ForwardPredHead"}}, {}, "fwd_head"),
        ({"use_hand_rgb": True}, {}, "use_hand_rgb"),
        ({}, {"action_space": "discrete"}, "action_space 'discrete'"),
        ({}, {"type": "GPTDecoder"}, "GPTDecoder"),
        ({}, {"down_sample": "resampler"}, "down_sample 'resampler'"),
        ({"tokenizer": {"tokenizer_type": "llava"}}, {}, "tokenizer_type 'llava'"),
    ],
)
def test_refusals_are_one_line_naming_the_feature(changes, head, feature):
    with pytest.raises(UnsupportedConfigError, match=feature) as info:
        parse(_with(changes, **head))
    assert "\n" not in str(info.value)


def test_discrete_action_space_is_fine_for_a_classification_head():
    parsed = parse(_with(type="MobileVLAClassificationDecoder", num_classes=9, action_space="discrete"))
    assert parsed.num_classes == 9


def test_missing_act_head_is_a_config_error():
    cfg = reference_config()
    cfg["act_head"] = None
    with pytest.raises(ConfigError, match="act_head"):
        parse(cfg)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda c: c["tokenizer"].update(max_text_len="long"), id="max_text_len"),
        pytest.param(lambda c: c["act_head"].update(policy_rnn_dropout_p="high"), id="rnn_dropout"),
        pytest.param(lambda c: c["train_setup"].update(lora_dropout="x"), id="lora_dropout"),
        pytest.param(lambda c: c.update(norm_min="low"), id="norm_min"),
        pytest.param(
            lambda c: c["act_head"].update(type="MobileVLAClassificationDecoder", num_classes="nine"),
            id="num_classes",
        ),
        pytest.param(
            lambda c: c["act_head"].update(
                type="MobileVLAClassificationDecoder", num_classes=9, class_weights=["heavy"] * 9
            ),
            id="class_weights",
        ),
        pytest.param(lambda c: c.update(train_setup="lora"), id="train_setup"),
        pytest.param(lambda c: c.update(tokenizer="kosmos"), id="tokenizer"),
        pytest.param(lambda c: c.update(image_mean="abc"), id="image_mean"),
        pytest.param(lambda c: c["train_setup"].update(lora_alpha="x"), id="lora_alpha"),
    ],
)
def test_malformed_values_are_config_errors(edit):
    """A value of the wrong type is a ConfigError (one line), never a bare ValueError/AttributeError."""
    cfg = reference_config()
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        parse(cfg)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ backbone paths
def test_model_url_alone_maps_to_vlms_under_the_training_root(tmp_path):
    cfg = reference_config()
    for key in ("model_path", "model_config"):
        cfg.pop(key)
    cfg.pop("vlm")
    cfg["tokenizer"].pop("pretrained_model_name_or_path")
    parsed = parse(cfg, config_root=tmp_path)
    assert parsed.backbone == str(tmp_path / KOSMOS_DIR)
    assert any("mapped to .vlms/kosmos-2-patch14-224" in n for n in parsed.notes)
    assert parse(cfg).backbone == KOSMOS_DIR  # no root: relative, resolved when a checkpoint is loaded


def test_hub_id_maps_to_vlms(tmp_path):
    cfg = reference_config()
    cfg["vlm"]["pretrained_model_name_or_path"] = "microsoft/kosmos-2-patch14-224"
    assert parse(cfg, config_root=tmp_path).backbone == str(tmp_path / KOSMOS_DIR)


def test_backbone_dir_then_env_then_config(tmp_path, monkeypatch):
    cfg = reference_config()
    monkeypatch.setenv(KOSMOS2_DIR_ENV, str(tmp_path / "from_env"))
    assert parse(cfg, backbone_dir=tmp_path / "given").backbone == str(tmp_path / "given")
    assert parse(cfg, config_root=tmp_path / "root").backbone == str(tmp_path / "from_env")
    monkeypatch.delenv(KOSMOS2_DIR_ENV)
    assert parse(cfg, config_root=tmp_path / "root").backbone == str(tmp_path / "root" / KOSMOS_DIR)


def test_preset_recorded_by_our_run_wins_over_the_env(monkeypatch, tmp_path):
    monkeypatch.setenv(KOSMOS2_DIR_ENV, str(tmp_path / "kosmos"))
    written = to_robovlms(VLAConfig(backbone="tiny"))
    assert parse(written).backbone == "tiny"
    backbone, how = resolve_backbone(written)
    assert (backbone, how) == ("tiny", "mvla_sim.backbone preset")


def test_absolute_backbone_path_is_kept(tmp_path):
    cfg = reference_config()
    cfg["vlm"]["pretrained_model_name_or_path"] = str(tmp_path / "kosmos")
    assert parse(cfg, config_root=tmp_path / "root").backbone == str(tmp_path / "kosmos")


def test_no_backbone_at_all_is_a_config_error():
    cfg = reference_config()
    for key in ("model_path", "model_url", "vlm"):
        cfg.pop(key)
    cfg["tokenizer"].pop("pretrained_model_name_or_path")
    with pytest.raises(ConfigError, match="names no backbone"):
        parse(cfg)


@pytest.mark.parametrize(
    "value, hub",
    [
        ("https://huggingface.co/microsoft/kosmos-2-patch14-224", True),
        ("microsoft/kosmos-2-patch14-224", True),
        (".vlms/kosmos-2-patch14-224", False),
        ("/models/kosmos-2-patch14-224", False),
        ("kosmos-2-patch14-224", False),
        ("a/b/c", False),
    ],
)
def test_is_hub_reference(value, hub):
    assert is_hub_reference(value) is hub


# ------------------------------------------------------------------------------ writing configs
@pytest.mark.parametrize(
    "config",
    [
        VLAConfig(),
        VLAConfig(head_type="MobileVLALSTMDecoder", window_size=6, fwd_pred_next_n=1, lora_enable=True),
        VLAConfig(
            head_type="MobileVLAClassificationDecoder",
            num_classes=9,
            class_weights=(0.5,) * 9,
            class_map={i: (0.1 * i, -0.1 * i) for i in range(9)},
            inference_mode="classification",
            lora_enable=True,
            lora_target_modules=("q_proj", "v_proj"),
            hidden_size=256,
            num_lstm_layers=2,
        ),
        VLAConfig(
            backbone="/models/kosmos-2-patch14-224",
            use_vision_resampler=True,
            down_sample="pooling",
            abs_action=True,
            max_text_len=64,
            recipe=TrainingRecipe(normalization="none", channel_order="bgr", token_layout="upstream"),
        ),
    ],
    ids=["defaults", "velocities", "classification", "folder_recipe"],
)
def test_round_trip_through_the_robovlms_json(config):
    written = json.loads(json.dumps(to_robovlms(config)))
    again = parse(written)
    assert again == config
    assert again.training == config.training  # defaults are written once: nothing drifts


def test_written_schema_has_every_reference_key():
    def keys(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    written = to_robovlms(VLAConfig(lora_enable=True))
    missing = keys(reference_config()) - keys(written)
    assert not missing, f"keys of the real run's config missing from to_robovlms(): {sorted(missing)}"
    assert written["act_head"]["type"] == "LSTMDecoder" and written["act_head"]["hidden_size"] == 1024
    assert (
        written["train_setup"]["lora_enable"] is True and written["trainer"]["accumulate_grad_batches"] == 1
    )
    assert written["mvla_sim"]["backbone"] == "tiny"
    assert written["mvla_sim"]["backbone_config"] == TINY_KOSMOS2_CONFIG
    assert written["mvla_sim"]["recipe"] is None


def test_writing_starts_from_the_parsed_source():
    cfg = reference_config()
    cfg["unknown_future_key"] = "kept"
    cfg["train_setup"]["lora_target_modules"] = ["q_proj"]
    parsed = parse(cfg)
    out = to_robovlms(parsed.replace(lora_target_modules=None))
    assert out["unknown_future_key"] == "kept" and "lora_target_modules" not in out["train_setup"]
    assert out["trainer"]["accumulate_grad_batches"] == 8 and out["train_setup"]["precision"] == "16-mixed"


def test_recipe_is_read_from_the_mvla_sim_section():
    recipe = TrainingRecipe(normalization="none", instruction="constant", token_layout="upstream")
    written = to_robovlms(VLAConfig(recipe=recipe))
    assert written["mvla_sim"]["recipe"]["token_layout"] == "upstream"
    assert parse(written).recipe == recipe
    written["mvla_sim"]["recipe"] = {"normalization": "zscore"}
    with pytest.raises(ConfigError, match="zscore"):
        parse(written)
    written["mvla_sim"]["recipe"] = {"colour": "rgb"}
    with pytest.raises(ConfigError, match="recipe"):
        parse(written)
    written["mvla_sim"] = "tiny"
    with pytest.raises(ConfigError, match="mvla_sim"):
        parse(written)


def test_legacy_mvla_sim_section_means_our_old_upstream_recipe():
    cfg = to_robovlms(VLAConfig())
    del cfg["mvla_sim"]["recipe"]
    cfg["mvla_sim"].update(normalization="none", channel_order="bgr")
    recipe = parse(cfg).recipe
    assert (recipe.normalization, recipe.channel_order, recipe.token_layout) == ("none", "bgr", "upstream")


def test_preset_sizes_written_out_collapse_to_the_preset():
    written = to_robovlms(VLAConfig())
    assert parse(written).backbone_config is None
    written["mvla_sim"]["backbone_config"] = {**TINY_KOSMOS2_CONFIG, "latent_query_num": 8}
    assert parse(written).backbone_config["latent_query_num"] == 8


def test_bundled_tiny_sim_config_parses_with_its_recipe():
    parsed = parse(REFERENCE_CONFIG_PATH.parent / "mobile_vla_tiny_sim.json")
    assert parsed.backbone == "tiny" and parsed.image_size == 112
    assert parsed.backbone_config["vision_config"]["image_size"] == 112
    assert parsed.recipe is not None and parsed.recipe.token_layout == "upstream"
    assert parsed.recipe.normalization == "clip"


# ------------------------------------------------------------------------------ the fork's own runs
@pytest.mark.parametrize(
    "name, head, extra",
    [
        ("lstm_decoder", "LSTMDecoder", {}),
        ("mobile_vla_lstm", "MobileVLALSTMDecoder", {"use_vision_resampler": True, "down_sample": "pooling"}),
        (
            "classification",
            "MobileVLAClassificationDecoder",
            {
                "num_classes": 9,
                "lora_target_modules": ("q_proj", "k_proj", "v_proj", "out_proj"),
                "class_weights": (0.5, 1.0, 2.0, 1.5, 1.5, 1.2, 1.2, 2.0, 2.0),
                "inference_mode": "classification",
            },
        ),
    ],
)
def test_configs_stored_by_the_forks_trainer_parse(name, head, extra):
    path = fork_checkpoint(name)
    parsed = parse(raw_config(read_checkpoint(path), path))
    assert parsed.head_type == head and (parsed.window_size, parsed.fwd_pred_next_n) == (8, 10)
    assert parsed.hidden_size == 32 and parsed.lora_enable and parsed.backbone == ".vlms/kosmos-2-tiny"
    for key, value in extra.items():
        assert getattr(parsed, key) == value, key
