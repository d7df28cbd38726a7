"""Training eras and the two reproduction profiles: what the model is shown, and why."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date
from pathlib import Path

import pytest

from policies.vla.config import TrainingRecipe, VLAConfig
from policies.vla.profiles import (
    ERA_NAMES,
    ERAS,
    InferenceSettings,
    ProfileError,
    decide_era,
    era_for_date,
    resolve,
    run_folder_date,
)

FORK = Path(__file__).resolve().parents[2] / "fixtures" / "fork_reference"


def fork_checkpoint(name: str) -> Path:
    return FORK / (FORK / name / "checkpoint.txt").read_text().strip()


def run_path(day: str, root: str = "/data/repo") -> Path:
    """A checkpoint in the fork's run layout, trained on ``day``."""
    return Path(root) / "runs" / "exp" / "kosmos" / "mobile_vla_finetune" / day / "exp_name" / "last.ckpt"


REGRESSION = VLAConfig(head_type="MobileVLALSTMDecoder")
LSTM = VLAConfig(head_type="LSTMDecoder")
CLASSIFIER = VLAConfig(
    head_type="MobileVLAClassificationDecoder", num_classes=9, inference_mode="classification"
)


# ------------------------------------------------------------------------------ eras
def test_three_eras_in_order():
    assert ERA_NAMES == ("constant_instruction", "file_instruction", "clip_normalized")
    assert [(e.normalization, e.instruction) for e in ERAS] == [
        ("none", "constant"),
        ("none", "verbatim"),
        ("clip", "verbatim"),
    ]
    for era in ERAS:
        recipe = era.recipe()
        # real data: BGR-stored frames read as RGB; the fallback forward path (the team's note)
        assert (recipe.token_layout, recipe.resize, recipe.channel_order) == ("fork", "bilinear", "bgr")
        assert recipe.source == f"era:{era.name}"


@pytest.mark.parametrize(
    "day, era",
    [
        (date(2025, 11, 14), "constant_instruction"),
        (date(2025, 12, 5), "constant_instruction"),
        (date(2025, 12, 6), "file_instruction"),
        (date(2026, 2, 2), "file_instruction"),
        (date(2026, 2, 3), "clip_normalized"),
        (date(2026, 2, 20), "clip_normalized"),
        (date(2030, 1, 1), "clip_normalized"),
    ],
)
def test_era_boundaries(day, era):
    assert era_for_date(day).name == era


def test_run_folder_date_reads_the_date_folder():
    day, folder = run_folder_date(run_path("2025-11-20"))
    assert day == date(2025, 11, 20) and folder.endswith("mobile_vla_finetune/2025-11-20")
    assert run_folder_date("/data/runs/exp/last.ckpt") is None
    assert run_folder_date("/data/runs/2025-13-40/exp/last.ckpt") is None  # not a date
    assert run_folder_date(None) is None


@pytest.mark.parametrize(
    "name, era",
    [
        ("lstm_decoder", "constant_instruction"),
        ("mobile_vla_lstm", "file_instruction"),
        ("classification", "clip_normalized"),
    ],
)
def test_fork_fixture_runs_get_their_era_from_the_folder(name, era):
    decision = decide_era(REGRESSION, fork_checkpoint(name))
    assert decision.era == era and decision.source == "run folder date"
    assert FORK.name in decision.evidence and not decision.warnings


def test_explicit_era_wins_over_the_folder():
    by_name = decide_era(REGRESSION, run_path("2026-02-20"), era="constant_instruction")
    assert (by_name.era, by_name.source) == ("constant_instruction", "explicit")
    by_date = decide_era(REGRESSION, run_path("2026-02-20"), era="2025-12-10")
    assert (by_date.era, by_date.source) == ("file_instruction", "explicit")
    assert "2025-12-10" in by_date.evidence


@pytest.mark.parametrize("era", ["yesterday", "2025-13-01", "clip"])
def test_invalid_era_is_quoted(era):
    with pytest.raises(ProfileError, match=repr(era)):
        decide_era(REGRESSION, None, era=era)


