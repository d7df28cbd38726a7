"""``python -m policies.vla.inspect``: a checkpoint's model, era, both profiles and key report from
shapes only; ``--config FILE`` validates a RoboVLMs config alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from policies.vla.checkpoint_io import save_checkpoint
from policies.vla.config import VLAConfig
from policies.vla.inspect import main
from policies.vla.model import MobileVLAModel

FORK = Path(__file__).resolve().parents[2] / "fixtures" / "fork_reference"
REFERENCE_CONFIG = (
    Path(__file__).resolve().parents[3] / "assets" / "configs" / "mobile_vla_20251114_lora.json"
)


def _fork_ckpt(name: str) -> str:
    return str(FORK / (FORK / name / "checkpoint.txt").read_text().strip())


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    config = VLAConfig(backbone="tiny", hidden_size=32, num_lstm_layers=1, lora_enable=True, lora_r=4)
    return save_checkpoint(
        MobileVLAModel.build(config, seed=0), tmp_path_factory.mktemp("inspect") / "last.ckpt"
    )


def test_inspect_prints_model_era_profiles_counts_and_report(capsys):
    assert main([_fork_ckpt("lstm_decoder")]) == 0
    out = capsys.readouterr().out
    for text in (
        "LSTMDecoder",
        "era          constant_instruction  from run folder date",
        "2025-11-20",
        "as_trained",
        "as_deployed: refused",
        "instruction given: 'Navigate to the target location'",
        "trainable",
        "model.base_model.model.<path>",
    ):
        assert text in out, text


def test_inspect_json_has_both_profiles_and_a_clean_report(capsys):
    assert main([_fork_ckpt("classification"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["key_report"]["ok"] and info["key_report"]["loaded"] == info["key_report"]["expected"]
    assert info["model"]["classes"] == 9 and info["model"]["lora"]["targets"] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "out_proj",
    ]
    trained, deployed = info["profiles"]["as_trained"], info["profiles"]["as_deployed"]
    assert trained["era"]["era"] == "clip_normalized" and trained["settings"]["normalization"] == "clip"
    assert deployed["settings"]["transport"] == "jpeg" and deployed["settings"]["decode"] == "classification"


def test_inspect_explicit_era_overrides_the_folder(capsys):
    assert main([_fork_ckpt("mobile_vla_lstm"), "--json", "--era", "2025-11-01"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profiles"]["as_trained"]["era"]["era"] == "constant_instruction"
    assert info["profiles"]["as_trained"]["era"]["source"] == "explicit"


def test_inspect_reports_missing_trained_weight(ckpt_path, tmp_path, capsys):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    del ckpt["state_dict"]["model.action_token"]
    torch.save(ckpt, tmp_path / "broken.ckpt")
    assert main([str(tmp_path / "broken.ckpt")]) == 1
    assert "missing trained: 1" in capsys.readouterr().out


def test_inspect_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00" * 64)
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bad.ckpt" in err and "\n" not in err


def test_inspect_config_alone_validates_the_reference_run(capsys):
    assert main(["--config", str(REFERENCE_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "(supported)" in out and "LSTMDecoder  hidden 512" in out and "era rule" in out


@pytest.mark.parametrize(
    ("change", "feature"),
    [
        ({"model": "paligemma", "robovlm_name": "RoboPaligemma"}, "PaliGemma"),
        ({"act_head": {"type": "LSTMDecoder", "action_dim": 7}}, "7-D action"),
        ({"act_head": {"type": "GPTDecoder"}}, "GPTDecoder"),
    ],
)
def test_inspect_config_refuses_in_one_line_naming_the_feature(tmp_path, capsys, change, feature):
    cfg = json.loads(REFERENCE_CONFIG.read_text())
    cfg.update(change)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and feature in err and "\n" not in err


def test_inspect_config_with_parent_resolved_beside_the_file(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.json").write_text(REFERENCE_CONFIG.read_text())
    child = {
        "parent": "../base.json",
        "act_head": {"type": "MobileVLAClassificationDecoder", "num_classes": 6},
    }
    (tmp_path / "sub" / "child.json").write_text(json.dumps(child))
    assert main(["--config", str(tmp_path / "sub" / "child.json"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"]["head"] == "MobileVLAClassificationDecoder" and info["model"]["classes"] == 6
    assert info["model"]["hidden_size"] == 512  # inherited from the parent's act_head


def test_inspect_needs_a_checkpoint_or_a_config(capsys):
    assert main([]) == 2
    assert "give a checkpoint" in capsys.readouterr().err


def test_inspect_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "key report" in capsys.readouterr().out


def test_inspect_says_in_one_line_whether_each_profile_sees_the_instruction(capsys):
    """The team's fallback path hides the 24-token prompt under the 64 image positions; the
    bundled run, trained with the upstream layout, sees it as_trained."""
    assert main([_fork_ckpt("classification")]) == 0
    out = capsys.readouterr().out
    assert (
        "as_trained: cannot see its instruction: token_layout fork (forward_path fallback), prompt 24 tokens "
        "vs 64 image positions: the image features overwrite positions 0-63" in out
    )
    reference = Path(__file__).resolve().parents[3] / "assets" / "checkpoints" / "reference"
    assert main([str(next(reference.glob("epoch_epoch=10-*.ckpt"))), "--json"]) == 0
    seen = json.loads(capsys.readouterr().out)["profiles"]["as_trained"]["instruction_visibility"]
    assert (
        seen["visible"]
        and seen["forward_path"] == "patched"
        and seen["line"].startswith("sees its instruction")
    )


def test_inspect_constant_instruction_era_cannot_see_the_episode_instruction(capsys):
    assert main([_fork_ckpt("lstm_decoder"), "--json"]) == 0
    seen = json.loads(capsys.readouterr().out)["profiles"]["as_trained"]["instruction_visibility"]
    assert not seen["visible"] and "names no side" in seen["reason"]
