"""The server's peak memory and ``/health`` latency under the attacks of issue 17.

    python benchmarks/bench_serve_hardening.py                      # this checkout's server
    python benchmarks/bench_serve_hardening.py --repo /path/to/old --module policies.serve  # an older checkout
    python benchmarks/bench_serve_hardening.py --json hardening.json

For each attack a fresh ``python -m policies.http.serve --policy always_left`` runs on loopback (file
limit 128, as in the issue) and is attacked while ``/health`` is timed:

- ``bomb``: a 10000x10000 PNG (about 12 KB) posted as the frame, then a JPEG whose header claims
  10000x10000;
- ``large_body``: a 30 MB JSON body with the key (whose ``image`` is not a string: a 422 if parsed);
- ``half_open``: 100 connections that never finish their headers (then 200: past the file
  limit), and how many the server still holds 6 s later.

Printed per attack: the answers' statuses and times, the server's peak memory (``VmHWM`` of
``/proc/PID/status``) above its idle peak, and ``/health`` latency (median of 5 tries during the
attack; ``timeout`` after 5 s). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-hardening-key-0123456789"
HEALTH_TIMEOUT_S = 5.0


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


@contextmanager
def server(repo: Path, module: str) -> Iterator[tuple[subprocess.Popen, str]]:
    env = {**os.environ, "VLA_API_KEY": KEY, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--policy", "always_left", "--port", "0"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_limit_files,
    )
    try:
        line = proc.stdout.readline()
        if " on http://" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        yield proc, line.split(" on ")[1].split()[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def health_ms(url: str) -> float | None:
    start = time.perf_counter()
    try:
        requests.get(url + "/health", timeout=HEALTH_TIMEOUT_S).raise_for_status()
    except requests.RequestException:
        return None
    return (time.perf_counter() - start) * 1000.0


def health_during(url: str, tries: int = 5) -> str:
    times = [health_ms(url) for _ in range(tries)]
    answered = [t for t in times if t is not None]
    if not answered:
        return "timeout"
    return f"{statistics.median(answered):.1f} ms" + (
        f" ({len(answered)}/{tries} answered)" if len(answered) < tries else ""
    )


def predict(url: str, body: bytes, timeout_s: float = 120.0) -> str:
    start = time.perf_counter()
    try:
        answer = requests.post(
            url + "/predict",
            data=body,
            headers={"X-API-Key": KEY, "Content-Type": "application/json"},
            timeout=timeout_s,
        )
        status = f"{answer.status_code} ({len(answer.content)} bytes)"
    except requests.RequestException as exc:
        status = f"no answer ({type(exc).__name__})"
    return f"{status} in {time.perf_counter() - start:.2f} s"


def frame_body(image: bytes) -> bytes:
    import base64

    return json.dumps({"image": base64.b64encode(image).decode(), "instruction": "go left"}).encode()


def bomb(url: str) -> dict[str, Any]:
    png = io.BytesIO()
    Image.new("1", (10000, 10000)).save(png, format="PNG")
    jpeg = io.BytesIO()
    Image.new("RGB", (16, 16)).save(jpeg, format="JPEG")
    data = bytearray(jpeg.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (10000).to_bytes(2, "big") * 2
    results: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: results.update(png=predict(url, frame_body(png.getvalue()))))
    runner.start()
    results["health"] = health_during(url)
    runner.join()
    results["jpeg_10000x10000_header"] = predict(url, frame_body(bytes(data)))
    results["png_bytes"] = len(png.getvalue())
    return results


def large_body(url: str) -> dict[str, Any]:
    body = json.dumps({"image": ["A" * 30_000_000], "instruction": "go left"}).encode()  # 422 if parsed
    results: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: results.update(answer=predict(url, body)))
    runner.start()
    time.sleep(0.2)
    results["health"] = health_during(url)
    runner.join()
    return results


def _held(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


def half_open(url: str, count: int = 100) -> dict[str, Any]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
            sockets.append(sock)
        time.sleep(0.2)
        health = health_during(url)
        time.sleep(6.0)
        return {"health": health, "connections": count, "held_after_6s": sum(map(_held, sockets))}
    finally:
        for sock in sockets:
            sock.close()


ATTACKS: dict[str, Callable[[str], dict[str, Any]]] = {
    "bomb": bomb,
    "large_body": large_body,
    "half_open": half_open,
    "half_open_200": lambda url: half_open(url, 200),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repo", type=Path, default=REPO_ROOT, help="checkout whose server runs (default: this)"
    )
    parser.add_argument(
        "--module",
        default="policies.http.serve",
        help="the server's module (policies.serve before the restructure)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {"repo": str(args.repo)}
    for name, attack in ATTACKS.items():
        with server(args.repo, args.module) as (proc, url):
            idle = health_during(url)
            base = vm_kb(proc.pid, "VmHWM")
            outcome = attack(url)
            outcome["idle_health"] = idle
            outcome["peak_rss_mb"] = round(vm_kb(proc.pid, "VmHWM") / 1024, 1)
            outcome["peak_above_idle_mb"] = round((vm_kb(proc.pid, "VmHWM") - base) / 1024, 1)
            outcome["health_after"] = health_during(url, tries=1)
        results[name] = outcome
        print(f"{name:11s} " + ", ".join(f"{k}={v}" for k, v in outcome.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
