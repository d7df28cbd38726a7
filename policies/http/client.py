"""A policy behind the team's HTTP inference protocol, driven like the robot's ROS 2 client.

:class:`HTTPPolicy` is a :class:`policies.base.Policy`: ``reset(instruction)`` posts ``/reset``
(the evaluator starts every episode from a clean server history; the real robot client never
calls it), ``act(obs)`` posts ``/predict`` with exactly the robot client's payload (the frame
resized to 224x224 as ``cv2.resize``, JPEG quality 95, base64, and the instruction) and returns
the server's ``action``. The protocol is in :mod:`policies.http.protocol`, the frame transport in
:mod:`policies.vla.transport`. The policy can be anything behind the server: ours
(``python -m policies.http.serve``), the team's, a classification head, a PaliGemma policy.

Faults (a timeout, a refused or reset connection, an HTTP error, an answer that is not the
protocol's) raise :class:`ServerFault`, whose message starts with a short reason; the evaluator
ends that episode as a failure with the reason recorded. Nothing is resent unless
``retries > 0``, and a 3xx or 4xx never: a real robot does not resend a stale frame, and a
resent frame the server had already processed advances its history twice. Redirects are not
followed (the key would go to the new address). Each request has the robot client's per-read
timeout and a total deadline (:mod:`policies.http.deadline`), so a server that trickles its
answer cannot stretch a step. The key is checked at construction
(:func:`policies.http.protocol.key_problem`) and never appears in a message.

:meth:`HTTPPolicy.check` is the pre-flight check (``/health``, then an authenticated
``/reset``) that raises :class:`PreflightError` with a one-line reason.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import numpy as np
import requests

from policies.http.deadline import DeadlineExceeded, deadline, deadline_session
from policies.http.protocol import (
    API_KEY_ENV,
    API_KEY_HEADER,
    CLIENT_TIMEOUT_S,
    SESSION_HEADER,
    STRATEGIES,
    check_url,
    key_problem,
    public_url,
)
from policies.vla.transport import JPEG_QUALITY, client_payload_image

PREFLIGHT_TIMEOUT_S: tuple[float, float] = (5.0, 120.0)
"""(connect, read) timeouts (s) of the pre-flight requests: the team's server loads its model on the
first ``/reset`` or ``/predict``, which takes far longer than a control step."""

DEADLINE_FACTOR = 2.0
"""Default total deadline of a request in per-read timeouts: one to connect, one to wait for the answer."""

OPTION_NAMES: tuple[str, ...] = (
    "api_key",
    "strategy",
    "timeout_s",
    "deadline_s",
    "retries",
    "keep_alive",
    "sessions",
)
"""Keyword options of :class:`HTTPPolicy` (``--policy-option KEY=VALUE`` in ``eval.rollout``)."""


class ServerFault(RuntimeError):
    """A request to the server failed during an episode; ``reason`` is a short code.

    Codes: ``timeout``, ``connection_refused``, ``connection_reset``, ``connection_error``,
    ``http_<status>`` (e.g. ``http_500``, ``http_307`` for a redirect, which is not followed),
    ``bad_answer``.
    """

    failure_code = "server_fault"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class PreflightError(RuntimeError):
    """The server failed the pre-flight check (one-line message naming the problem and the fix)."""


def _fault_from_exception(
    exc: requests.RequestException, timeout_s: float, deadline_s: float | None = None
) -> ServerFault:
    text = " ".join(str(exc).split())[:200]
    if isinstance(exc, DeadlineExceeded):
        return ServerFault(
            "timeout", f"no complete answer within {deadline_s or timeout_s:g} s (the deadline)"
        )
    if isinstance(exc, requests.Timeout):
        return ServerFault("timeout", f"no answer within {timeout_s:g} s")
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, ConnectionRefusedError) for c in chain) or "refused" in text.lower():
        return ServerFault("connection_refused", "the server refused the connection (is it running?)")
    if (
        any(isinstance(c, ConnectionResetError | BrokenPipeError) for c in chain)
        or "reset by peer" in text.lower()
        or "RemoteDisconnected" in text
        or isinstance(exc, requests.exceptions.ChunkedEncodingError)
    ):
        return ServerFault("connection_reset", "the server closed the connection before answering")
    return ServerFault("connection_error", text or type(exc).__name__)


def _detail(response: requests.Response) -> str:
    if response.is_redirect:
        location = public_url(response.headers.get("location", "")) or "?"
        return f"a redirect to {location} (not followed: the key would go there)"
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return " ".join(str(detail).split())[:200]


class HTTPPolicy:
    """Drive a policy served over the team's HTTP protocol, as the robot client does.

    Args:
        url: the server, ``http://HOST:PORT`` (the robot's ``VLA_API_SERVER``).
        api_key: the ``X-API-Key`` header; None sends no header (the robot client's behaviour
            when ``VLA_API_KEY`` is empty).
        strategy: ``chunk_reuse`` or ``receding_horizon`` sent in the payload; None (default)
            sends none, as the robot client.
        timeout_s: per-read timeout (s), 1.0 as the robot client (``requests``' timeout:
            to connect, and between bytes of the answer).
        deadline_s: total time (s) for one request, connect to last byte; default
            :data:`DEADLINE_FACTOR` x ``timeout_s``.
        retries: times a failed ``/predict`` or ``/reset`` is resent (default 0).
        keep_alive: reuse one connection; False (default) opens one per request, as the robot
            client's ``requests.post``.
        sessions: every episode is its own session (a fresh ``X-Session-Id`` per ``reset``), so
            that several episodes can run against the server at once; only for a server whose
            ``/health`` lists ``sessions`` (:func:`supports_sessions`).
    """

    name = "http"

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        strategy: str | None = None,
        timeout_s: float = CLIENT_TIMEOUT_S,
        deadline_s: float | None = None,
        retries: int = 0,
        keep_alive: bool = False,
        sessions: bool = False,
    ) -> None:
        self.url = check_url(url)
        if strategy is not None and strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r}: choose from {','.join(STRATEGIES)} (or leave it out)")
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s {timeout_s!r}: must be a number of seconds > 0")
        if deadline_s is None:
            deadline_s = DEADLINE_FACTOR * timeout_s
        if not (
            isinstance(deadline_s, int | float) and math.isfinite(deadline_s) and deadline_s >= timeout_s
        ):
            raise ValueError(
                f"deadline_s {deadline_s!r}: must be a number of seconds >= timeout_s ({timeout_s:g})"
            )
        if not (isinstance(retries, int) and retries >= 0):
            raise ValueError(f"retries {retries!r}: must be an integer >= 0")
        self.api_key = str(api_key) if api_key not in (None, "") else None  # a numeric key parses as int
        problem = key_problem(self.api_key) if self.api_key is not None else None
        if problem is not None:
            raise ValueError(
                f"the API key ({API_KEY_ENV} or --policy-option api_key) {problem} (key not shown)"
            )
        self.strategy = strategy
        self.timeout_s = float(timeout_s)
        self.deadline_s = float(deadline_s)
        self.retries = retries
        self.keep_alive = bool(keep_alive)
        self.sessions = bool(sessions)
        self.session_id: str | None = None
        self._session: requests.Session | None = deadline_session() if keep_alive else None
        self.health: dict[str, Any] | None = None
        self.instruction: str | None = None
        self.round_trip_ms: list[float] = []
        self.server_latency_ms: list[float] = []
        self.resent = 0

    # ---------------------------------------------------------------- transport
    def _request(
        self, method: str, route: str, payload: dict[str, Any] | None = None, timeout: Any = None
    ) -> requests.Response:
        """One request, no redirect followed, cut at the deadline (``requests.Timeout`` then)."""
        headers = {API_KEY_HEADER: self.api_key} if self.api_key else {}
        if self.session_id is not None:
            headers[SESSION_HEADER] = self.session_id
        timeout = timeout or self.timeout_s
        total = sum(timeout) if isinstance(timeout, tuple) else self.deadline_s
        session = self._session if self._session is not None else deadline_session()
        try:
            with deadline(total) as expired:
                try:
                    response = session.request(
                        method,
                        self.url + route,
                        json=payload,
                        headers=headers,
                        timeout=timeout,
                        allow_redirects=False,
                    )
                except requests.RequestException as exc:
                    if expired():
                        raise DeadlineExceeded(f"no complete answer within {total:g} s") from exc
                    raise
                if expired():  # cut while reading the headers: http.client takes the EOF for their end
                    raise DeadlineExceeded(f"no complete answer within {total:g} s")
                return response
        finally:
            if session is not self._session:
                session.close()

    def _call(self, method: str, route: str, payload: dict[str, Any] | None = None) -> tuple[dict, float]:
        """One request (resent up to ``retries`` times on a fault); (JSON answer, round trip ms)."""
        fault: ServerFault | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.resent += 1
            start = time.perf_counter()
            try:
                response = self._request(method, route, payload)
            except requests.RequestException as exc:
                fault = _fault_from_exception(exc, self.timeout_s, self.deadline_s)
                continue
            elapsed_ms = (time.perf_counter() - start) * 1000.0
            if response.status_code >= 500:
                fault = ServerFault(f"http_{response.status_code}", f"{route} answered {_detail(response)}")
                continue
            if response.status_code != 200:  # a 3xx or 4xx is not transient: never resent
                raise ServerFault(f"http_{response.status_code}", f"{route} answered {_detail(response)}")
            try:
                body = response.json()
            except ValueError as exc:
                raise ServerFault("bad_answer", f"{route} answered something that is not JSON") from exc
            if not isinstance(body, dict):
                raise ServerFault("bad_answer", f"{route} answered {type(body).__name__}, expected an object")
            return body, elapsed_ms
        assert fault is not None
        raise fault

    # ---------------------------------------------------------------- pre-flight
    def get_health(self) -> dict[str, Any]:
        """``GET /health`` as a dict; :class:`PreflightError` when unreachable or malformed."""
        try:
            response = self._request("GET", "/health", timeout=PREFLIGHT_TIMEOUT_S)
        except requests.RequestException as exc:
            fault = _fault_from_exception(exc, PREFLIGHT_TIMEOUT_S[1])
            raise PreflightError(
                f"server {self.url} is unreachable ({fault}); start it or fix the URL"
            ) from exc
        if response.status_code != 200:
            raise PreflightError(
                f"server {self.url}: GET /health answered HTTP {response.status_code} ({_detail(response)}); "
                "is this the VLA inference server?"
            )
        try:
            health = response.json()
        except ValueError as exc:
            raise PreflightError(f"server {self.url}: GET /health did not answer JSON") from exc
        if not isinstance(health, dict) or "model_loaded" not in health:
            raise PreflightError(
                f"server {self.url}: GET /health answered no 'model_loaded' field; is this the VLA inference server?"
            )
        return health

    def check(self) -> dict[str, Any]:
        """Pre-flight: ``GET /health``, then an authenticated ``POST /reset``; returns the health answer.

        The team's server loads its model on the first ``/reset`` or ``/predict``, so these
        requests wait up to :data:`PREFLIGHT_TIMEOUT_S`, and a ``model_loaded: false`` before the
        reset is checked again after it.

        Raises:
            PreflightError: unreachable server, wrong key (403), ``model_loaded: false``, or a
                failing ``/reset`` (one-line message).
        """
        health = self.get_health()
        try:
            response = self._request("POST", "/reset", timeout=PREFLIGHT_TIMEOUT_S)
        except requests.RequestException as exc:
            raise PreflightError(
                f"server {self.url}: POST /reset failed ({_fault_from_exception(exc, PREFLIGHT_TIMEOUT_S[1])})"
            ) from exc
        if response.status_code in (401, 403):
            fix = (
                f"the key sent ({API_KEY_ENV} or --policy-option api_key) is not the server's"
                if self.api_key
                else f"no key was sent: set {API_KEY_ENV}"
            )
            raise PreflightError(
                f"server {self.url} refused the API key (HTTP {response.status_code} {_detail(response)}); {fix}"
            )
        if response.status_code != 200:
            raise PreflightError(
                f"server {self.url}: POST /reset answered HTTP {response.status_code} ({_detail(response)})"
            )
        if not health.get("model_loaded"):
            health = self.get_health()
        if not health.get("model_loaded"):
            raise PreflightError(
                f"server {self.url} reports model_loaded: false (model {health.get('model_name')!r}); "
                "check the server's log"
            )
        self.health = health
        return health

    # ---------------------------------------------------------------- Policy protocol
    def reset(self, instruction: str) -> None:
        """Start an episode: ``POST /reset`` (clears the server's history and action buffer)."""
        self.instruction = instruction
        self.round_trip_ms = []
        self.server_latency_ms = []
        self.resent = 0
        self.session_id = uuid.uuid4().hex if self.sessions else None
        self._call("POST", "/reset")

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """``POST /predict`` with the robot client's payload; the answer's action as float32 (2,)."""
        payload: dict[str, Any] = {
            "image": client_payload_image(obs["image"]),
            "instruction": str(obs.get("instruction") or self.instruction or ""),
        }
        if self.strategy is not None:
            payload["strategy"] = self.strategy
        body, round_trip = self._call("POST", "/predict", payload)
        self.round_trip_ms.append(round_trip)
        action = body.get("action")
        try:
            out = np.asarray(action, dtype=np.float32).ravel()
        except (TypeError, ValueError) as exc:
            raise ServerFault("bad_answer", f"/predict answered action {action!r}") from exc
        if out.shape != (2,):
            raise ServerFault(
                "bad_answer", f"/predict answered action {action!r}, expected [linear_x, linear_y]"
            )
        server_ms = body.get("latency_ms")
        if isinstance(server_ms, int | float) and math.isfinite(server_ms):
            self.server_latency_ms.append(float(server_ms))
        return out

    def step_timings(self) -> dict[str, list[float]]:
        """Per-step times since the last reset (ms): the client's round trip and the server's ``latency_ms``."""
        return {"round_trip_ms": list(self.round_trip_ms), "server_latency_ms": list(self.server_latency_ms)}

    def settings(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "url": self.url,
            "api_key": "set" if self.api_key else "not set",
            "strategy": self.strategy,
            "timeout_s": self.timeout_s,
            "deadline_s": self.deadline_s,
            "retries": self.retries,
            "keep_alive": self.keep_alive,
            "sessions": self.sessions,
            "payload": f"client resize to 224x224 (cv2 INTER_LINEAR), JPEG quality {JPEG_QUALITY}, base64",
            "health": self.health,
        }

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def supports_sessions(health: dict[str, Any] | None) -> bool:
    """The server's ``/health`` advertises ``X-Session-Id`` sessions (ours does; the team's does not)."""
    sessions = (health or {}).get("sessions")
    return isinstance(sessions, dict) and sessions.get("header") == SESSION_HEADER


__all__ = [
    "DEADLINE_FACTOR",
    "OPTION_NAMES",
    "HTTPPolicy",
    "PreflightError",
    "ServerFault",
    "supports_sessions",
]
