"""``policies.http.serve`` driven by the real client (``policies.http.client``) over loopback: no HTTP mocks.

Each test starts a real uvicorn server on a free loopback port (a thread of this process, or the
``python -m policies.http.serve`` command in a subprocess) and talks to it with ``requests``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from policies.http import protocol
from policies.http.client import HTTPPolicy, PreflightError, ServerFault
from policies.http.serve import PolicyServer, create_app, main, running_server
from policies.scripted.baselines import AlwaysLeft
from policies.vla.transport import client_payload_image, jpeg_round_trip

REPO_ROOT = Path(__file__).resolve().parents[3]
KEY = "test-key-0123456789"
LEFT = "Navigate around obstacles and reach the front of the beverage bottle on the left"


def frame(seed: int = 0, h: int = 144, w: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class Recorder:
    """A policy that records what the server hands it; its action counts the steps since reset."""

    name = "recorder"

    def __init__(self) -> None:
        self.resets: list[str] = []
        self.images: list[np.ndarray] = []
        self.fail_next = 0
        self.sleep_s = 0.0
        self.t = 0

    def reset(self, instruction: str) -> None:
        self.resets.append(instruction)
        self.t = 0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        time.sleep(self.sleep_s)
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("model exploded")
        self.images.append(obs["image"])
        self.t += 1
        return np.array([0.1 * self.t, -0.5], np.float32)

    def settings(self) -> dict[str, Any]:
        return {"policy": self.name, "device": "cpu"}


@pytest.fixture
def recorder_url():
    policy = Recorder()
    with running_server(create_app(PolicyServer(policy, "recorder"), KEY)) as url:
        yield policy, url


def post(url: str, route: str, key: str | None = KEY, **kw: Any) -> requests.Response:
    headers = {protocol.API_KEY_HEADER: key} if key else {}
    headers.update(kw.pop("headers", {}))
    return requests.post(url + route, headers=headers, timeout=5, **kw)


def test_routes_and_answers_are_the_team_servers(recorder_url) -> None:
    policy, url = recorder_url
    health = requests.get(url + "/health", timeout=5).json()
    assert tuple(health) == protocol.HEALTH_FIELDS
    assert health["status"] == "healthy" and health["model_loaded"] is True and health["device"] == "cpu"
    assert requests.get(url + "/", timeout=5).json() == protocol.ROOT_ANSWER
    assert post(url, "/reset").json() == protocol.RESET_ANSWER
    image = frame(1)
    answer = post(url, "/predict", json={"image": client_payload_image(image), "instruction": LEFT}).json()
    assert tuple(answer) == protocol.PREDICT_FIELDS
    assert answer["action"] == pytest.approx([0.1, -0.5]) and answer["latency_ms"] > 0
    assert (answer["strategy"], answer["source"], answer["buffer_status"]) == (
        "receding_horizon",
        "inferred",
        {},
    )
    # the first /predict after /reset started the episode with its instruction, and the policy got
    # exactly the frame the robot's JPEG decodes to (224x224 RGB)
    assert policy.resets == [LEFT]
    np.testing.assert_array_equal(policy.images[0], jpeg_round_trip(image))
    post(
        url,
        "/predict",
        json={"image": client_payload_image(image), "instruction": LEFT, "strategy": "chunk_reuse"},
    )
    assert policy.resets == [LEFT] and policy.t == 2  # no reset between steps
    post(url, "/reset")
    post(url, "/predict", json={"image": client_payload_image(image), "instruction": LEFT})
    assert policy.resets == [LEFT, LEFT] and policy.t == 1


def test_bad_requests_get_4xx_with_a_message_and_the_server_keeps_serving(recorder_url) -> None:
    policy, url = recorder_url
    good = {"image": client_payload_image(frame()), "instruction": LEFT}
    cases = [
        (post(url, "/predict", json={**good, "image": "not base64 !!"}), 400, "base64"),
        (post(url, "/predict", json={**good, "image": "aGVsbG8gd29ybGQ="}), 400, "not a JPEG"),
        (post(url, "/predict", json={"image": good["image"]}), 422, "instruction"),
        (post(url, "/predict", json={**good, "strategy": "teleport"}), 422, "strategy"),
        (post(url, "/predict", data="{not json", headers={"Content-Type": "application/json"}), 422, ""),
        (post(url, "/predict", data=str(good), headers={"Content-Type": "text/plain"}), 422, ""),
        (post(url, "/predict", key="wrong", json=good), 403, "Invalid API Key"),
        (post(url, "/predict", key=None, json=good), 403, "Invalid API Key"),
        (post(url, "/reset", key="wrong"), 403, "Invalid API Key"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        assert words in str(response.json()["detail"])
    assert policy.images == []  # nothing reached the policy
    policy.fail_next = 1
    failed = post(url, "/predict", json=good)
    assert failed.status_code == 500 and "model exploded" in failed.json()["detail"]
    assert post(url, "/predict", json=good).status_code == 200  # still serving


def test_the_client_policy_against_the_server(recorder_url) -> None:
    policy, url = recorder_url
    client = HTTPPolicy(url, api_key=KEY)
    assert client.check()["model_name"] == "recorder"
    client.reset(LEFT)
    actions = [client.act({"image": frame(i), "instruction": LEFT}) for i in range(3)]
    np.testing.assert_allclose(np.stack(actions), [[0.1, -0.5], [0.2, -0.5], [0.3, -0.5]], rtol=1e-6)
    timings = client.step_timings()
    assert len(timings["round_trip_ms"]) == len(timings["server_latency_ms"]) == 3
    assert all(
        rt >= srv for rt, srv in zip(timings["round_trip_ms"], timings["server_latency_ms"], strict=True)
    )
    settings = client.settings()
    assert settings["url"] == url and settings["api_key"] == "set" and KEY not in str(settings)

    with pytest.raises(PreflightError, match="refused the API key"):
        HTTPPolicy(url, api_key="nope-nope-nope-nope").check()
    with pytest.raises(PreflightError, match="no key was sent"):
        HTTPPolicy(url).check()


def test_client_faults_are_named(recorder_url) -> None:
    policy, url = recorder_url
    client = HTTPPolicy(url, api_key=KEY, timeout_s=0.3)
    client.reset(LEFT)
    policy.fail_next = 1
    with pytest.raises(ServerFault, match="http_500") as info:
        client.act({"image": frame(), "instruction": LEFT})
    assert info.value.failure_code == "server_fault"
    policy.fail_next = 1
    retrying = HTTPPolicy(url, api_key=KEY, retries=1)
    assert retrying.act({"image": frame(), "instruction": LEFT}).shape == (2,) and retrying.resent == 1
    policy.sleep_s = 0.6
    with pytest.raises(ServerFault, match="timeout: no answer within 0.3 s"):
        client.act({"image": frame(), "instruction": LEFT})
    policy.sleep_s = 0.0
    time.sleep(0.4)  # let the slow request finish on the server

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(ServerFault, match="connection_refused"):
        HTTPPolicy(dead).reset(LEFT)
    with pytest.raises(PreflightError, match="unreachable"):
        HTTPPolicy(dead).check()


def test_connection_reset_and_non_protocol_answers_are_faults() -> None:
    """A real socket server that hangs up, then one that answers something else than the protocol."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    replies = [None, b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nnot json"]

    def serve() -> None:
        for reply in replies:
            conn, _ = listener.accept()
            conn.recv(65536)
            if reply is None:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            else:
                conn.sendall(reply)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = HTTPPolicy(url)
        with pytest.raises(ServerFault, match="connection_reset"):
            client.reset(LEFT)
        with pytest.raises(ServerFault, match="bad_answer"):
            client.reset(LEFT)
    finally:
        thread.join(timeout=5)
        listener.close()


