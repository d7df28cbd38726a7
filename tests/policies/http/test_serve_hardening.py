"""Hostile and unlucky input to ``policies.http.serve`` and the HTTP client, on loopback (issue 17).

Each test starts a real uvicorn server on a free loopback port (``running_server``) or a raw
socket server, and talks to it with ``requests`` or a raw socket; every wait is bounded.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from eval.config import UsageError
from eval.runner.plan import check_one_lane_per_server, other_spec
from policies.http import guard, protocol
from policies.http.client import HTTPPolicy, ServerFault
from policies.http.guard import ServeLimits, jpeg_size
from policies.http.serve import PolicyServer, create_app, main, running_server
from policies.vla.transport import client_payload_image, encode_jpeg, to_base64

KEY = "hardening-key-0123456789"
LEFT = "Navigate around obstacles and reach the front of the beverage bottle on the left"
FAST_S = 1.0
"""What "a fast answer" means here, with slack for a loaded 2-core machine."""


class Counter:
    """A policy that counts what reaches it."""

    name = "counter"

    def __init__(self) -> None:
        self.resets: list[str] = []
        self.steps = 0

    def reset(self, instruction: str) -> None:
        self.resets.append(instruction)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        self.steps += 1
        return np.array([0.5, 0.0], np.float32)

    def settings(self) -> dict[str, Any]:
        return {"device": "cpu"}


def serve(key: str | None = KEY, limits: ServeLimits | None = None, docs: bool = False):
    policy = Counter()
    limits = limits or ServeLimits()
    app = create_app(PolicyServer(policy, "counter"), key, limits=limits, docs=docs)
    return policy, running_server(app, limits=limits)


@pytest.fixture
def keyed() -> Iterator[tuple[Counter, str]]:
    policy, server = serve()
    with server as url:
        yield policy, url


def good_body(image: str | None = None, instruction: str = LEFT) -> dict[str, str]:
    frame = np.random.default_rng(0).integers(0, 256, (144, 256, 3), dtype=np.uint8)
    return {"image": image or client_payload_image(frame), "instruction": instruction}


def post(url: str, route: str, key: str | None = KEY, **kw: Any) -> requests.Response:
    headers = {protocol.API_KEY_HEADER: key} if key else {}
    headers.update(kw.pop("headers", {}))
    return requests.post(url + route, headers=headers, timeout=5, allow_redirects=False, **kw)


def address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def raw(url: str, request: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``request`` as is; everything the server answers until it closes (or the timeout)."""
    with socket.create_connection(address(url), timeout=timeout_s) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def huge_jpeg(width: int = 10000, height: int = 10000) -> bytes:
    """A real 16x16 JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(encode_jpeg(np.zeros((16, 16, 3), np.uint8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


# ----------------------------------------------------------------------------------------------
# 1. Image input


def test_only_jpeg_within_the_size_limits_is_decoded(keyed) -> None:
    policy, url = keyed
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, format="PNG")  # ~12 KB, 100 Mpx once decoded
    start = time.perf_counter()
    png = post(url, "/predict", json=good_body(to_base64(bomb.getvalue())))
    assert png.status_code == 400 and "not a JPEG" in png.json()["detail"], png.text
    big = post(url, "/predict", json=good_body(to_base64(huge_jpeg())))
    assert big.status_code == 413 and "10000x10000" in big.json()["detail"], big.text
    assert time.perf_counter() - start < 2 * FAST_S  # refused from the header, nothing decoded
    assert policy.steps == 0
    assert jpeg_size(huge_jpeg(300, 200)) == (300, 200)
    assert post(url, "/predict", json=good_body()).status_code == 200


def test_decodes_are_bounded(monkeypatch) -> None:
    active, peak, lock = [0], [0], threading.Lock()
    real = guard.decode_jpeg

    def slow_decode(data: bytes) -> np.ndarray:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return real(data)

    monkeypatch.setattr(guard, "decode_jpeg", slow_decode)
    _, server = serve(limits=ServeLimits(decode_slots=1))
    with server as url:
        threads = [
            threading.Thread(target=post, args=(url, "/predict"), kwargs={"json": good_body()})
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    assert peak[0] == 1


# ----------------------------------------------------------------------------------------------
# 2. Body and key order, no echo


def test_the_key_is_checked_before_the_body_and_large_bodies_are_refused_unread(keyed) -> None:
    _, url = keyed
    host, port = address(url)
    head = f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    for key, status in ((None, b"403"), ("wrong-key-but-long-enough", b"403"), (KEY, b"413")):
        start = time.perf_counter()
        key_line = f"{protocol.API_KEY_HEADER}: {key}\r\n" if key else ""
        answer = raw(url, (head + key_line + "Content-Length: 30000000\r\n\r\n").encode())  # no body sent
        assert answer.split(b" ")[1] == status, answer
        assert time.perf_counter() - start < FAST_S
    chunked = (head + f"{protocol.API_KEY_HEADER}: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    piece = b"x" * 65536
    answer = raw(url, chunked + (b"%x\r\n" % len(piece) + piece + b"\r\n") * 20)
    assert answer.split(b" ")[1] == b"413", answer[:200]
    assert requests.get(url + "/health", timeout=FAST_S).status_code == 200


def test_a_slow_body_gets_408() -> None:
    _, server = serve(limits=ServeLimits(body_timeout_s=0.5))
    with server as url:
        host, port = address(url)
        start = time.perf_counter()
        answer = raw(
            url,
            f"POST /reset HTTP/1.1\r\nHost: {host}:{port}\r\n{protocol.API_KEY_HEADER}: {KEY}\r\n"
            "Content-Length: 100\r\n\r\n{".encode(),
        )
        assert answer.split(b" ")[1] == b"408" and time.perf_counter() - start < 0.5 + FAST_S


def test_errors_never_echo_the_request(keyed) -> None:
    _, url = keyed
    marker = "SECRET-PAYLOAD-MARKER"
    for body in (
        {"image": 12345, "instruction": marker},
        {"image": marker, "instruction": [marker]},
        {**good_body(), "strategy": marker},
        {"image": marker},
    ):
        answer = post(url, "/predict", json=body)
        assert answer.status_code == 422 and marker not in answer.text, answer.text
    answer = post(
        url, "/predict", data=f'{{"image": "{marker}", ', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422 and marker not in answer.text


# ----------------------------------------------------------------------------------------------
# 3. Connections


def test_half_open_connections_neither_starve_clients_nor_stay_open() -> None:
    limits = ServeLimits(header_timeout_s=1.5, max_connections=32)
    policy, server = serve(limits=limits)
    with server as url:
        host, port = address(url)
        half_open = []
        for _ in range(100):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
            half_open.append(sock)
        try:
            start = time.perf_counter()
            assert requests.get(url + "/health", timeout=FAST_S).json()["status"] == "healthy"
            assert post(url, "/predict", json=good_body()).status_code == 200
            assert time.perf_counter() - start < 2 * FAST_S and policy.steps == 1
            time.sleep(limits.header_timeout_s + 0.5)
            assert all(closed_by_server(sock) for sock in half_open)
        finally:
            for sock in half_open:
                sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# ----------------------------------------------------------------------------------------------
# 4. One lane per server


def test_two_urls_of_one_server_are_refused(keyed) -> None:
    _, url = keyed
    port = address(url)[1]
    specs = [other_spec(f"http://127.0.0.1:{port}"), other_spec(f"http://localhost:{port}")]
    with pytest.raises(UsageError, match="are the same server .*give its URL once"):
        check_one_lane_per_server(specs)
    check_one_lane_per_server([other_spec(f"http://127.0.0.1:{port}"), other_spec("http://127.0.0.1:1")])


# ----------------------------------------------------------------------------------------------
# 5. Redirects, 10. Total deadline


def one_shot_server(reply: Any) -> tuple[str, threading.Thread, socket.socket, list[bytes]]:
    """A socket server that answers one connection with ``reply(conn)``; what it received is recorded."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(5)
    received: list[bytes] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            received.append(conn.recv(65536))
            reply(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", thread, listener, received


def test_redirects_are_not_followed_and_the_key_stays_home() -> None:
    elsewhere, t2, l2, got_there = one_shot_server(lambda conn: None)
    moved = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}/reset\r\nContent-Length: 0\r\n\r\n"
    url, t1, l1, _ = one_shot_server(lambda conn: conn.sendall(moved.encode()))
    try:
        client = HTTPPolicy(url, api_key=KEY, retries=2)
        with pytest.raises(ServerFault, match="http_307.*not followed"):
            client.reset(LEFT)
        assert client.resent == 0
    finally:
        l2.close()
        t1.join(5)
        t2.join(5)
        l1.close()
    assert got_there == []


