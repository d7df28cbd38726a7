"""VLAConfig: defaults of the real run, RoboVLMs JSON parsing/writing, validation messages."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from policies.vla_config import _ROBOVLMS_TEMPLATE, ConfigError, VLAConfig

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "mobile_vla_20251114_lora.json"


def reference_config() -> dict:
    if REFERENCE.is_file():
        return json.loads(REFERENCE.read_text(encoding="utf-8"))
    return copy.deepcopy(_ROBOVLMS_TEMPLATE)


def test_defaults_are_the_real_run():
    cfg = VLAConfig()
    assert (cfg.window_size, cfg.fwd_pred_next_n, cfg.image_size) == (8, 10, 224)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_bias) == (32, 16, 0.1, "none")
    assert (cfg.head_type, cfg.hidden_size, cfg.num_lstm_layers, cfg.history_type) == (
        "LSTMDecoder",
        512,
        4,
        "post",
    )


def test_parse_reference_config_resolves_backbone_against_root(tmp_path):
    cfg = VLAConfig.from_robovlms(reference_config(), config_root=tmp_path)
    assert cfg.backbone == str(tmp_path / ".vlms/kosmos-2-patch14-224")
    assert cfg.head_type == "LSTMDecoder" and cfg.window_size == 8 and cfg.fwd_pred_next_n == 10
    assert cfg.lora_enable and cfg.lora_r == 32 and cfg.lora_alpha == 16
    assert cfg.normalization == "clip" and cfg.channel_order == "rgb"
    assert cfg.training.accumulate_grad_batches == 8 and cfg.training.max_epochs == 20


def test_backbone_dir_overrides_config_path(tmp_path):
    cfg = VLAConfig.from_robovlms(reference_config(), backbone_dir=tmp_path / "kosmos")
    assert cfg.backbone == str(tmp_path / "kosmos")


def test_parse_from_json_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(reference_config()), encoding="utf-8")
    assert VLAConfig.from_robovlms(path).window_size == 8


@pytest.mark.parametrize("head_type", ["LSTMDecoder", "MobileVLALSTMDecoder"])
def test_round_trip_through_robovlms_schema(head_type):
    cfg = VLAConfig(head_type=head_type, normalization="none", channel_order="bgr", window_size=6)
    again = VLAConfig.from_robovlms(json.loads(json.dumps(cfg.to_robovlms())))
    assert again == cfg


def _keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
    return out


def test_written_schema_has_every_reference_key():
    written = VLAConfig().to_robovlms()
    missing = _keys(reference_config()) - _keys(written)
    assert not missing, f"keys of the real run's config missing from to_robovlms(): {sorted(missing)}"
    assert written["act_head"]["type"] == "LSTMDecoder" and written["train_setup"]["lora_r"] == 32
    assert written["mvla_sim"]["backbone"] == "tiny"


@pytest.mark.parametrize(
    "path, value, match",
    [
        (("act_head", "type"), "GPTDecoder", "GPTDecoder"),
        (("act_head", "history_type"), "pre", "'pre'"),
        (("act_head", "action_dim"), 7, "7"),
        (("model",), "paligemma", "paligemma"),
        (("use_vision_resampler",), True, "use_vision_resampler"),
        (("tokenizer", "tokenizer_type"), "llava", "llava"),
    ],
)
def test_mismatched_values_fail_clearly(path, value, match):
    raw = reference_config()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=match):
        VLAConfig.from_robovlms(raw)


def test_missing_required_key_fails():
    raw = reference_config()
    del raw["window_size"]
    with pytest.raises(ConfigError, match="window_size"):
        VLAConfig.from_robovlms(raw)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window_size": 0}, "window_size.*0"),
        ({"normalization": "zscore"}, "zscore"),
        ({"channel_order": "grb"}, "grb"),
        ({"head_type": "FCDecoder"}, "FCDecoder"),
        ({"prompt_template": "no slot"}, "instruction"),
        ({"lora_dropout": 1.5}, "1.5"),
        ({"image_std": (0.1, 0.0, 0.1)}, "image_std"),
    ],
)
def test_post_init_quotes_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VLAConfig(**kwargs)


def test_unreadable_config_file_fails(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.json"):
        VLAConfig.from_robovlms(bad)