def test_unknown_era_is_the_newest_with_a_warning():
    decision = decide_era(REGRESSION, "/somewhere/last.ckpt")
    assert decision.era == "clip_normalized" and decision.source == "default (newest era)"
    assert len(decision.warnings) == 1 and "era=" in decision.warnings[0]


@pytest.mark.parametrize("day", ["2026-02-02", "2026-02-03"])
def test_action_dependent_suffix_days_warn(day):
    from_folder = decide_era(REGRESSION, run_path(day))
    explicit = decide_era(REGRESSION, None, era=day)
    for decision in (from_folder, explicit):
        assert any("action-dependent suffix" in w and "cannot be reproduced" in w for w in decision.warnings)
    assert not decide_era(REGRESSION, run_path("2026-02-04")).warnings
    assert not decide_era(REGRESSION, run_path("2026-02-01")).warnings


def test_a_run_with_a_recorded_recipe_needs_no_era():
    config = REGRESSION.replace(recipe=TrainingRecipe(token_layout="upstream"))
    decision = decide_era(config, "/somewhere/last.ckpt")
    assert (decision.era, decision.source, decision.warnings) == (None, "recipe", ())


# ------------------------------------------------------------------------------ as_trained
@pytest.mark.parametrize(
    "day, normalization, instruction",
    [
        ("2025-11-20", "none", "constant"),
        ("2025-12-17", "none", "verbatim"),
        ("2026-02-20", "clip", "verbatim"),
    ],
)
def test_as_trained_is_what_the_era_saw(day, normalization, instruction):
    res = resolve(REGRESSION, "as_trained", checkpoint=run_path(day))
    s = res.settings
    assert (s.profile, s.transport, s.resize, s.channel_order) == ("as_trained", "none", "bilinear", "bgr")
    assert (s.normalization, s.instruction) == (normalization, instruction)
    assert s.constant_instruction == "Navigate to the target location"
    assert (s.text_padding, s.token_layout, s.decode) == ("none", "fork", "regression")
    assert (s.first_action_zero, s.action_clip) == (False, 1.15)
    assert (s.execute_steps, s.temporal_ensemble, s.gain) == (1, False, 1.0)
    assert s.era == res.era.era and s.forward_path == "fallback"
    assert len(res.warnings) == 1 and "forward_path='fallback'" in res.warnings[0]


def test_as_trained_follows_a_recorded_recipe():
    recipe = TrainingRecipe(
        normalization="none", channel_order="bgr", token_layout="upstream", resize="bicubic"
    )
    s = resolve(REGRESSION.replace(recipe=recipe), "as_trained").settings
    assert (s.normalization, s.channel_order, s.token_layout, s.resize, s.era) == (
        "none",
        "bgr",
        "upstream",
        "bicubic",
        None,
    )


def test_as_trained_decodes_a_classifier_by_its_classes():
    assert (
        resolve(CLASSIFIER, "as_trained", checkpoint=run_path("2026-02-20")).settings.decode
        == "classification"
    )
    assert resolve(LSTM, "as_trained", checkpoint=run_path("2025-11-20")).settings.decode == "regression"


def test_default_profile_is_as_trained():
    assert resolve(REGRESSION, checkpoint=run_path("2026-02-20")).settings.profile == "as_trained"


# ------------------------------------------------------------------------------ as_deployed
@pytest.mark.parametrize("day", ["2025-11-20", "2026-02-20"])
def test_as_deployed_is_the_teams_server_and_client_whatever_the_era(day):
    s = resolve(REGRESSION, "as_deployed", checkpoint=run_path(day)).settings
    assert (s.profile, s.transport, s.resize, s.normalization, s.channel_order) == (
        "as_deployed",
        "jpeg",
        "bicubic",
        "clip",
        "rgb",
    )
    assert (s.instruction, s.text_padding, s.token_layout, s.decode) == (
        "verbatim",
        "max_length",
        "fork",
        "regression",
    )
    assert (s.first_action_zero, s.action_clip) == (True, 1.5)


def test_as_deployed_refuses_lstm_decoder_with_the_reason():
    with pytest.raises(ProfileError) as info:
        resolve(LSTM, "as_deployed", checkpoint=run_path("2025-11-20"))
    message = str(info.value)
    assert "LSTMDecoder" in message and "[0, 0]" in message and "as_trained" in message


