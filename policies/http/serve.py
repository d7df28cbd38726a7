"""``python -m policies.http.serve``: put a checkpoint or a baseline behind the team's HTTP inference protocol.

Same routes, payloads and answers as the team's FastAPI server (:mod:`policies.http.protocol`), so
their robot client (``VLA_API_SERVER``, ``VLA_API_KEY``) and ``eval.rollout --policy
http://HOST:PORT`` drive it unchanged: for example a sim-trained checkpoint on the real robot.

- ``GET /health`` -> ``status``, ``model_loaded``, ``model_name``, ``device``, ``gpu_memory``;
- ``POST /reset`` clears the policy's history: the next ``/predict`` starts an episode, calling
  ``policy.reset(instruction)`` with its instruction;
- ``POST /predict`` decodes the base64 JPEG itself (the wire did the robot client's transport,
  so a checkpoint is loaded with ``transport="none"``) and answers ``policy.act({"image": rgb,
  "instruction": ...})``; ``strategy`` is accepted and, as the team's server, answered
  ``receding_horizon``.

Bad requests (not base64, not a JPEG, missing or blank fields, a body that is not JSON) get a 4xx
with a message that never echoes the request, and the server keeps serving; a policy that raises
gets a 500 with its message. Requests without a session are served one at a time (one policy, one
history), as the team's server; requests with an ``X-Session-Id`` header each have their
session's history, and concurrent sessions are batched (``--max-batch``, ``--max-wait-ms``;
:mod:`policies.http.sessions`). The API key comes from ``VLA_API_KEY`` and is required;
``--no-auth`` is allowed on a loopback host only.
What is refused before a request reaches the policy (key, body and image size, slow or half-open
connections, browsers under ``--no-auth``) is :mod:`policies.http.guard`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from policies.http.guard import (
    MAX_INSTRUCTION_CHARS,
    GuardMiddleware,
    ImageRefused,
    ServeLimits,
    decode_frame,
    uvicorn_config,
)
from policies.http.protocol import (
    ANSWERED_STRATEGY,
    API_KEY_ENV,
    API_KEY_HEADER,
    DEFAULT_PORT,
    RESET_ANSWER,
    ROOT_ANSWER,
    SESSION_HEADER,
    is_loopback_host,
    key_problem,
)
from policies.http.sessions import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS, SessionError
from policies.options import parse_key_values
from policies.vla.transport import FrameDecodeError, from_base64

logger = logging.getLogger("policies.http.serve")

SERVABLE_BASELINES: tuple[str, ...] = ("straight", "random", "always_left")
"""Baselines that see only the observation (the expert reads the simulator's ground truth)."""


class ServeError(Exception):
    """Bad command-line input or a policy that cannot be served (one-line message)."""


class PolicyServer:
    """The state behind the routes: one policy, its pending reset, and a lock (one request at a time).

    Args:
        policy: any :class:`policies.base.Policy`; None = no model loaded (``/health`` says so,
            ``/predict`` answers 503).
        model_name: the ``model_name`` of every answer.
        device: the ``device`` of ``/health`` (default: the policy's ``settings()["device"]``, else cpu).
    """

    def __init__(self, policy: Any, model_name: str, device: str | None = None) -> None:
        self.policy = policy
        self.model_name = model_name
        if device is None:
            try:
                device = (
                    str((policy.settings() or {}).get("device") or "cpu") if policy is not None else "cpu"
                )
            except Exception:  # noqa: BLE001 - settings() is informative only
                device = "cpu"
        self.device = device
        self.lock = threading.Lock()
        self.needs_reset = True
        self.steps = 0
        self.sessions: Any = None
        """A :class:`policies.http.sessions.SessionBatcher` for ``X-Session-Id`` requests, or None."""

    @property
    def model_loaded(self) -> bool:
        return self.policy is not None

    def reset(self, session_id: str | None = None) -> None:
        if session_id is not None and self.sessions is not None:
            return self.sessions.reset(session_id)
        with self.lock:
            self.needs_reset = True
            self.steps = 0

    def predict(self, image: np.ndarray, instruction: str, session_id: str | None = None) -> np.ndarray:
        """One step; the first after a reset starts the episode with ``instruction``.

        With a ``session_id`` (and sessions on), the step is the session's, batched with others.
        """
        if session_id is not None and self.sessions is not None:
            return self.sessions.act(session_id, {"image": image, "instruction": instruction}).ravel()
        with self.lock:
            if self.needs_reset:
                self.policy.reset(instruction)
                self.needs_reset = False
            action = np.asarray(
                self.policy.act({"image": image, "instruction": instruction}), dtype=np.float32
            )
            self.steps += 1
        return action.ravel()

    def health(self) -> dict[str, Any]:
        gpu_memory = None
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            gpu_memory = {
                "allocated_gb": torch.cuda.memory_allocated() / 1024**3,
                "reserved_gb": torch.cuda.memory_reserved() / 1024**3,
                "device_name": torch.cuda.get_device_name(0),
            }
        return {
            "status": "healthy",
            "model_loaded": self.model_loaded,
            "model_name": self.model_name,
            "device": self.device,
            "gpu_memory": gpu_memory,
        } | ({"sessions": self.sessions.describe()} if self.sessions is not None else {})


class InferenceRequest(BaseModel):
    """The body of ``POST /predict``."""

    image: str
    """base64 JPEG (the robot client's 224x224 frame)."""
    instruction: str = Field(max_length=MAX_INSTRUCTION_CHARS)
    strategy: Literal["chunk_reuse", "receding_horizon"] = "chunk_reuse"

    @field_validator("instruction")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank: give the task, e.g. 'Navigate to the brown pot'")
        return value


class InferenceResponse(BaseModel):
    """The answer of ``POST /predict``."""

    action: list[float]
    latency_ms: float
    model_name: str
    strategy: str
    source: str
    buffer_status: dict


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's 422 detail without its ``input`` and ``ctx`` (which echo the request body)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def predict_answer(
    server: PolicyServer, request: InferenceRequest, limits: ServeLimits, session_id: str | None = None
) -> dict[str, Any]:
    """``/predict``'s answer: decode the frame, act, check the action (``HTTPException`` on failure)."""
    if not server.model_loaded:
        raise HTTPException(status_code=503, detail="no model loaded")
    start = time.perf_counter()
    try:
        image = decode_frame(from_base64(request.image), limits)
    except ImageRefused as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from exc
    except FrameDecodeError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    try:
        action = server.predict(image, request.instruction, session_id)
    except SessionError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - the team's server answers 500 with the message
        logger.exception("prediction failed")
        raise HTTPException(
            status_code=500, detail=f"prediction failed: {type(exc).__name__}: {exc}"
        ) from exc
    if action.shape != (2,) or not np.all(np.isfinite(action)):
        raise HTTPException(
            status_code=500, detail=f"the policy returned {action.tolist()}, not 2 finite numbers"
        )
    return {
        "action": [float(v) for v in action],
        "latency_ms": (time.perf_counter() - start) * 1000.0,
        "model_name": server.model_name,
        "strategy": ANSWERED_STRATEGY,
        "source": "inferred",
        "buffer_status": {},
    }


