"""A total deadline for one ``requests`` call, beside its per-read timeout.

``requests``' ``timeout`` bounds the connect and each read of the socket, not the request: a
server that sends one byte every half second keeps a 1 s read timeout happy forever. Here a
:func:`deadline_session` registers every connection a request uses, and :func:`deadline` shuts
their sockets down when the time is up, so the blocked read returns at once; the caller then
sees the ``requests`` exception of a broken connection and asks the deadline whether it expired.

The hook is urllib3's documented ``ConnectionCls`` of a connection pool (urllib3 2.x).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlineExceeded(requests.Timeout):
    """A request did not complete within its total deadline."""


_current = threading.local()
"""The :class:`_Deadline` of the request running in this thread, if any."""


class _Deadline:
    """Connections in use by one request, and whether its time ran out."""

    def __init__(self) -> None:
        self.connections: list[Any] = []
        self.expired = threading.Event()
        self.lock = threading.Lock()

    def watch(self, connection: Any) -> None:
        with self.lock:
            self.connections.append(connection)
        if self.expired.is_set():
            self.abort()

    def abort(self) -> None:
        self.expired.set()
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Registers the connection with the current deadline before it sends and before it reads."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._watch()
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        self._watch()
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]

    def _watch(self) -> None:
        current: _Deadline | None = getattr(_current, "deadline", None)
        if current is not None:
            current.watch(self)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def deadline_session() -> requests.Session:
    """A ``requests.Session`` whose requests :func:`deadline` can cut short."""
    session = requests.Session()
    session.mount("http://", _DeadlineAdapter())
    session.mount("https://", _DeadlineAdapter())
    return session


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Callable[[], bool]]:
    """Within the block, requests of a :func:`deadline_session` in this thread end after ``seconds``.

    Yields a function that tells whether the deadline expired (then the request raised a
    connection error, which is really a timeout).
    """
    current = _Deadline()
    timer = threading.Timer(seconds, current.abort)
    timer.daemon = True
    _current.deadline = current
    timer.start()
    try:
        yield current.expired.is_set
    finally:
        timer.cancel()
        _current.deadline = None


__all__ = ["DeadlineExceeded", "deadline", "deadline_session"]