@pytest.mark.parametrize("split", [0, 71], ids=["trickled-headers", "trickled-body"])
def test_a_trickling_answer_is_cut_at_the_total_deadline(split: int) -> None:
    answer = (
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"status": "success"'
    )

    def trickle(conn: socket.socket) -> None:
        conn.sendall(answer[:split])  # the headers at once (split 71), or not
        for byte in answer[split:]:
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    url, thread, listener, _ = one_shot_server(trickle)
    try:
        client = HTTPPolicy(url, api_key=KEY, timeout_s=0.5, deadline_s=0.8)
        start = time.perf_counter()
        with pytest.raises(ServerFault, match="timeout: no complete answer within 0.8 s"):
            client.reset(LEFT)
        assert time.perf_counter() - start < 0.8 + FAST_S
    finally:
        thread.join(5)
        listener.close()


# ----------------------------------------------------------------------------------------------
# 6. Blank instruction


def test_a_blank_instruction_is_a_422_naming_the_field_and_is_not_resent(keyed) -> None:
    policy, url = keyed
    for instruction in ("", "   ", "x" * 1001):
        answer = post(url, "/predict", json=good_body(instruction=instruction))
        assert answer.status_code == 422 and "instruction" in str(answer.json()["detail"]), answer.text
    client = HTTPPolicy(url, api_key=KEY, retries=2)
    client.reset("")
    frame = np.zeros((144, 256, 3), np.uint8)
    with pytest.raises(ServerFault, match="http_422"):
        client.act({"image": frame, "instruction": "  "})
    assert client.resent == 0 and policy.steps == 0 and policy.resets == []


