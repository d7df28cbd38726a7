"""What ``policies.http.serve`` refuses before a request reaches the policy, and the limits behind it.

The server may listen on the robot's network (``--host 0.0.0.0``), so anyone there can send it
anything. This module owns every refusal that does not depend on the policy:

- :class:`ServeLimits`: the numbers (body size, image size, timeouts, connections), each with
  the reason it was chosen;
- :class:`GuardMiddleware`: an ASGI layer in front of the FastAPI app that answers, before the
  body is read: 403 for a missing or wrong key, 403 under ``--no-auth`` for a non-loopback
  ``Host`` (DNS rebinding) or a cross-site browser request, 413 for a body over the limit, 408
  for a body that does not arrive in time;
- :class:`GuardedH11Protocol`: uvicorn's h11 connection with a deadline for the request headers
  (h11 and uvicorn have none: a connection that never finishes its headers is held forever) and
  a connection cap that closes the connection that has waited longest for its headers;
- :func:`jpeg_size` and :func:`decode_frame`: JPEG only, its size read from the frame header
  before anything is decoded, decodes bounded by a semaphore;
- :func:`uvicorn_config`: the uvicorn settings that go with them.

Refusals never echo the request (no body, no key) and close the connection.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11
import numpy as np
from uvicorn.protocols.http.h11_impl import H11Protocol

from policies.http.protocol import API_KEY_HEADER, INVALID_KEY_DETAIL, is_loopback_host
from policies.vla.transport import decode_jpeg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {("GET", "/"), ("HEAD", "/"), ("GET", "/health"), ("HEAD", "/health")}
)
"""What answers without the key (as the team's server); everything else, unknown paths included,
needs it."""

MAX_INSTRUCTION_CHARS = 1000
"""Longest instruction accepted (the team's are under 100 characters; a megabyte of text would reach
the tokenizer and the model)."""

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG start-of-frame markers (0xC4 DHT, 0xC8 JPG and 0xCC DAC share the range but are not frames)."""


@dataclass(frozen=True)
class ServeLimits:
    """The limits of one server (defaults are what ``python -m policies.http.serve`` runs with).

    Attributes:
        max_body_bytes: largest request body, 1 MiB. The robot's frame (224x224, JPEG quality
            95) is 20-40 KB in base64; 1 MiB is 25x that and still admits a full-HD JPEG, while a
            body at the limit parses in milliseconds on the event loop.
        max_image_side, max_image_pixels: largest JPEG accepted, read from its frame header
            before decoding: 4096 px a side and 4.2 Mpx (2048x2048, 12.6 MB as RGB), far beyond the
            model's 224x224 input but above any camera frame a client would reasonably send.
        decode_slots: JPEG decodes at once (the rest wait): bounds decode memory to
            ``decode_slots`` x 12.6 MB whatever the number of connections.
        header_timeout_s: a connection must deliver its request line and headers within this
            time of opening (or of its first byte after a previous answer); else it is closed.
        body_timeout_s: the body must arrive within this time of the headers (408 otherwise).
        keep_alive_s: an idle keep-alive connection is closed after this time (uvicorn's option).
        max_connections: open connections; one more closes the connection that has waited
            longest for its headers, so that half-open connections cannot starve real clients.
        max_header_bytes: largest request line plus headers (h11's incomplete-event limit).
    """

    max_body_bytes: int = 1 << 20
    max_image_side: int = 4096
    max_image_pixels: int = 2048 * 2048
    decode_slots: int = 2
    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    keep_alive_s: int = 5
    max_connections: int = 64
    max_header_bytes: int = 16 * 1024
    _decodes: threading.BoundedSemaphore = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_decodes", threading.BoundedSemaphore(self.decode_slots))


class ImageRefused(ValueError):
    """The ``image`` field is refused before decoding; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------------------------
# Image


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG from its frame headers, without decoding; the largest if several.

    Raises:
        ImageRefused: 400 when the bytes are not a JPEG or its header is corrupt.
    """
    if data[:3] != b"\xff\xd8\xff":
        raise ImageRefused(400, f"image payload is not a JPEG ({len(data)} bytes; the protocol sends JPEG)")
    sizes: list[tuple[int, int]] = []
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageRefused(400, f"image payload is not a decodable JPEG (bad marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: the headers are over
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS and length >= 7 and i + 9 <= len(data):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            sizes.append((width, height))
        if length < 2:
            raise ImageRefused(400, f"image payload is not a decodable JPEG (bad segment at byte {i})")
        i += 2 + length
    if not sizes or min(min(s) for s in sizes) == 0:
        raise ImageRefused(400, "image payload is not a decodable JPEG (no frame header with a size)")
    return max(sizes, key=lambda s: s[0] * s[1])


def check_image_size(width: int, height: int, limits: ServeLimits) -> None:
    """:class:`ImageRefused` (413) when a frame is beyond ``limits``."""
    if max(width, height) > limits.max_image_side or width * height > limits.max_image_pixels:
        raise ImageRefused(
            413,
            f"image {width}x{height} px is larger than this server accepts (at most {limits.max_image_side} px "
            f"a side and {limits.max_image_pixels / 1e6:.1f} Mpx); send the 224x224 frame the robot client sends",
        )


def decode_frame(data: bytes, limits: ServeLimits) -> np.ndarray:
    """JPEG bytes -> uint8 RGB (H, W, 3), refused by its header before decoding, at most
    ``limits.decode_slots`` decodes at once.

    Raises:
        ImageRefused: not a JPEG (400) or too large (413).
        FrameDecodeError: a JPEG header whose data cannot be decoded (truncated, corrupt); the
            decode is :func:`policies.vla.transport.decode_jpeg`, the team server's.
    """
    check_image_size(*jpeg_size(data), limits)
    with limits._decodes:
        return decode_jpeg(data)


# ----------------------------------------------------------------------------------------------
# Requests


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _is_loopback_origin(origin: str) -> bool:
    host = urlsplit(origin).hostname if "://" in origin else None
    return bool(host) and is_loopback_host(host)


def browser_refusal(scope: Scope) -> str | None:
    """Why a ``--no-auth`` request is refused (None: accepted): a Host that is not a loopback name,
    or a cross-site request from a browser (any web page the operator has open could send it)."""
    host = _header(scope, b"host")
    try:
        hostname = urlsplit(f"//{host}").hostname if host else None
    except ValueError:
        hostname = None
    if not hostname or not is_loopback_host(hostname):
        return (
            "without a key this server answers requests for a loopback Host only (localhost, 127.0.0.1, ::1)"
        )
    origin = _header(scope, b"origin")
    if (origin is not None and not _is_loopback_origin(origin)) or _header(
        scope, b"sec-fetch-site"
    ) == "cross-site":
        return "without a key this server refuses requests from web pages of other sites"
    return None


class GuardMiddleware:
    """Refuse what can be refused before the body is read, then read the body within its limits.

    Args:
        app: the FastAPI app.
        api_key: the key every route but :data:`OPEN_ROUTES` needs; None (``--no-auth``) checks
            the ``Host`` and ``Origin`` headers instead.
        limits: body size and timeout.
    """

    def __init__(self, app: ASGIApp, api_key: str | None, limits: ServeLimits) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key is not None else None
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await refuse(send, *refusal)
            return
        body = await self.read_body(receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, detail) of a request refused on its headers alone, or None."""
        if self.api_key is None:
            why = browser_refusal(scope)
            if why is not None:
                return 403, why
        elif (scope["method"], scope["path"]) not in OPEN_ROUTES:
            key = _header(scope, API_KEY_HEADER.lower().encode())
            if key is None or not secrets.compare_digest(key.encode("latin-1"), self.api_key):
                return 403, INVALID_KEY_DETAIL
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.limits.max_body_bytes):
            return 413, self._too_large()
        return None

    def _too_large(self) -> str:
        return (
            f"request body is larger than {self.limits.max_body_bytes} bytes; the robot's 224x224 JPEG frame "
            "is a few tens of KB"
        )

    async def read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 413 (too large) or 408 (too slow), or on a disconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                await refuse(
                    send, 408, f"the request body did not arrive within {self.limits.body_timeout_s:g} s"
                )
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                await refuse(send, 413, self._too_large())
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def refuse(send: Send, status: int, detail: str) -> None:
    """Answer ``{"detail": detail}`` with ``status`` and close the connection (the body may be unread)."""
    body = ('{"detail": ' + json.dumps(detail) + "}").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


# ----------------------------------------------------------------------------------------------
# Connections


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 connection with a request-header deadline and a connection cap.

    uvicorn arms its keep-alive timer only after a first answer and disarms it on any byte, so a
    connection that opens and never completes its headers (slowloris) is otherwise held forever.
    Subclasses made by :func:`uvicorn_config` carry their :class:`ServeLimits`.
    """

    limits: ServeLimits = ServeLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_since = self.loop.time()
        self._arm_header_timer()
        self._evict_if_full()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._waiting_since = self.loop.time()
            self._arm_header_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def waiting_for_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.waiting_for_headers():
            self.transport.close()

    def _evict_if_full(self) -> None:
        """Over the cap: close the connection that has waited longest for its headers (maybe this one)."""
        if len(self.connections) <= self.limits.max_connections:
            return
        waiting = [
            c for c in self.connections if isinstance(c, GuardedH11Protocol) and c.waiting_for_headers()
        ]
        if waiting:
            min(waiting, key=lambda c: c._waiting_since).transport.close()
        else:
            self.transport.close()


def uvicorn_config(app: Any, limits: ServeLimits, **kwargs: Any) -> Any:
    """A ``uvicorn.Config`` serving ``app`` over :class:`GuardedH11Protocol` with ``limits``.

    uvicorn's own ``limit_concurrency`` is not used: it counts half-open connections too, so it
    would turn 100 of them into 503s for every real client.
    """
    import uvicorn

    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
    return uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        **kwargs,
    )


__all__ = [
    "MAX_INSTRUCTION_CHARS",
    "OPEN_ROUTES",
    "GuardMiddleware",
    "GuardedH11Protocol",
    "ImageRefused",
    "ServeLimits",
    "browser_refusal",
    "check_image_size",
    "decode_frame",
    "jpeg_size",
    "refuse",
    "uvicorn_config",
]
