"""Sessions and dynamic batching for :mod:`policies.http.serve`.

A request with an ``X-Session-Id`` header (:data:`policies.http.protocol.SESSION_HEADER`) belongs
to that session: each session is one episode of a :class:`policies.base.BatchPolicy`, with its
own history, started by the session's first ``/predict`` after its ``/reset`` (or ever). Requests
without the header keep the team's single-history behaviour (``PolicyServer``'s one policy).

:class:`SessionBatcher` owns the sessions and one batching thread: concurrent ``/predict``
requests of different sessions wait in a queue; the thread takes the first, then more until it
holds ``max_batch`` of them or ``max_wait_ms`` have passed, and answers them with one
``act_batch`` (one forward of the model for all). Two requests of the same session never share a
batch (the second waits for the next one). The session store keeps at most ``max_sessions``
sessions and forgets the least recently used beyond that. ``/health`` advertises the sessions
(:meth:`SessionBatcher.describe`), so a client knows it may open several at once.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policies.base import BatchPolicy
from policies.http.protocol import SESSION_HEADER

DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_WAIT_MS = 5.0
DEFAULT_MAX_SESSIONS = 256
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class SessionError(ValueError):
    """A malformed session id (the message names the rule)."""


def check_session_id(session_id: str) -> str:
    """``session_id`` if it is 1-128 characters of letters, digits and ``. _ : -``; else :class:`SessionError`."""
    if not SESSION_ID_PATTERN.match(session_id):
        raise SessionError(
            f"{SESSION_HEADER} must be 1-128 characters of letters, digits and . _ : - "
            f"(e.g. a uuid4 hex), got {session_id[:40]!r}"
        )
    return session_id


@dataclass(eq=False)
class _Request:
    session_id: str
    obs: dict[str, Any]
    future: Future = field(default_factory=Future)


class SessionBatcher:
    """Per-session episodes of one :class:`~policies.base.BatchPolicy`, their steps batched.

    Args:
        policy: the batched policy (e.g. :class:`policies.vla.policy.VLAPolicy`).
        max_batch: most requests answered by one ``act_batch``.
        max_wait_ms: how long the first request of a batch waits for others (ms).
        max_sessions: sessions kept; the least recently used is forgotten beyond that.
        lock: held around every ``act_batch`` (the server's lock: its single-history path uses
            the same model).
        seed: the ``seed`` of every session's episode (the random baseline's generator).
    """

    def __init__(
        self,
        policy: BatchPolicy,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        lock: threading.Lock | None = None,
        seed: int = 0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.policy, self.max_batch, self.max_wait_s = policy, int(max_batch), float(max_wait_ms) / 1000.0
        self.max_sessions, self.seed = int(max_sessions), seed
        self.lock = lock or threading.Lock()
        self._episodes: OrderedDict[str, Any] = OrderedDict()
        self._store_lock = threading.Lock()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._held: list[_Request] = []
        self.batches = 0
        self.steps = 0
        self._thread = threading.Thread(target=self._serve, daemon=True, name="policies.http.sessions")
        self._thread.start()

    def describe(self) -> dict[str, Any]:
        """What ``/health`` advertises under ``sessions``."""
        return {
            "header": SESSION_HEADER,
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait_s * 1000.0,
            "max_sessions": self.max_sessions,
            "active": len(self._episodes),
        }

    def reset(self, session_id: str) -> None:
        """Forget the session's episode: its next step starts a new one."""
        check_session_id(session_id)
        with self._store_lock:
            self._episodes.pop(session_id, None)

    def start(self, session_id: str, instruction: str) -> Any:
        """Start the session's episode now with ``instruction`` (else its next step starts it); its state."""
        check_session_id(session_id)
        with self._store_lock:
            self._episodes.pop(session_id, None)
        return self._episode(_Request(session_id, {"instruction": instruction}))

    def act(self, session_id: str, obs: dict[str, Any], timeout_s: float | None = None) -> np.ndarray:
        """One step of the session's episode (started with ``obs["instruction"]`` if new); blocks."""
        request = _Request(check_session_id(session_id), obs)
        self._queue.put(request)
        return request.future.result(timeout=timeout_s)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5.0)

    # ---------------------------------------------------------------- the batching thread
    def _serve(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            self._run(batch)

    def _collect(self) -> list[_Request] | None:
        """The next batch: the first waiting request, then others of other sessions until full or late."""
        first = self._held.pop(0) if self._held else self._queue.get()
        if first is None:
            return None
        batch, sessions = [first], {first.session_id}
        held, self._held = self._held, []
        for request in held:  # requests held back from the last batch come first
            self._add(request, batch, sessions)
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                request = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if request is None:
                self._queue.put(None)  # close after this batch
                break
            self._add(request, batch, sessions)
        return batch

    def _add(self, request: _Request, batch: list[_Request], sessions: set[str]) -> None:
        if request.session_id in sessions or len(batch) >= self.max_batch:
            self._held.append(request)
        else:
            batch.append(request)
            sessions.add(request.session_id)

    def _run(self, batch: list[_Request]) -> None:
        try:
            episodes = [self._episode(r) for r in batch]
            with self.lock:
                actions = self.policy.act_batch(episodes, [r.obs for r in batch])
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
            for request in batch:
                request.future.set_exception(exc)
            return
        self.batches += 1
        self.steps += len(batch)
        for request, action in zip(batch, actions, strict=True):
            request.future.set_result(np.asarray(action, dtype=np.float32))

    def _episode(self, request: _Request) -> Any:
        with self._store_lock:
            episode = self._episodes.get(request.session_id)
            if episode is None:
                instruction = str(request.obs.get("instruction", ""))
                episode = self.policy.start_episode(instruction, seed=self.seed)
                self._episodes[request.session_id] = episode
                while len(self._episodes) > self.max_sessions:
                    self._episodes.popitem(last=False)
            self._episodes.move_to_end(request.session_id)
            return episode


__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_MAX_WAIT_MS",
    "SessionBatcher",
    "SessionError",
    "check_session_id",
]
