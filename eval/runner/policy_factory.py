"""Policy specs and the factory that turns a spec into a policy (in a worker or the main process).

A :class:`PolicySpec` is the serialisable description of one policy of an evaluation (made by
:mod:`eval.runner.plan`); :func:`build_policy` builds the policy from it in a worker or the main
process. Four kinds:

- ``checkpoint``: a VLA checkpoint under one profile,
  ``VLAPolicy.from_checkpoint(path, profile, **options)``;
- ``baseline``: ``policies.scripted.baselines.make_baseline(name, env, seed)``;
- ``factory``: a ``module:function`` of your own, called as ``function(env=env, seed=seed)``;
- ``http``: a server speaking the team's inference protocol, ``HTTPPolicy(url, **options)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from eval.config import HTTP_OPTION_NAMES, UsageError, redact
from eval.probes import ProbedPolicy
from policies.base import Policy
from policies.vla.profiles import DEFAULT_PROFILE

if TYPE_CHECKING:
    import gymnasium as gym

KINDS = ("checkpoint", "baseline", "factory", "http")


@dataclass(frozen=True)
class PolicySpec:
    """One policy of an evaluation.

    Attributes:
        kind: ``checkpoint``, ``baseline``, ``factory`` or ``http``.
        id: short, file-name-safe id used in records, tables and video names.
        name: baseline name, ``module:function`` target, or server URL (without any key).
        path: checkpoint file (``checkpoint`` only).
        profile: VLA profile (``checkpoint`` only): ``as_trained`` or ``as_deployed``.
        options: keyword settings passed to the policy (may hold the API key: see ``to_dict``).
        val_loss, val_loss_source, epoch, role: what checkpoint selection found (``eval.select``).
        probe: an instruction probe (``eval.probes``): the policy is given that probe's instruction.
    """

    kind: str
    id: str
    name: str | None = None
    path: str | None = None
    profile: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    val_loss: float | None = None
    val_loss_source: str | None = None
    epoch: int | None = None
    role: str | None = None
    probe: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown policy kind {self.kind!r}; choose from {list(KINDS)}")

    @property
    def url(self) -> str | None:
        return self.name if self.kind == "http" else None

    @property
    def lane(self) -> str | None:
        """Episodes of the same lane run one at a time (a server without sessions holds one history).

        One URL per server: :func:`eval.runner.plan.check_one_lane_per_server` refuses two URLs of one server.
        """
        return None if self.options.get("sessions") else self.url

    def to_dict(self) -> dict[str, Any]:
        """The spec as written to ``summary.json``: secrets (the API key) are never included."""
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "target": self.name if self.kind == "factory" else None,
            "url": self.url,
            "path": self.path,
            "profile": self.profile,
            "options": redact(self.options),
            "val_loss": self.val_loss,
            "val_loss_source": self.val_loss_source,
            "epoch": self.epoch,
            "role": self.role,
            "probe": self.probe,
        }


def import_target(target: str) -> Callable[..., Any]:
    """``"module:function"`` -> the function; :class:`UsageError` if it cannot be imported."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(f"{target!r}: expected 'module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import {target!r}: {exc}") from exc


def build_policy(spec: PolicySpec, env: gym.Env | None, seed: int) -> Policy:
    """Build the policy of ``spec`` (``env`` and ``seed`` serve baselines and factories); a probe
    spec's policy is given the probe's instruction (:class:`eval.probes.ProbedPolicy`)."""
    if spec.probe is not None:
        return ProbedPolicy(build_policy(replace(spec, probe=None), env, seed), spec.probe)
    if spec.kind == "baseline":
        from policies.scripted.baselines import make_baseline

        return make_baseline(spec.name, env, seed)
    if spec.kind == "checkpoint":
        from policies.vla.policy import VLAPolicy

        return VLAPolicy.from_checkpoint(spec.path, spec.profile or DEFAULT_PROFILE, **spec.options)
    if spec.kind == "factory":
        return import_target(spec.name)(env=env, seed=seed)
    from policies.http.client import HTTPPolicy

    unknown = sorted(set(spec.options) - set(HTTP_OPTION_NAMES))
    if unknown:
        raise UsageError(f"{spec.id}: unknown server option(s) {unknown}; use {', '.join(HTTP_OPTION_NAMES)}")
    return HTTPPolicy(spec.name, **spec.options)


__all__ = [
    "KINDS",
    "PolicySpec",
    "build_policy",
    "import_target",
]
