"""Policy options given on a command line: ``--policy-option KEY=VALUE``, read into a dict.

The one parser behind ``python -m eval.rollout --policy-option`` and ``python -m
policies.http.serve --policy-option``; each CLI turns its ``ValueError`` into its own one-line
usage error. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def parse_key_values(items: Iterable[str], flag: str = "--policy-option") -> dict[str, Any]:
    """``["device=cuda", "gain=1.5"]`` -> ``{"device": "cuda", "gain": 1.5}``.

    Values are JSON when they parse as JSON (numbers, true/false, null), else strings; keys are
    stripped of spaces; a later item overrides an earlier one with the same key.

    Raises:
        ValueError: an item without ``=`` or without a key (the message names the flag and the item).
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r}: give KEY=VALUE, e.g. device=cuda")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options


__all__ = ["parse_key_values"]