def test_model_not_loaded_fails_the_preflight() -> None:
    server = PolicyServer(None, "not-yet")
    with running_server(create_app(server, None)) as url:
        assert requests.get(url + "/health", timeout=5).json()["model_loaded"] is False
        with pytest.raises(PreflightError, match="model_loaded: false"):
            HTTPPolicy(url).check()


def test_cli_refuses_unsafe_or_impossible_serving(monkeypatch, capsys) -> None:
    monkeypatch.delenv(protocol.API_KEY_ENV, raising=False)
    for argv, words in (
        (["--policy", "straight"], "VLA_API_KEY is not set"),
        (["--policy", "straight", "--host", "0.0.0.0", "--no-auth"], "loopback host only"),
        (["--policy", "expert", "--no-auth"], "ground truth"),
        (["--policy", "nope", "--no-auth"], "choose from"),
        (["--ckpt", "missing.ckpt", "--no-auth"], "no such file"),
        (["--policy", "straight", "--no-auth", "--port", "70000"], "0-65535"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and words in err, err
    monkeypatch.setenv(protocol.API_KEY_ENV, KEY)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "VLA_API_KEY" in capsys.readouterr().out


def test_the_served_command_is_driven_like_the_robot(tmp_path) -> None:
    """``python -m policies.http.serve`` in its own process; the client points at it unchanged."""
    env = {**os.environ, protocol.API_KEY_ENV: KEY, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "policies.http.serve", "--policy", "always_left", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving baseline:always_left on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split(" on ")[1].split()[0]
        client = HTTPPolicy(url, api_key=KEY)
        assert client.check()["model_loaded"] is True
        client.reset(LEFT)
        served = [client.act({"image": frame(i), "instruction": LEFT}) for i in range(6)]
        local = AlwaysLeft()
        local.reset(LEFT)
        np.testing.assert_array_equal(np.stack(served), np.stack([local.act({}) for _ in range(6)]))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