def test_as_deployed_classifier_decodes_by_the_servers_inference_mode(caplog):
    assert (
        resolve(CLASSIFIER, "as_deployed", checkpoint=run_path("2026-02-20")).settings.decode
        == "classification"
    )
    silent = CLASSIFIER.replace(inference_mode=None)
    with caplog.at_level(logging.WARNING, logger="policies.vla.profiles"):
        res = resolve(silent, "as_deployed", checkpoint=run_path("2026-02-20"))
    assert res.settings.decode == "regression"
    assert any("inference_mode" in w for w in res.warnings)
    assert any("decoded as a regression" in w for w in res.warnings)
    assert any("inference_mode" in r.message for r in caplog.records)
    fixed = resolve(
        silent, "as_deployed", checkpoint=run_path("2026-02-20"), overrides={"decode": "classification"}
    )
    assert fixed.settings.decode == "classification"


# ------------------------------------------------------------------------------ overrides
def test_every_setting_can_be_overridden_and_is_recorded():
    overrides = {
        "normalization": "clip",
        "channel_order": "bgr",
        "instruction": "constant",
        "resize": "bicubic",
        "gain": 2.0,
        "execute_steps": 3,
        "era": "file_instruction",
    }
    res = resolve(REGRESSION, "as_trained", checkpoint=run_path("2026-02-20"), overrides=overrides)
    for key, value in overrides.items():
        assert getattr(res.settings, key) == value, key
    assert res.overrides == overrides and res.era.source == "explicit"
    d = res.to_dict()
    assert (
        d["overrides"] == overrides and d["settings"]["gain"] == 2.0 and d["era"]["era"] == "file_instruction"
    )


def test_overridden_era_changes_the_profile():
    res = resolve(
        REGRESSION, "as_trained", checkpoint=run_path("2026-02-20"), overrides={"era": "2025-11-20"}
    )
    assert (res.settings.normalization, res.settings.instruction, res.settings.era) == (
        "none",
        "constant",
        "constant_instruction",
    )


def test_unknown_override_lists_the_valid_names():
    with pytest.raises(TypeError) as info:
        resolve(REGRESSION, "as_trained", overrides={"gian": 2.0})
    message = str(info.value)
    assert "gian" in message and "'gain'" in message and "'transport'" in message
    with pytest.raises(TypeError, match="profile"):
        resolve(REGRESSION, "as_trained", overrides={"profile": "as_deployed"})


def test_unknown_profile_is_quoted():
    with pytest.raises(ProfileError, match="'as_built'"):
        resolve(REGRESSION, "as_built")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"transport": "http"}, "'http'"),
        ({"resize": "nearest"}, "'nearest'"),
        ({"normalization": "zscore"}, "'zscore'"),
        ({"channel_order": "grb"}, "'grb'"),
        ({"instruction": "random"}, "'random'"),
        ({"text_padding": "longest"}, "'longest'"),
        ({"token_layout": "llava"}, "'llava'"),
        ({"decode": "argmax"}, "'argmax'"),
        ({"dtype": "int8"}, "'int8'"),
        ({"abs_action_side": "left"}, "'left'"),
        ({"prompt_template": "no slot"}, "'no slot'"),
        ({"action_clip": 0.0}, "action_clip.*0.0"),
        ({"action_clip": float("inf")}, "action_clip.*inf"),
        ({"gain": -1.0}, "gain.*-1.0"),
        ({"execute_steps": 0}, "execute_steps.*0"),
        ({"execute_steps": 1.5}, "execute_steps.*1.5"),
        ({"temporal_ensemble": True, "execute_steps": 2}, "temporal_ensemble"),
        ({"ensemble_decay": -0.5}, "ensemble_decay.*-0.5"),
        ({"device": "tpu"}, "'tpu'"),
        ({"dtype": "float16"}, "float16"),
        ({"cpu_threads": 0}, "cpu_threads.*0"),
        ({"era": "yesterday"}, "'yesterday'"),
        ({"decode": "classification"}, "classification head"),
    ],
)
def test_invalid_values_are_profile_errors_quoting_them(overrides, match):
    with pytest.raises(ProfileError, match=match):
        resolve(REGRESSION, "as_trained", checkpoint=run_path("2026-02-20"), overrides=overrides)


