"""Instruction probes: does a policy follow its instruction? Plans, the probed policy, the verdict.

Every probed policy runs its episodes a second time per probe, on the same (cell, seed) pairs, with
the instruction replaced (the scene is unchanged):

* ``swap``: the other side's instruction ("... on the right" in a left scene);
* ``neutral``: the instruction with its side word replaced by a word that names no side, chosen so
  the prompt has the same number of tokens under the checkpoint's tokenizer (a model that sees only
  the prompt's length, as the fork's fallback forward path, cannot tell it apart);
* ``unrelated``: :data:`UNRELATED_INSTRUCTION`, text with nothing to do with the task.

A probe episode is the policy's own spec with ``probe`` set (id ``<policy>~<probe>``): it goes into
the same ``episodes.jsonl`` with a ``probe`` field, resumes like the rest, and is left out of the
ordinary tables. Per policy and probe (:func:`summarize_probes`):

* **changed steps**: over every paired (original, probe) episode, the steps whose action differs,
  over all steps. Step ``t`` of both episodes is compared (the recorded, 4-decimal actions; a
  difference above :data:`ACTION_TOLERANCE` in either component counts); the steps one episode ran
  beyond the other's end count as changed. Once one action differs the scenes drift apart, so later
  steps differ by feedback too: a model blind to its instruction changes none;
* **success** under the probe, with its Wilson interval and an exact McNemar test against the
  original episodes;
* for ``swap``, **passes the named side**: the share of episodes that pass the box on the side the
  swapped instruction names, beside the share of the original episodes that passed that side.

Verdict (:func:`verdict`): a policy **follows its instruction** when, under ``swap``, it passes on
the side the swapped instruction names significantly more often than it did under its own
instruction (exact McNemar on the paired episodes, p < :data:`ALPHA`); otherwise it is
**instruction-blind** (with identical actions under swap when no step changed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mvla_sim.facts import SIDES, mirror_instruction, side_of_instruction

PROBES: tuple[str, ...] = ("swap", "neutral", "unrelated")
DEFAULT_PROBES: tuple[str, ...] = PROBES
PROBE_SEPARATOR = "~"
"""A probe episode's policy id is ``<policy id>~<probe>``."""
UNRELATED_INSTRUCTION = "Describe the weather outside and name a colour you like"
"""The ``unrelated`` probe's text: no side, no obstacle, no bottle."""
NEUTRAL_WORDS: tuple[str, ...] = (
    "shelf", "floor", "table", "wall", "counter", "corridor", "desk", "carpet", "chair", "tray", "ground",
    "way", "spot", "mark", "tile", "stand", "box", "door", "window", "corner",
)  # fmt: skip
"""Candidates that replace the side word in the ``neutral`` probe (the first with the same token count)."""
ACTION_TOLERANCE = 1e-4
"""Recorded actions (rounded to 4 decimals) differing by more than this count as a changed step."""
ALPHA = 0.05


class ProbeError(ValueError):
    """A bad ``--probes`` value (the message names it and the choices)."""