# ----------------------------------------------------------------------------------------------
# 7. Keys


def test_bad_server_keys_refuse_to_start(monkeypatch, capsys) -> None:
    for key in ("Q", " padded-key-0123456789 ", "tab\tkey-0123456789"):
        monkeypatch.setenv(protocol.API_KEY_ENV, key)
        assert main(["--policy", "straight", "--port", "0"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: VLA_API_KEY") and "\n" not in err and key.strip() not in err, err


@pytest.mark.parametrize(
    "key", ["short", "good-length-key-0123\r", "ключ-ключ-ключ-ключ-ключ", "with space 0123456789"]
)
def test_bad_client_keys_are_one_line_exit_2_and_never_echoed(tmp_path, monkeypatch, capsys, key) -> None:
    from eval.rollout import main as rollout_main

    monkeypatch.setenv(protocol.API_KEY_ENV, key)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    assert rollout_main(["--policy", url, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "API key" in err, err
    assert key.strip() not in err and "unreachable" not in err


# ----------------------------------------------------------------------------------------------
# 8. --no-auth against browsers, 9. docs


def test_no_auth_refuses_foreign_hosts_and_cross_site_browsers() -> None:
    policy, server = serve(key=None)
    with server as url:
        port = address(url)[1]
        for headers in (
            {"Host": "evil.example"},
            {"Host": f"rebound.attacker.test:{port}"},
            {"Origin": "http://evil.example", "Content-Type": "text/plain"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            answer = post(url, "/reset", key=None, headers=headers)
            assert answer.status_code == 403, (headers, answer.text)
        assert policy.resets == [] and policy.steps == 0
        for headers in ({}, {"Host": f"localhost:{port}"}, {"Origin": "http://localhost:3000"}):
            assert post(url, "/reset", key=None, headers=headers).status_code == 200, headers


def test_api_docs_are_off_by_default_and_behind_the_key_when_on(keyed) -> None:
    _, url = keyed
    for route in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(url + route, timeout=5).status_code == 403
        assert requests.get(url + route, headers={protocol.API_KEY_HEADER: KEY}, timeout=5).status_code == 404
    _, server = serve(docs=True)
    with server as docs_url:
        assert requests.get(docs_url + "/openapi.json", timeout=5).status_code == 403
        schema = requests.get(docs_url + "/openapi.json", headers={protocol.API_KEY_HEADER: KEY}, timeout=5)
        assert schema.status_code == 200 and "/predict" in schema.json()["paths"]
        assert (
            requests.get(docs_url + "/docs", headers={protocol.API_KEY_HEADER: KEY}, timeout=5).status_code
            == 404
        )