def test_float16_is_fine_on_cuda_settings():
    s = InferenceSettings(device="cuda:0", dtype="float16")
    assert s.dtype == "float16"


# ------------------------------------------------------------------------------ abs_action
@pytest.mark.parametrize("profile", ["as_trained", "as_deployed"])
def test_abs_action_refuses_without_a_side_rule_and_says_why(profile):
    config = REGRESSION.replace(abs_action=True)
    with pytest.raises(ProfileError) as info:
        resolve(config, profile, checkpoint=run_path("2026-02-20"))
    assert "abs_action" in str(info.value) and "abs_action_side='instruction'" in str(info.value)
    res = resolve(
        config, profile, checkpoint=run_path("2026-02-20"), overrides={"abs_action_side": "instruction"}
    )
    assert res.settings.abs_action_side == "instruction"


# ------------------------------------------------------------------------------ records
def test_warnings_are_logged_and_kept(caplog):
    with caplog.at_level(logging.WARNING, logger="policies.vla.profiles"):
        res = resolve(REGRESSION, "as_trained", checkpoint="/tmp/last.ckpt")
    assert res.warnings and res.warnings[: len(res.era.warnings)] == res.era.warnings
    assert "forward_path" in res.warnings[-1]  # the forward path is not recorded either
    assert [r.message for r in caplog.records if r.name == "policies.vla.profiles"] == list(res.warnings)
    d = res.to_dict()
    assert d["profile"] == "as_trained" and d["warnings"] == list(res.warnings)
    assert d["era"]["source"] == "default (newest era)"


def test_settings_are_frozen_and_list_their_fields():
    s = InferenceSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gain = 2.0  # type: ignore[misc]
    names = InferenceSettings.field_names()
    assert {"transport", "resize", "normalization", "era", "merge_lora", "abs_action_side"} <= set(names)
    assert set(s.to_dict()) == set(names)


# ------------------------------------------------------------------------------ the forward path
def test_forward_path_sets_the_token_layout_and_the_other_way_round():
    patched = resolve(
        REGRESSION, "as_trained", checkpoint=run_path("2025-12-17"), overrides={"forward_path": "patched"}
    )
    assert (patched.settings.forward_path, patched.settings.token_layout) == ("patched", "upstream")
    assert not any("forward path" in w for w in patched.warnings)  # given: no guess to warn about
    by_layout = resolve(
        REGRESSION, "as_trained", checkpoint=run_path("2025-12-17"), overrides={"token_layout": "upstream"}
    )
    assert by_layout.settings.forward_path == "patched"
    deployed = resolve(
        REGRESSION, "as_deployed", checkpoint=run_path("2025-12-17"), overrides={"forward_path": "patched"}
    )
    assert (deployed.settings.token_layout, deployed.settings.channel_order) == ("upstream", "rgb")


def test_forward_path_and_token_layout_that_disagree_fail_with_the_fix():
    with pytest.raises(ProfileError, match="give one"):
        resolve(REGRESSION, "as_trained", overrides={"forward_path": "patched", "token_layout": "fork"})
    with pytest.raises(ProfileError, match="forward_path must be one of"):
        resolve(REGRESSION, "as_trained", overrides={"forward_path": "stock"})
    with pytest.raises(ProfileError, match="lays out"):
        InferenceSettings(forward_path="patched", token_layout="fork")


def test_a_recorded_recipe_decides_the_forward_path_without_a_warning():
    own = REGRESSION.replace(recipe=TrainingRecipe(token_layout="upstream", channel_order="rgb"))
    res = resolve(own, "as_trained")
    assert (res.settings.forward_path, res.settings.channel_order, res.warnings) == ("patched", "rgb", ())
    # the team's server is another machine: its forward path is not recorded
    deployed = resolve(own, "as_deployed")
    assert deployed.settings.forward_path == "fallback" and "inference server" in deployed.warnings[-1]
