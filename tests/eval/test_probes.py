"""Instruction probes: the probe instructions, the changed-step measure, the verdict, and an
end-to-end rollout in the simulator where a fork fixture (fallback path) is instruction-blind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.config import RolloutConfig, UsageError
from eval.probes import (
    PROBES,
    UNRELATED_INSTRUCTION,
    ProbedPolicy,
    ProbeError,
    changed_steps,
    neutral_instruction,
    parse_probes,
    probe_instruction,
    summarize_probes,
)
from eval.results import records as rec
from eval.rollout import main
from mvla_sim.facts import INSTRUCTIONS

LEFT, RIGHT = INSTRUCTIONS["left"], INSTRUCTIONS["right"]
TEMPLATE = "<grounding>An image of a robot {instruction}"
FORK = Path(__file__).resolve().parents[1] / "fixtures" / "fork_reference"


def test_parse_probes_defaults_none_and_bad_values():
    assert parse_probes("swap,neutral,unrelated") == PROBES
    assert parse_probes("none") == parse_probes("") == ()
    with pytest.raises(ProbeError, match="choose among swap,neutral,unrelated"):
        parse_probes("swap,mirror")
    with pytest.raises(UsageError, match="--probes"):
        RolloutConfig(probes="swap,swap")


def test_probe_instructions_swap_neutral_and_unrelated():
    from policies.vla.tokenizer_tiny import load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    assert probe_instruction("swap", LEFT) == RIGHT and probe_instruction("swap", RIGHT) == LEFT
    neutral = neutral_instruction(LEFT, tok, TEMPLATE)
    assert "left" not in neutral and "right" not in neutral
    count = [
        len(tok(TEMPLATE.format(instruction=t), add_special_tokens=False)["input_ids"])
        for t in (LEFT, neutral)
    ]
    assert count[0] == count[1]  # a model that sees only the prompt's length cannot tell them apart
    assert probe_instruction("unrelated", RIGHT) == UNRELATED_INSTRUCTION
    assert not {"left", "right"} & set(UNRELATED_INSTRUCTION.lower().split())


def test_probed_policy_gives_the_probe_instruction_in_reset_and_every_obs():
    seen = []

    class Echo:
        def reset(self, instruction):
            seen.append(("reset", instruction))

        def act(self, obs):
            seen.append(("act", obs["instruction"]))
            return [0.0, 0.0]

        def settings(self):
            return {"policy": "echo"}

    probed = ProbedPolicy(Echo(), "swap")
    probed.reset(LEFT)
    probed.act({"image": None, "instruction": LEFT})
    assert seen == [("reset", RIGHT), ("act", RIGHT)] and probed.given_instruction == RIGHT
    assert probed.settings() == {"policy": "echo"}


def test_changed_steps_counts_differing_and_unmatched_steps():
    a = [[1.15, 0.0], [1.15, 0.0], [0.0, 1.15]]
    assert changed_steps(a, a) == (0, 3)
    assert changed_steps(a, [[1.15, 0.0], [1.15, 0.0001], [0.0, 1.15]]) == (0, 3)  # below the tolerance
    assert changed_steps(a, [[1.15, 0.0], [0.0, -1.15], [0.0, 1.15]]) == (1, 3)
    assert changed_steps(a, a[:1]) == (2, 3)  # the steps only one episode ran count as changed


def _record(policy, side, seed, passed, actions, probe=None):
    return {"policy_id": policy + (f"~{probe}" if probe else ""), "cell": f"{side}-day-medium", "seed": seed,
            "side": side, "side_passed": passed, "success": passed == side, "actions": actions, "probe": probe}  # fmt: skip


def test_verdicts_blind_with_identical_actions_and_following():
    acts = [[1.15, 0.0], [0.0, 1.15]]
    records = []
    for seed in range(6):
        side = "left" if seed % 2 else "right"
        other = "right" if side == "left" else "left"
        records += [
            _record("blind", side, seed, "left", acts),
            _record("blind", side, seed, "left", acts, "swap"),
        ]
        records += [
            _record("follows", side, seed, side, acts),
            _record("follows", side, seed, other, acts[::-1], "swap"),
        ]
    out = {p["policy_id"]: p for p in summarize_probes(records, ("swap",))["policies"]}
    assert (
        out["blind"]["verdict"] == "instruction-blind"
        and "identical actions under swap" in out["blind"]["evidence"]
    )
    assert out["blind"]["probes"]["swap"]["changed_step_fraction"] == 0.0
    assert out["follows"]["verdict"] == "follows its instruction"
    swap = out["follows"]["probes"]["swap"]
    assert swap["passes_named_side_rate"] == 1.0 and swap["original_passes_that_side_rate"] == 0.0
    assert swap["success_rate"] == 0.0 and swap["original_success_rate"] == 1.0


def test_fork_fixture_on_the_fallback_path_is_reported_instruction_blind(tmp_path, capsys):
    """End to end in the simulator: the fork's run (fallback forward path) acts identically under
    every probe of the same token count (swap, neutral) and is reported instruction-blind."""
    ckpt = FORK / (FORK / "mobile_vla_lstm" / "checkpoint.txt").read_text().strip()
    out = tmp_path / "res"
    argv = ["--ckpt", str(ckpt), "--probes", "swap,neutral", "--episodes", "1", "--sides", "left", "--lightings", "day",
            "--image-size", "64x36", "--out", str(out), "--videos", "0", "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "instruction probes" in text and "instruction-blind" in text
    summary = json.loads((out / "summary.json").read_text())
    assert [p["policy_id"] for p in summary["policies"]] == ["epoch00-val0.396"]  # probes are not policies
    (probed,) = summary["instruction_probes"]["policies"]
    assert probed["verdict"] == "instruction-blind" and "identical actions" in probed["evidence"]
    assert probed["probes"]["swap"]["changed_steps"] == probed["probes"]["neutral"]["changed_steps"] == 0
    records = rec.read_records(out / "episodes.jsonl")
    assert sorted(r["probe"] or "" for r in records) == ["", "neutral", "swap"]
    swap = next(r for r in records if r["probe"] == "swap")
    assert swap["instruction"] == LEFT and swap["probe_instruction"] == RIGHT
    assert "Does each policy follow its instruction?" in (out / "report.md").read_text()
