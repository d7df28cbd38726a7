"""The plan of an evaluation: which policies (specs) meet which seeded episodes.

:func:`plan_specs` turns the checkpoint selection (:mod:`eval.select`) and the config's other
policy names into policy specs: each selected checkpoint under each profile (:func:`checkpoint_specs`), then the baselines, ``module:factory``
targets and server URLs (:func:`other_spec`); :mod:`eval.runner.policy_factory` builds a policy
from a spec wherever an episode runs. :func:`episode_seed` and
:func:`plan_episodes` give every policy the same (cell, seed) list, so comparisons are paired and
results do not depend on who runs the episodes (one process, a pool, a batch, a cluster); the
config's instruction probes (:func:`eval.probes.probe_specs`) run that list again per policy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container
from pathlib import Path
from typing import Any

from eval.config import HTTP_OPTION_NAMES, RolloutConfig, UsageError
from eval.probes import probe_specs
from eval.results.video import video_name
from eval.runner.episode import EpisodeTask
from eval.runner.policy_factory import PolicySpec
from eval.select import CheckpointChoice, Selection
from policies.http.protocol import check_url, is_http_url, server_identity
from policies.vla.profiles import DEFAULT_PROFILE

EpisodeKey = tuple[str, str, int]
"""(policy id, cell name, seed): one episode of an evaluation."""


def episode_seed(base_seed: int, cell: str, index: int) -> int:
    """Seed of episode ``index`` of ``cell``: a hash of (base seed, cell, index), in [0, 2**31).

    It does not depend on the policy, so every policy meets the same episodes (paired comparison).
    """
    digest = hashlib.sha256(f"mvla-eval/{int(base_seed)}/{cell}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def checkpoint_specs(
    choice: CheckpointChoice, profiles: tuple[str, ...], options: dict[str, Any]
) -> list[PolicySpec]:
    """One spec per profile for a selected checkpoint; ids of profiles other than the default end ``@<profile>``."""
    return [
        PolicySpec(
            kind="checkpoint",
            id=choice.policy_id + ("" if profile == DEFAULT_PROFILE else f"@{profile}"),
            path=str(choice.path),
            profile=profile,
            options=dict(options),
            val_loss=choice.val_loss,
            val_loss_source=choice.val_loss_source,
            epoch=choice.epoch,
            role=choice.role,
        )
        for profile in profiles
    ]


def other_spec(name: str, http_options: dict[str, Any] | None = None) -> PolicySpec:
    """Spec of a non-checkpoint policy: a server URL, a ``module:factory`` or a baseline name.

    Raises:
        UsageError: a malformed URL or an unknown baseline (one line).
    """
    if is_http_url(name):
        try:
            url = check_url(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        return PolicySpec(kind="http", id=url, name=url, options=dict(http_options or {}))
    if ":" in name:
        return PolicySpec(kind="factory", id=re.sub(r"[^A-Za-z0-9._-]+", "-", name.split(":")[-1]), name=name)
    from policies.scripted.baselines import BASELINE_NAMES

    if name not in BASELINE_NAMES:
        raise UsageError(
            f"unknown baseline {name!r}; choose from {','.join(BASELINE_NAMES)} "
            "(or give module:factory, or a server URL http://HOST:PORT)"
        )
    return PolicySpec(kind="baseline", id=name, name=name)


def check_one_lane_per_server(specs: list[PolicySpec]) -> None:
    """Refuse two server URLs that reach the same server (``127.0.0.1`` and ``localhost``, a host name
    and its address): one server holds one history, so their episodes would run at once and corrupt
    each other's, and evaluating one server twice under two names measures nothing new. Refused, not
    serialised, because two ids for one policy would also double it in the tables.

    Raises:
        UsageError: the first two URLs of one server (one line).
    """
    seen: dict[tuple[str, int, str], str] = {}
    for spec in specs:
        if spec.kind != "http" or spec.url is None:
            continue
        identity = server_identity(spec.url) or frozenset()
        for address in sorted(identity):
            other = seen.get(address)
            if other is not None and other != spec.url:
                where = "this machine" if address[0] == "local" else address[0]
                raise UsageError(
                    f"{other} and {spec.url} are the same server ({where}, port {address[1]}): one server "
                    "holds one history, so give its URL once"
                )
        seen.update(dict.fromkeys(identity, spec.url))


def plan_specs(config: RolloutConfig, selection: Selection | None) -> list[PolicySpec]:
    """The policies to evaluate: each selected checkpoint under each profile, then the others.

    Raises:
        UsageError: a policy listed twice, nothing to evaluate, or checkpoint options without a
            checkpoint (one line).
    """
    specs: list[PolicySpec] = []
    for choice in selection.choices if selection else []:
        specs += checkpoint_specs(choice, config.profiles, config.options.checkpoint)
    for name in config.baselines:
        spec = other_spec(name, config.options.http)
        if spec.id in {s.id for s in specs}:
            raise UsageError(f"policy id {spec.id!r} appears twice; list each policy once")
        specs.append(spec)
    if not specs:
        raise UsageError("nothing to evaluate: give --ckpt (e.g. top3), --policy NAME or --baselines NAMES")
    check_one_lane_per_server(specs)
    unused = sorted(config.options.checkpoint)
    if unused and not any(s.kind == "checkpoint" for s in specs):
        raise UsageError(
            f"--policy-option {','.join(unused)}: not a server option and no checkpoint is evaluated; "
            f"server options are {', '.join(HTTP_OPTION_NAMES)}"
        )
    return specs


def plan_episodes(
    specs: list[PolicySpec],
    config: RolloutConfig,
    done: Container[EpisodeKey],
    video_root: Path,
) -> tuple[list[EpisodeTask], set[EpisodeKey]]:
    """The episode tasks still to run, and the keys of every planned episode (done or not).

    Every policy gets the same (cell, seed) list, and again once per instruction probe of
    ``config.probes`` (a probe spec per policy, :func:`eval.probes.probe_specs`); the first
    ``config.videos`` episodes of each cell are recorded (not those of instruction probes).
    """
    tasks: list[EpisodeTask] = []
    planned: set[EpisodeKey] = set()
    for spec in [*specs, *probe_specs(specs, config.probes)]:  # same episodes, instruction replaced
        for cell in config.cells:
            for index in range(config.episodes):
                seed = episode_seed(config.seed, cell.name, index)
                key = (spec.id, cell.name, seed)
                planned.add(key)
                if key in done:
                    continue
                video = None
                if index < config.videos and spec.probe is None:  # probe episodes are not filmed
                    video = str(video_root / video_name(spec.id, cell.name, seed, "pending"))
                tasks.append(EpisodeTask(spec, cell, index, seed, video))
    return tasks, planned


__all__ = [
    "EpisodeKey",
    "check_one_lane_per_server",
    "checkpoint_specs",
    "episode_seed",
    "other_spec",
    "plan_episodes",
    "plan_specs",
]
