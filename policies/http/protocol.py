"""The team's HTTP inference protocol: routes, header, payload and answer fields.

One definition shared by the client policy (:mod:`policies.http.client`) and the server
(:mod:`policies.http.serve`), read from the team's FastAPI server and ROS 2 robot client
(``../shared/FACTS.md``, "How the team deploys"):

- ``GET /health`` -> ``{"status": "healthy", "model_loaded": bool, "model_name": str,
  "device": "cuda"|"cpu", "gpu_memory": {...} | null}`` (no key needed);
- ``POST /reset`` (header ``X-API-Key``) -> ``{"status": "success", "message": ...}``: clears
  the model's history and action buffer;
- ``POST /predict`` (header ``X-API-Key``), JSON body ``{"image": base64 JPEG, "instruction":
  str}`` plus an optional ``"strategy"`` (``chunk_reuse`` | ``receding_horizon``; the robot
  client sends none) -> ``{"action": [linear_x, linear_y], "latency_ms": float, "model_name":
  str, "strategy": "receding_horizon", "source": "inferred", "buffer_status": {}}`` (the team's
  server answers that strategy whatever was asked);
- a wrong or missing key -> 403 ``{"detail": "Invalid API Key"}``.

Our extension: an optional ``X-Session-Id`` header on ``/reset`` and ``/predict`` (one history per
session, concurrent sessions batched), advertised by ``/health``'s ``sessions`` field; a server
without it (the team's) ignores the header.

The robot client reads the server URL from ``VLA_API_SERVER`` and the key from ``VLA_API_KEY``,
resizes its frame to 224x224, JPEG-encodes it (:mod:`policies.vla.transport`) and posts with a 1 s
timeout.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

API_KEY_HEADER = "X-API-Key"
SESSION_HEADER = "X-Session-Id"
"""Our extension (not the team's): requests with this header belong to one session, each with its
own history; ``/health`` lists ``sessions`` when the server has them (:mod:`policies.http.sessions`)."""
API_KEY_ENV = "VLA_API_KEY"
SERVER_URL_ENV = "VLA_API_SERVER"
DEFAULT_PORT = 8000
CLIENT_TIMEOUT_S = 1.0
"""The robot client's ``requests.post(..., timeout=1.0)``."""

STRATEGIES: tuple[str, ...] = ("chunk_reuse", "receding_horizon")
ANSWERED_STRATEGY = "receding_horizon"
"""What the team's server puts in ``strategy`` whatever the request asked."""

HEALTH_FIELDS: tuple[str, ...] = ("status", "model_loaded", "model_name", "device", "gpu_memory")
PREDICT_FIELDS: tuple[str, ...] = (
    "action",
    "latency_ms",
    "model_name",
    "strategy",
    "source",
    "buffer_status",
)
INVALID_KEY_DETAIL = "Invalid API Key"
MIN_KEY_LENGTH = 16
"""Shortest API key the server starts with and the client sends (a guessable key is no key)."""
RESET_ANSWER = {"status": "success", "message": "History and buffer cleared"}
ROOT_ANSWER = {"name": "Mobile VLA Inference API", "version": "1.0.0", "status": "running"}


def is_http_url(text: str) -> bool:
    """``http://...`` or ``https://...`` (how ``eval.rollout`` tells a server from a policy name)."""
    return text.lower().startswith(("http://", "https://"))


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment, and without a trailing slash: safe to record."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def check_url(url: str) -> str:
    """Validate a server URL; returns :func:`public_url` of it.

    Raises:
        ValueError: not an http(s) URL with a host, or a bad port (one-line message).
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a server URL; give http://HOST:PORT, e.g. http://127.0.0.1:8000")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{url!r}: bad port ({exc})") from exc
    if parts.username or parts.password:
        raise ValueError(
            f"{public_url(url)}: put the API key in {API_KEY_ENV} (sent as the {API_KEY_HEADER} header), "
            "not in the URL"
        )
    return public_url(url)


def key_problem(key: str) -> str | None:
    """What is wrong with an API key, or None; the answer never contains the key.

    A key is at least :data:`MIN_KEY_LENGTH` printable ASCII characters without whitespace: HTTP
    strips surrounding spaces from header values (such a key could never match), a control
    character breaks the header, and a non-ASCII one cannot be sent as a header at all.
    """
    if not key:
        return "is empty"
    if any(c.isspace() for c in key):
        return "contains whitespace (spaces, tabs, a line break: often a pasted newline)"
    if not all(" " < c < "\x7f" for c in key):
        return "contains characters other than printable ASCII"
    if len(key) < MIN_KEY_LENGTH:
        return f"is {len(key)} characters long; use at least {MIN_KEY_LENGTH}"
    return None


def _address_key(ip: str) -> str:
    """An address, with every address of this machine (loopback, 0.0.0.0, its own interfaces) as ``local``."""
    address = ipaddress.ip_address(ip.split("%")[0])
    if address.is_loopback or address.is_unspecified:
        return "local"
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:  # an address can be bound here if and only if it is one of this machine's
            probe.bind((str(address), 0))
        except OSError:
            return str(address)
    return "local"


def server_identity(url: str) -> frozenset[tuple[str, int, str]] | None:
    """The (address, port, path) triples ``url`` reaches; None if its host does not resolve.

    Two URLs whose identities overlap name one server (``http://127.0.0.1:P`` and
    ``http://localhost:P``), whatever their spelling.
    """
    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    path = parts.path.rstrip("/")
    return frozenset((_address_key(str(info[4][0])), port, path) for info in infos)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = [
    "ANSWERED_STRATEGY",
    "API_KEY_ENV",
    "API_KEY_HEADER",
    "CLIENT_TIMEOUT_S",
    "DEFAULT_PORT",
    "HEALTH_FIELDS",
    "INVALID_KEY_DETAIL",
    "MIN_KEY_LENGTH",
    "PREDICT_FIELDS",
    "RESET_ANSWER",
    "ROOT_ANSWER",
    "SERVER_URL_ENV",
    "SESSION_HEADER",
    "STRATEGIES",
    "check_url",
    "is_http_url",
    "is_loopback_host",
    "key_problem",
    "public_url",
    "server_identity",
]
