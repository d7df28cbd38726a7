"""Before any episode: the scene judged by the env, every server checked, every other policy built once.

:func:`check_scene` builds one env with the run's scene settings, so the simulator's own rules
(image size, lens distortion, renderer) refuse bad settings before anything is written;
:func:`check_servers` pre-flights every server URL; :func:`probe_policies` builds each other
policy once in the main process (a broken checkpoint is reported, the others still run) and
reads its ``settings()``, recorded in summary.json.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from eval.config import RolloutConfig, UsageError
from eval.results.records import to_jsonable
from eval.runner.policy_factory import PolicySpec, build_policy
from eval.runner.workers import make_env
from eval.select import SelectionError
from policies.messages import one_line

if TYPE_CHECKING:
    import gymnasium as gym

logger = logging.getLogger("eval.rollout")


@dataclass
class PolicyEntry:
    """A policy of this evaluation: its spec and what loading (or checking) it reported."""

    spec: PolicySpec
    status: str = "ok"
    reason: str | None = None
    settings: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "status": self.status,
            "reason": self.reason,
            "settings": self.settings,
        }


def check_scene(config: RolloutConfig) -> gym.Env:
    """The env of the first cell, built with the run's scene settings (the caller closes it).

    Raises:
        UsageError: the env refuses a scene setting (its own one-line message).
    """
    try:
        return make_env(config.cells[0], config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UsageError(f"the simulator refuses the scene settings: {one_line(exc)}") from exc


def check_servers(entries: list[PolicyEntry]) -> None:
    """Pre-flight every server URL (``/health``, then an authenticated ``/reset``), nothing started.

    Raises:
        UsageError: the first server that fails (one line: unreachable, model not loaded, wrong key).
    """
    from policies.http.client import PreflightError, supports_sessions

    for entry in entries:
        if entry.spec.kind != "http":
            continue
        try:
            policy = build_policy(entry.spec, None, 0)
        except ValueError as exc:
            raise UsageError(f"{entry.spec.id}: {exc}") from exc
        try:
            policy.check()
            if "sessions" not in entry.spec.options and supports_sessions(policy.health):
                entry.spec = replace(entry.spec, options={**entry.spec.options, "sessions": True})
                policy.sessions = True  # episodes in parallel, one session each
            entry.settings = to_jsonable(policy.settings())
        except PreflightError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            policy.close()
        logger.info("server %s: %s", entry.spec.id, json.dumps(policy.health))


def probe_policies(entries: list[PolicyEntry], env: gym.Env, seed: int) -> list[PolicyEntry]:
    """Build every non-server policy once (``env`` serves baselines and factories); the loaded entries.

    A policy that cannot be built is marked ``load_failed`` with the reason; the others still run.

    Raises:
        SelectionError: no policy could be loaded (one line).
    """
    for entry in entries:
        if entry.spec.kind != "http":
            _probe(entry, env, seed)  # loads and drops: workers load their own copy
    ok = [e for e in entries if e.status == "ok"]
    if not ok:
        failed = entries[0]
        raise SelectionError(
            f"could not load {failed.spec.path or failed.spec.id}: {failed.reason}; "
            f"pass another checkpoint (--ckpt PATH) or retrain"
            if len(entries) == 1
            else f"none of the {len(entries)} policies could be loaded ({failed.reason}); see the log above"
        )
    return ok


def _probe(entry: PolicyEntry, env: gym.Env, seed: int) -> None:
    spec = entry.spec
    try:
        policy = build_policy(spec, env if spec.kind in ("baseline", "factory") else None, seed)
    except Exception as exc:  # noqa: BLE001 - CheckpointError and anything else: report it
        entry.status, entry.reason = "load_failed", one_line(exc)
        logger.error("%s: could not load %s: %s", spec.id, spec.path or "", entry.reason)
        return
    try:
        entry.settings = to_jsonable(policy.settings())
    except Exception as exc:  # noqa: BLE001
        entry.settings = {"error": f"settings() raised {one_line(exc)}"}


__all__ = ["PolicyEntry", "check_scene", "check_servers", "probe_policies"]
