"""Sessions in ``policies.http.serve``: one history per ``X-Session-Id``, concurrent sessions batched
(one act_batch), actions equal to separate policies; without the header the single history stays."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from mvla_sim.facts import INSTRUCTIONS
from policies.http import protocol
from policies.http.client import HTTPPolicy, supports_sessions
from policies.http.serve import PolicyServer, build_parser, create_app, enable_sessions, running_server
from policies.http.sessions import SessionBatcher, SessionError, check_session_id
from policies.vla.model import MobileVLAModel
from policies.vla.policy import VLAPolicy
from policies.vla.profiles import resolve

REPO_ROOT = Path(__file__).resolve().parents[3]
REFERENCE = REPO_ROOT / "assets" / "checkpoints" / "reference" / "epoch_epoch=10-val_loss=val_loss=0.070.ckpt"
KEY = "sessions-test-key-0123"
LEFT, RIGHT = INSTRUCTIONS["left"], INSTRUCTIONS["right"]
STEPS = 5


@pytest.fixture(scope="module")
def policy(tiny_config, perturb) -> VLAPolicy:
    model = perturb(
        MobileVLAModel.build(tiny_config(head_type="MobileVLALSTMDecoder"), seed=5), head_gain=30.0
    )
    return VLAPolicy(model.eval(), resolve(model.config, "as_trained", overrides={"era": "clip_normalized"}))


def episode_frames(random_frames, n: int) -> list[list[np.ndarray]]:
    return [random_frames(STEPS, seed=100 + i) for i in range(n)]


def alone(policy: VLAPolicy, frames: list[np.ndarray], instruction: str) -> np.ndarray:
    policy.reset(instruction)
    return np.stack([policy.act({"image": f, "instruction": instruction}) for f in frames])


def test_concurrent_sessions_are_batched_and_equal_separate_policies(policy, random_frames):
    frames = episode_frames(random_frames, 4)
    instructions = [LEFT, RIGHT, LEFT, RIGHT]
    expected = [alone(policy, f, i) for f, i in zip(frames, instructions, strict=True)]
    batcher = SessionBatcher(policy, max_batch=4, max_wait_ms=200)
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}
    barrier = threading.Barrier(4)

    def session(i: int) -> None:
        for f in frames[i]:
            barrier.wait()
            got[i].append(batcher.act(f"s-{i}", {"image": f, "instruction": instructions[i]}, timeout_s=60))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    for i in range(4):
        np.testing.assert_array_equal(np.stack(got[i]), expected[i])
    assert batcher.steps == 4 * STEPS and batcher.batches < batcher.steps  # steps shared forwards
    assert not np.array_equal(expected[0], expected[1])


def test_a_session_reset_starts_a_new_episode_and_ids_are_checked(policy, random_frames):
    frames = random_frames(STEPS, seed=7)
    batcher = SessionBatcher(policy, max_batch=2, max_wait_ms=0)
    first = [batcher.act("a", {"image": f, "instruction": LEFT}) for f in frames]
    batcher.reset("a")
    again = [batcher.act("a", {"image": f, "instruction": LEFT}) for f in frames]
    np.testing.assert_array_equal(np.stack(again), np.stack(first))
    np.testing.assert_array_equal(np.stack(first), alone(policy, frames, LEFT))
    for bad in ("", "a b", "x" * 129, "é"):
        with pytest.raises(SessionError, match="X-Session-Id"):
            check_session_id(bad)
    batcher.close()


def test_served_sessions_over_http_equal_one_episode_at_a_time(random_frames):
    served = VLAPolicy.from_checkpoint(REFERENCE, "as_deployed", transport="none")
    server = PolicyServer(served, "reference@as_deployed")
    args = build_parser().parse_args(["--ckpt", str(REFERENCE), "--max-batch", "2", "--max-wait-ms", "50"])
    enable_sessions(server, args)
    frames = episode_frames(random_frames, 2)
    with running_server(create_app(server, KEY)) as url:
        health = requests.get(url + "/health", timeout=5).json()
        assert supports_sessions(health) and health["sessions"]["max_batch"] == 2
        assert tuple(health)[: len(protocol.HEALTH_FIELDS)] == protocol.HEALTH_FIELDS
        one = HTTPPolicy(url, api_key=KEY, timeout_s=30)  # no header: the single history
        expected = []
        for f, instruction in zip(frames, (LEFT, RIGHT), strict=True):
            one.reset(instruction)
            expected.append(np.stack([one.act({"image": x, "instruction": instruction}) for x in f]))
        clients = [HTTPPolicy(url, api_key=KEY, timeout_s=30, sessions=True) for _ in range(2)]
        for c, instruction in zip(clients, (LEFT, RIGHT), strict=True):
            c.reset(instruction)
        assert clients[0].session_id != clients[1].session_id
        got = [[], []]
        for t in range(STEPS):  # interleaved: each session keeps its own history
            for i, c in enumerate(clients):
                got[i].append(c.act({"image": frames[i][t], "instruction": c.instruction}))
        bad = requests.post(
            url + "/reset", headers={protocol.API_KEY_HEADER: KEY, protocol.SESSION_HEADER: "a b"}, timeout=5
        )
        assert bad.status_code == 400 and "X-Session-Id" in bad.json()["detail"]
    server.sessions.close()
    for i in range(2):
        np.testing.assert_array_equal(np.stack(got[i]), expected[i])
    assert expected[0][0].tolist() == [0.0, 0.0]  # as deployed: the first answer is zeroed


def test_the_teams_server_has_no_sessions():
    assert not supports_sessions({"status": "healthy", "model_loaded": True})
    assert not supports_sessions(None)