def create_app(
    server: PolicyServer, api_key: str | None, *, limits: ServeLimits | None = None, docs: bool = False
) -> FastAPI:
    """The FastAPI app of ``server``; ``api_key`` None serves without authentication.

    The key, the body size and, without a key, the Host and Origin are checked by
    :class:`policies.http.guard.GuardMiddleware` before any body is read. ``docs`` serves the
    OpenAPI schema at ``/openapi.json`` (behind the key); the HTML pages are never served.
    """
    limits = limits or ServeLimits()
    app = FastAPI(
        title="Mobile VLA Inference API",
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.add_middleware(GuardMiddleware, api_key=api_key, limits=limits)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_errors(exc)})

    @app.get("/")
    async def root() -> dict[str, Any]:
        return dict(ROOT_ANSWER)

    @app.get("/health")
    async def health() -> dict[str, Any]:  # on the event loop: never queued behind /predict
        return server.health()

    @app.post("/predict", response_model=InferenceResponse)
    def predict(
        request: InferenceRequest, session_id: str | None = Header(default=None, alias=SESSION_HEADER)
    ) -> dict[str, Any]:
        return predict_answer(server, request, limits, session_id)

    @app.post("/reset")
    def reset(session_id: str | None = Header(default=None, alias=SESSION_HEADER)) -> dict[str, Any]:
        try:
            server.reset(session_id)
        except SessionError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return dict(RESET_ANSWER)

    @app.get("/test")
    def test() -> dict[str, Any]:
        return {"message": "Test endpoint", "instruction": "Navigate to the brown pot", "action": [0.0, 0.0]}

    return app


# ----------------------------------------------------------------------------------------------
# Serving


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one.

    Raises:
        ServeError: the address cannot be bound (in use, not on this machine).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@contextlib.contextmanager
def running_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = 10.0,
    limits: ServeLimits | None = None,
) -> Iterator[str]:
    """Serve ``app`` from a thread of this process (tests, benchmarks); yields its base URL.

    ``limits`` sets the connection limits (header timeout, connection cap); give the app's.
    """
    import uvicorn

    sock = bind_socket(host, port)
    config = uvicorn_config(
        app, limits or ServeLimits(), log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="policies.http.serve"
    )
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the server thread did not start")
        time.sleep(0.005)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
        sock.close()