def parse_probes(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"swap,neutral"`` -> ``("swap", "neutral")``; ``"none"`` or empty -> ``()``."""
    items = text.split(",") if isinstance(text, str) else list(text or [])
    names = [t.strip() for t in items if t.strip()]
    if names in ([], ["none"]):
        return ()
    bad = [n for n in names if n not in PROBES]
    if bad or len(set(names)) != len(names):
        raise ProbeError(f"--probes {','.join(names)}: choose among {','.join(PROBES)} (each once), or none")
    return tuple(names)


def probe_id(policy_id: str, probe: str) -> str:
    return f"{policy_id}{PROBE_SEPARATOR}{probe}"


def probe_specs(specs: Sequence[Any], probes: Sequence[str]) -> list[Any]:
    """One spec per (policy spec, probe): the same policy, id ``<id>~<probe>``, ``probe`` set."""
    from dataclasses import replace

    return [replace(spec, id=probe_id(spec.id, probe), probe=probe) for spec in specs for probe in probes]


def _token_count(text: str, tokenizer: Any, template: str) -> int:
    from policies.vla.processors import prompt_text

    return len(tokenizer(prompt_text(text, template), add_special_tokens=False)["input_ids"])


def neutral_instruction(instruction: str, tokenizer: Any = None, template: str = "{instruction}") -> str:
    """``instruction`` with its side word replaced by a word naming no side, of the same token
    count under ``tokenizer``: the first of :data:`NEUTRAL_WORDS` that fits, else the first of the
    instruction's own other words (a tokenizer with a small vocabulary knows those); without a
    tokenizer the first neutral word.

    Raises:
        ProbeError: no candidate keeps the token count under this tokenizer.
    """
    side = side_of_instruction(instruction)
    own = [
        w for w in dict.fromkeys(instruction.split()) if w.lower() not in SIDES
    ]  # a small vocabulary's words
    candidates = [instruction.replace(side, word) for word in (*NEUTRAL_WORDS, *own)]
    if tokenizer is None:
        return candidates[0]
    target = _token_count(instruction, tokenizer, template)
    for text in candidates:
        if _token_count(text, tokenizer, template) == target:
            return text
    raise ProbeError(f"no neutral word keeps the {target} tokens of {instruction!r} under this tokenizer")


def probe_instruction(
    probe: str, instruction: str, tokenizer: Any = None, template: str = "{instruction}"
) -> str:
    """The instruction a probe gives instead of the env's ``instruction``."""
    if probe == "swap":
        return mirror_instruction(instruction)
    if probe == "neutral":
        return neutral_instruction(instruction, tokenizer, template)
    if probe == "unrelated":
        return UNRELATED_INSTRUCTION
    raise ProbeError(f"unknown probe {probe!r}; choose among {', '.join(PROBES)}")


@dataclass(eq=False)
class ProbedEpisode:
    """An episode of a :class:`ProbedPolicy` in the batched contract: the policy's own, and the
    instruction it was given."""

    inner: Any
    given_instruction: str


class ProbedPolicy:
    """A policy given the probe's instruction instead of the env's (in ``reset`` and every ``obs``).

    It meets the batched contract too (:class:`policies.base.BatchPolicy`) when its policy does.
    """

    def __init__(self, policy: Any, probe: str) -> None:
        if probe not in PROBES:
            raise ProbeError(f"unknown probe {probe!r}; choose among {', '.join(PROBES)}")
        self.policy, self.probe = policy, probe
        self.given_instruction: str | None = None

    def given(self, instruction: str) -> str:
        """The probe's instruction for an episode whose env says ``instruction``."""
        model = getattr(self.policy, "model", None)
        tokenizer = getattr(model, "tokenizer", None)
        template = getattr(getattr(self.policy, "options", None), "prompt_template", "{instruction}")
        return probe_instruction(self.probe, instruction, tokenizer, template)

    def reset(self, instruction: str) -> None:
        self.given_instruction = self.given(instruction)
        self.policy.reset(self.given_instruction)

    def act(self, obs: dict[str, Any]) -> Any:
        return self.policy.act({**obs, "instruction": self.given_instruction})

    def start_episode(self, instruction: str, *, seed: int = 0, env: Any = None) -> ProbedEpisode:
        given = self.given(instruction)
        return ProbedEpisode(self.policy.start_episode(given, seed=seed, env=env), given)

    def act_batch(self, episodes: Sequence[ProbedEpisode], observations: Sequence[dict[str, Any]]) -> Any:
        return self.policy.act_batch(
            [e.inner for e in episodes],
            [{**o, "instruction": e.given_instruction} for e, o in zip(episodes, observations, strict=True)],
        )

    def __getattr__(self, name: str) -> Any:  # settings(), step_timings(), close(), ...
        return getattr(self.policy, name)


# ------------------------------------------------------------------------------- analysis
def changed_steps(original: Sequence[Sequence[float]], probed: Sequence[Sequence[float]]) -> tuple[int, int]:
    """(changed steps, compared steps) of two step-aligned action lists (see the module docstring)."""
    n = min(len(original), len(probed))
    total = max(len(original), len(probed))
    if n == 0:
        return total, total
    diff = np.abs(np.asarray(original[:n], dtype=float) - np.asarray(probed[:n], dtype=float)).max(axis=1)
    return int((diff > ACTION_TOLERANCE).sum()) + (total - n), total


def _other(side: str) -> str:
    return next(s for s in SIDES if s != side)


def _probe_block(pairs: list[tuple[dict[str, Any], dict[str, Any]]], probe: str) -> dict[str, Any]:
    from eval.results.stats import mcnemar_exact, wilson_interval

    changed = total = identical = 0
    for orig, prob in pairs:
        c, t = changed_steps(orig["actions"], prob["actions"])
        changed, total, identical = changed + c, total + t, identical + (c == 0)
    success = [bool(p["success"]) for _, p in pairs]
    base = [bool(o["success"]) for o, _ in pairs]
    n, k = len(pairs), sum(success)
    ci = wilson_interval(k, n)
    block: dict[str, Any] = {
        "probe": probe,
        "n": n,
        "changed_steps": changed,
        "steps": total,
        "changed_step_fraction": changed / total if total else None,
        "identical_episodes": identical,
        "success": k,
        "success_rate": k / n if n else None,
        "ci95": list(ci) if ci else None,
        "original_success_rate": sum(base) / n if n else None,
        "vs_original": mcnemar_exact(base, success),
    }
    if probe == "swap":
        named = [p["side_passed"] == _other(p["side"]) for _, p in pairs]
        before = [o["side_passed"] == _other(o["side"]) for o, _ in pairs]
        test = mcnemar_exact(named, before)
        block["passes_named_side"] = sum(named)
        block["passes_named_side_rate"] = sum(named) / n if n else None
        block["original_passes_that_side_rate"] = sum(before) / n if n else None
        block["named_side_test"] = test
    return block


def verdict(blocks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``follows its instruction`` or ``instruction-blind`` from the swap probe, with the numbers."""
    swap = blocks.get("swap")
    rule = (
        "follows its instruction when, with the other side's instruction (swap), it passes on the named side "
        f"significantly more often than under its own instruction (exact McNemar on paired episodes, p < {ALPHA})"
    )
    if not swap or not swap["n"]:
        return {"verdict": "not probed", "rule": rule, "evidence": "no swap episodes"}
    test, rate, before = (
        swap["named_side_test"],
        swap["passes_named_side_rate"],
        swap["original_passes_that_side_rate"],
    )
    follows = test["a_only"] > test["b_only"] and test["pvalue"] < ALPHA
    evidence = (
        f"under swap it passes the named side in {swap['passes_named_side']}/{swap['n']} ({100 * rate:.0f} %) vs "
        f"{100 * before:.0f} % with its own instruction (McNemar p = {test['pvalue']:.2g}); "
        f"{100 * (swap['changed_step_fraction'] or 0):.0f} % of steps changed"
    )
    if not follows and swap["changed_steps"] == 0:
        evidence += ": identical actions under swap"
    return {
        "verdict": "follows its instruction" if follows else "instruction-blind",
        "rule": rule,
        "evidence": evidence,
    }


def summarize_probes(records: Sequence[dict[str, Any]], probes: Sequence[str]) -> dict[str, Any]:
    """Per probed policy: each probe's block and the verdict. ``records`` holds originals and probes."""
    originals = {(r["policy_id"], r["cell"], r["seed"]): r for r in records if not r.get("probe")}
    pairs: dict[str, dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in records:
        if r.get("probe"):
            base = r["policy_id"].rsplit(PROBE_SEPARATOR, 1)[0]
            orig = originals.get((base, r["cell"], r["seed"]))
            if orig is not None:
                pairs[base][r["probe"]].append((orig, r))
    policies = []
    for base, by_probe in pairs.items():
        blocks = {p: _probe_block(by_probe[p], p) for p in probes if by_probe.get(p)}
        policies.append({"policy_id": base, "probes": blocks, **verdict(blocks)})
    return {"probes": list(probes), "action_tolerance": ACTION_TOLERANCE, "policies": policies}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def probe_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the probe table (report and terminal)."""
    header = ["policy", "probe", "n", "changed steps", "identical episodes", "success (original)", "p vs original",
              "passes named side (original)", "verdict"]  # fmt: skip
    rows = []
    for p in (summary.get("instruction_probes") or {}).get("policies", []):
        for i, (name, b) in enumerate(p["probes"].items()):
            named = ""
            if name == "swap":
                named = f"{_pct(b['passes_named_side_rate'])} ({_pct(b['original_passes_that_side_rate'])})"
            rows.append(
                [p["policy_id"] if i == 0 else "", name, b["n"], _pct(b["changed_step_fraction"]),
                 f"{b['identical_episodes']}/{b['n']}", f"{_pct(b['success_rate'])} ({_pct(b['original_success_rate'])})",
                 f"{b['vs_original']['pvalue']:.2g}", named, p["verdict"] if i == 0 else ""]
            )  # fmt: skip
    return header, rows


def format_probes(summary: dict[str, Any]) -> str:
    """The probe table and each verdict's evidence, for the terminal ('' without probes)."""
    header, rows = probe_rows(summary)
    if not rows:
        return ""
    table = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "-" * len(lines[0]))
    for p in summary["instruction_probes"]["policies"]:
        lines.append(f"{p['policy_id']}: {p['verdict']}: {p['evidence']}")
    return "\n".join(["instruction probes (same scenes and seeds, instruction replaced):", *lines])


__all__ = [
    "ACTION_TOLERANCE",
    "DEFAULT_PROBES",
    "PROBES",
    "PROBE_SEPARATOR",
    "ProbeError",
    "ProbedPolicy",
    "UNRELATED_INSTRUCTION",
    "changed_steps",
    "format_probes",
    "neutral_instruction",
    "parse_probes",
    "probe_id",
    "probe_instruction",
    "probe_specs",
    "probe_rows",
    "summarize_probes",
    "verdict",
]
