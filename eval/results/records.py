"""Per-episode records: the :class:`EpisodeRecord` schema, the append-only ``episodes.jsonl``
and atomic JSON writes.

One line per finished episode, flushed and fsynced as soon as it is written, so an interrupted
run loses nothing already finished. A rerun into the same folder reads the file back and skips
every episode whose key ``(policy_id, cell, seed)`` is already there. A line holds exactly the
fields of :class:`EpisodeRecord` (:data:`RECORD_FIELDS`); records are read back as plain dicts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mvla_sim.files import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class EpisodeRecord:
    """One finished episode (one line of ``episodes.jsonl``); lengths in m, times in s or ms.

    Timing dicts (``latency_ms``, ``round_trip_ms``, ``server_latency_ms``) hold ``mean``,
    ``p50``, ``p95``, ``p99``, ``max`` and the per-step values ``steps`` (ms).
    """

    policy_id: str
    policy_kind: str
    """``checkpoint``, ``baseline``, ``factory`` or ``http``."""
    checkpoint: str | None
    profile: str | None
    """The VLA profile of a checkpoint (``as_trained`` / ``as_deployed``); None for other policies."""
    url: str | None
    """The server of an ``http`` policy (never with a key)."""
    val_loss: float | None
    cell: str
    side: str
    lighting: str
    distance: str
    episode_index: int
    seed: int
    scene: str | None
    instruction: str
    success: bool
    collided: bool
    side_passed: str
    wrong_side: bool
    spl: float
    path_length: float | None
    distance_to_goal: float | None
    bottle_in_view: bool | None
    steps: int
    terminated: bool
    truncated: bool
    timed_out: bool
    """The horizon ran out before the goal (no collision, no wrong side)."""
    failure_reason: str | None
    """``<code>: <detail>``; codes: ``collision``, ``wrong_side``, ``box_not_passed``,
    ``goal_not_reached``, ``bottle_not_in_view``, ``policy_error``, ``non_finite_action``,
    ``invalid_action``, ``server_fault``."""
    latency_ms: dict[str, Any]
    """act() time per step, as the controller sees it."""
    round_trip_ms: dict[str, Any] | None
    """``http`` only: the client's request round trip per step."""
    server_latency_ms: dict[str, Any] | None
    """``http`` only: the server's own ``latency_ms`` per step."""
    time_s: dict[str, float]
    """Wall-clock split of the episode: ``act``, ``env_step``, ``render``, ``total``."""
    video: str | None
    trajectory: list[list[float] | None]
    """Robot [x, y] (m) after reset and after every step."""
    actions: list[list[float]]
    """[linear_x, linear_y] of every step."""
    layout: dict[str, Any] | None
    """Scene geometry (m)."""
    renderer: str | None
    probe: str | None = None
    """The instruction probe of this episode (``eval.probes``: swap, neutral, unrelated), else None."""
    probe_instruction: str | None = None
    """The instruction the probe gave the policy instead of ``instruction`` (the env's)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EpisodeRecord))
"""The keys of every line of ``episodes.jsonl``, in order."""

TIMING_FIELDS = ("latency_ms", "round_trip_ms", "server_latency_ms", "time_s")
"""Fields that measure wall-clock time: they differ between runs; everything else is reproducible."""


def record_key(record: dict[str, Any]) -> tuple[str, str, int]:
    """The identity of an episode: ``(policy_id, cell, seed)``."""
    return (str(record["policy_id"]), str(record["cell"]), int(record["seed"]))


def without_timing(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` without wall-clock fields, for reproducibility comparisons."""
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=False, default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, Paths and non-finite floats (-> None) into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as strict JSON (no NaN) to ``path`` atomically (``mvla_sim.files``)."""
    atomic_write_json(path, to_jsonable(data), allow_nan=False)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read ``episodes.jsonl``; a torn last line (interrupted write) is skipped with a warning."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s:%d is not valid JSON (an interrupted write?); ignoring it", path, lineno)
    return records


class EpisodeLog:
    """Append-only JSONL log of episode records with resume support.

    Opening repairs a torn last line (from a killed run) so that new lines start cleanly.
    ``append`` writes one line, flushes and fsyncs it. Duplicate keys are never written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self.records: list[dict[str, Any]] = read_records(path)
        self.done: set[tuple[str, str, int]] = set()
        unique = []
        for r in self.records:
            if record_key(r) not in self.done:
                self.done.add(record_key(r))
                unique.append(r)
        self.records = unique
        self._fh = path.open("a", encoding="utf-8")

    def _repair(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        logger.warning("%s ends with a partial line (interrupted run); dropping it", self.path)
        with self.path.open("r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())

    def __contains__(self, key: tuple[str, str, int]) -> bool:
        return key in self.done

    def append(self, record: EpisodeRecord | dict[str, Any]) -> bool:
        """Write ``record`` unless its key is already logged; returns whether it was written."""
        if isinstance(record, EpisodeRecord):
            record = record.to_dict()
        key = record_key(record)
        if key in self.done:
            return False
        self._fh.write(_dumps(to_jsonable(record)) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done.add(key)
        self.records.append(record)
        return True

    def rewrite_sorted(self, order: Iterable[str] | None = None) -> None:
        """Rewrite the file atomically in a deterministic order (policy, cell, episode index)."""
        rank = {pid: i for i, pid in enumerate(order or [])}
        self.records.sort(
            key=lambda r: (
                rank.get(r["policy_id"], len(rank)),
                r["policy_id"],
                r["cell"],
                r["episode_index"],
                r["seed"],
            )
        )
        self._fh.close()
        atomic_write_text(self.path, "".join(_dumps(to_jsonable(r)) + "\n" for r in self.records))
        self._fh = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> EpisodeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
