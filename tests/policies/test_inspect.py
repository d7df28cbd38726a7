"""``python -m policies.inspect``: config, parameter counts and key report from shapes only."""

from __future__ import annotations

import json

import pytest
import torch

from policies.checkpoint import save_checkpoint
from policies.inspect import main
from policies.vla_config import VLAConfig
from policies.vla_model import MobileVLAModel


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return save_checkpoint(
        MobileVLAModel.build(VLAConfig(), seed=0), tmp_path_factory.mktemp("inspect") / "last.ckpt"
    )


def test_inspect_prints_config_counts_and_report(ckpt_path, capsys):
    assert main([str(ckpt_path)]) == 0
    out = capsys.readouterr().out
    for text in (
        "LSTMDecoder",
        "trainable",
        "lora",
        "action_token",
        "loaded",
        "model.base_model.model.<path>",
    ):
        assert text in out


def test_inspect_json(ckpt_path, capsys):
    assert main([str(ckpt_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["key_report"]["ok"] and info["key_report"]["loaded"] == info["key_report"]["expected"]
    assert info["parameters"]["trainable"] == info["parameters_expected"]["trainable"]
    assert info["config"]["window_size"] == 8


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


def test_inspect_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "key report" in capsys.readouterr().out