def load_checkpoint_policy(
    path: Path,
    profile: str,
    *,
    config_path: Path | None = None,
    backbone_dir: Path | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """``VLAPolicy.from_checkpoint(path, profile, transport="none", ...)``: the server decodes the JPEG itself."""
    from policies.vla.policy import VLAPolicy

    options = dict(options or {})
    if "transport" in options and options["transport"] != "none":
        raise ServeError(
            f"--policy-option transport={options['transport']}: the server receives the robot's JPEG and decodes "
            "it itself, so the policy runs with transport=none"
        )
    options["transport"] = "none"
    return VLAPolicy.from_checkpoint(
        path, profile, config_path=config_path, backbone_dir=backbone_dir, **options
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m policies.http.serve",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Serve a checkpoint or a baseline over the team's HTTP inference protocol (GET /health, POST\n"
            "/reset, POST /predict with a base64 JPEG and the instruction; X-API-Key header), so that the\n"
            "team's robot client or python -m eval.rollout --policy http://HOST:PORT can drive it.\n\n"
            f"The API key is read from {API_KEY_ENV} and is required; --no-auth is allowed on a loopback\n"
            "host only (127.0.0.1, ::1, localhost)."
        ),
        epilog=(
            "examples:\n"
            "  export VLA_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\n"
            "  python -m policies.http.serve --ckpt assets/checkpoints/reference/epoch_epoch=10-val_loss=val_loss=0.070.ckpt\n"
            "  python -m policies.http.serve --ckpt last.ckpt --profile as_trained --port 8001\n"
            "  python -m policies.http.serve --policy always_left --no-auth\n"
            "  python -m policies.http.serve --ckpt best.ckpt --host 0.0.0.0     # reachable by the robot: key required\n"
            "  python -m eval.rollout --policy http://127.0.0.1:8000     # evaluate it in the simulator\n\n"
            "exit status: 0 stopped with Ctrl-C, 2 bad input (or the checkpoint cannot be loaded, or the port\n"
            "cannot be bound)."
        ),
    )
    what = parser.add_argument_group("what to serve (one of)")
    src = what.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", type=Path, metavar="PATH", help="a Lightning checkpoint (.ckpt) of the VLA")
    src.add_argument(
        "--policy",
        metavar="NAME",
        help=f"a baseline that sees only the camera: {', '.join(SERVABLE_BASELINES)}",
    )
    what.add_argument(
        "--profile",
        default="as_deployed",
        metavar="P",
        help="checkpoint profile: as_deployed (default: the team's server preprocessing, decode and first-call "
        "zeroing) or as_trained (what the model saw in training)",
    )
    what.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="JSON",
        help="RoboVLMs config for a checkpoint without one",
    )
    what.add_argument(
        "--backbone-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="local Kosmos-2 folder of a real checkpoint",
    )
    what.add_argument(
        "--policy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a VLA policy setting, repeatable: device=cuda, dtype=bfloat16, gain=1.0 ...",
    )
    what.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default 0)")
    what.add_argument(
        "--model-name",
        default=None,
        help="model_name in the answers (default: the checkpoint's file name and profile)",
    )
    net = parser.add_argument_group("network")
    net.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    net.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)"
    )
    net.add_argument(
        "--no-auth",
        action="store_true",
        help=f"serve without an API key (loopback hosts only; ignores {API_KEY_ENV})",
    )
    net.add_argument(
        "--docs",
        action="store_true",
        help="serve the OpenAPI schema at /openapi.json, behind the key (off by default; the /docs and "
        "/redoc pages, which load scripts from a CDN, are never served)",
    )
    batching = parser.add_argument_group(f"sessions (requests with an {SESSION_HEADER} header)")
    batching.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        metavar="N",
        help=f"most concurrent sessions answered by one forward (default {DEFAULT_MAX_BATCH}); each session "
        "has its own history; requests without the header share the one history, as the team's server",
    )
    batching.add_argument(
        "--max-wait-ms",
        type=float,
        default=DEFAULT_MAX_WAIT_MS,
        metavar="MS",
        help=f"how long a session's request waits for others to batch with (default {DEFAULT_MAX_WAIT_MS:g} ms)",
    )
    net.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="uvicorn's log level (default warning; info logs every request)",
    )
    return parser


def _options(items: list[str]) -> dict[str, Any]:
    try:
        return parse_key_values(items)
    except ValueError as exc:
        raise ServeError(str(exc)) from None


def resolve_key(host: str, no_auth: bool, environ: dict[str, str] | None = None) -> str | None:
    """The API key to require, or None for ``--no-auth``.

    Raises:
        ServeError: ``--no-auth`` on a non-loopback host, or no key in ``VLA_API_KEY``, or a key
            that :func:`policies.protocol.key_problem` refuses (short, whitespace, not ASCII).
    """
    environ = os.environ if environ is None else environ
    if no_auth:
        if not is_loopback_host(host):
            raise ServeError(
                f"--no-auth is allowed on a loopback host only (127.0.0.1, ::1, localhost), not {host}; "
                f"set {API_KEY_ENV} to serve on {host}"
            )
        return None
    key = environ.get(API_KEY_ENV, "")
    if not key:
        raise ServeError(
            f"{API_KEY_ENV} is not set: the server requires an API key (export {API_KEY_ENV}=<secret>), "
            "or add --no-auth on a loopback host"
        )
    problem = key_problem(key)
    if problem is not None:
        raise ServeError(
            f"{API_KEY_ENV} {problem}; make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return key


def build_server(args: argparse.Namespace) -> PolicyServer:
    """Load what ``args`` names into a :class:`PolicyServer` (the model is loaded before serving)."""
    if args.ckpt is not None:
        from policies.vla.policy import PROFILES

        if args.profile not in PROFILES:
            raise ServeError(f"--profile {args.profile}: choose from {','.join(PROFILES)}")
        if not args.ckpt.is_file():
            raise ServeError(f"--ckpt {args.ckpt}: no such file")
        try:
            policy = load_checkpoint_policy(
                args.ckpt,
                args.profile,
                config_path=args.config,
                backbone_dir=args.backbone_dir,
                options=_options(args.policy_option),
            )
        except ServeError:
            raise
        except Exception as exc:  # noqa: BLE001 - CheckpointError, bad settings: one line
            raise ServeError(f"cannot load {args.ckpt}: {' '.join(str(exc).split())[:300]}") from exc
        return PolicyServer(policy, args.model_name or f"{args.ckpt.stem}@{args.profile}")
    if args.policy_option or args.config or args.backbone_dir:
        raise ServeError("--policy-option, --config and --backbone-dir apply to --ckpt only")
    if args.policy not in SERVABLE_BASELINES:
        why = (
            " (it reads the simulator's ground truth, which a server never sees)"
            if args.policy == "expert"
            else ""
        )
        raise ServeError(
            f"--policy {args.policy}: cannot be served{why}; choose from {','.join(SERVABLE_BASELINES)}"
        )
    from policies.scripted.baselines import make_baseline

    return PolicyServer(
        make_baseline(args.policy, None, args.seed), args.model_name or f"baseline:{args.policy}"
    )


def enable_sessions(server: PolicyServer, args: argparse.Namespace) -> None:
    """Serve ``X-Session-Id`` sessions over the policy's batched contract (a baseline: one per session)."""
    from policies.base import BatchPolicy
    from policies.http.sessions import SessionBatcher
    from policies.scripted.baselines import make_batch_baseline

    if server.policy is None:
        return
    batch = server.policy if isinstance(server.policy, BatchPolicy) else make_batch_baseline(args.policy)
    server.sessions = SessionBatcher(
        batch, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, lock=server.lock, seed=args.seed
    )


def main(argv: Sequence[str] | None = None, *, on_ready: Callable[[str], None] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if not 0 <= args.port <= 65535:
            raise ServeError(f"--port {args.port}: give 0-65535")
        if args.max_batch < 1 or not args.max_wait_ms >= 0:
            raise ServeError(
                f"--max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms:g}: give N >= 1 and MS >= 0"
            )
        key = resolve_key(args.host, args.no_auth)
        if args.no_auth and os.environ.get(API_KEY_ENV):
            logger.warning("--no-auth: %s is set but ignored", API_KEY_ENV)
        server = build_server(args)
        enable_sessions(server, args)
        sock = bind_socket(args.host, args.port)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    url = url_of(sock)
    auth = f"{API_KEY_HEADER} from {API_KEY_ENV}" if key else "none (loopback only)"
    print(
        f"serving {server.model_name} on {url} (device {server.device}; auth: {auth}); Ctrl-C stops",
        flush=True,
    )
    if on_ready is not None:
        on_ready(url)
    limits = ServeLimits()
    app = create_app(server, key, limits=limits, docs=args.docs)
    config = uvicorn_config(
        app, limits, log_level=args.log_level, access_log=args.log_level in ("debug", "info")
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])  # uvicorn re-raises Ctrl-C after a graceful shutdown
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
