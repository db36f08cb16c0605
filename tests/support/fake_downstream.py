"""A controllable stand-in for the study and credit services that Provisioning calls.

It is a real HTTP server (uvicorn in a background thread) on a free 127.0.0.1 port, so API and
worker processes started by a test reach it exactly like the real downstream services:

    with running_fake_downstream() as fake:
        env = {"STUDY_SERVICE_URL": fake.url}
        fake.fail_next(2)             # the next two grant requests answer 503
        fake.refuse(400)              # every grant request answers 400 until fake.ok()
        fake.hold(30)                 # answer only after 30 s, or as soon as fake.release()
        fake.down()                   # answer 503 to everything; down(refuse=True) stops listening
        fake.ok()                     # back to normal (and listening again)

    fail_next, refuse and hold take an optional `key`: then they apply only to requests with that
    Idempotency-Key (our transactionId), so other traffic (another test's sweeper) cannot use them up.

Routes (like the design's services):
- `POST /api/studies/{studyId}/confirm-payment` — a study enrollment.
- `POST /api/credits/grants` — an AI-resume credit top-up.
- `POST /api/studies/{studyId}/cancel-payment` and `POST /api/credits/revocations` — taking a grant
  back after a refund; recorded like grants (keyed by our refundId), see `revocations()`.
- `GET /_health` — liveness (never affected by the modes, except when not listening).

A successful grant answers 200 `{"success": true, "memberId": ..., "message": ...}`. Grants are
keyed by the `Idempotency-Key` header: a repeated key answers 200 again with the same memberId and
counts as one grant. Every request is recorded (path, body, Idempotency-Key, answered status).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.support.servers import free_port

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STUDY_PATH = re.compile(r"^/api/studies/(?P<study_id>[^/]+)/confirm-payment$")
CREDIT_PATH = "/api/credits/grants"
# The revoke side of each grant (a refund takes back what was granted), keyed by our refundId.
STUDY_CANCEL_PATH = re.compile(r"^/api/studies/(?P<study_id>[^/]+)/cancel-payment$")
CREDIT_REVOKE_PATH = "/api/credits/revocations"
HOLD_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received, with what it answered."""

    method: str
    path: str
    body: Any
    idempotency_key: str | None
    status: int
    received_at: float  # time.monotonic() when it arrived
    answered_at: float


@dataclass(frozen=True, slots=True)
class Grant:
    """One distinct grant (per Idempotency-Key)."""

    idempotency_key: str
    member_id: str
    path: str
    body: Any
    granted_at: float


@dataclass
class _FailRule:
    key: str | None  # None: any request
    remaining: int
    status: int


@dataclass
class _State:
    fail_rules: list[_FailRule] = field(default_factory=list)
    refusals: dict[str | None, int] = field(default_factory=dict)  # key (None: any) → status
    holds: dict[str | None, float] = field(default_factory=dict)  # key (None: any) → monotonic deadline
    down: bool = False
    release_generation: int = 0  # bumped by release(): requests held before it are answered
    requests: list[RecordedRequest] = field(default_factory=list)
    grants: dict[str, Grant] = field(default_factory=dict)
    arrivals: list[tuple[str, str | None, float]] = field(default_factory=list)  # (path, key, at)


class FakeDownstream:
    """The fake service's state and controls; thread-safe (the server runs in its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._member_ids = itertools.count(1001)
        self._port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self, timeout: float = 10.0) -> None:
        """Listen on the fake's port (the same port every time) and wait until it answers."""
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        config = uvicorn.Config(
            self._asgi,
            host="127.0.0.1",
            port=self._port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            interface="asgi3",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                server.should_exit = True
                thread.join(timeout=5)
                sock.close()
                raise RuntimeError(f"the fake downstream did not start on port {self._port}")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening: connections to the port are refused until start()."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None or thread is None:
            return
        self.release()  # let held requests finish
        server.should_exit = True
        thread.join(timeout=timeout)

    # --- modes -----------------------------------------------------------------------------------

    def ok(self) -> None:
        """Normal service: every grant succeeds (and listen again if down(refuse=True) stopped it)."""
        with self._lock:
            self._state.fail_rules.clear()
            self._state.refusals.clear()
            self._state.holds.clear()
            self._state.down = False
            self._state.release_generation += 1
        self.start()

    def fail_next(self, count: int, status: int = 503, *, key: str | None = None) -> None:
        """The next `count` grant requests (with this Idempotency-Key, if given) answer `status`."""
        with self._lock:
            self._state.fail_rules.append(_FailRule(key=key, remaining=count, status=status))

    def refuse(self, status: int = 400, *, key: str | None = None) -> None:
        """Grant requests (with this Idempotency-Key, if given) answer `status` until ok()."""
        with self._lock:
            self._state.refusals[key] = status

    def hold(self, seconds: float, *, key: str | None = None) -> None:
        """Grant requests arriving from now on (with this key, if given) answer only after
        `seconds`, or at release()."""
        with self._lock:
            self._state.holds[key] = time.monotonic() + seconds

    def release(self) -> None:
        """Answer every held request now and stop holding new ones."""
        with self._lock:
            self._state.holds.clear()
            self._state.release_generation += 1

    def down(self, *, refuse: bool = False) -> None:
        """The service is down: answer 503 to everything, or (refuse=True) refuse connections."""
        with self._lock:
            self._state.down = True
        if refuse:
            self.stop()

    def reset(self) -> None:
        """Normal service and an empty record."""
        self.ok()
        with self._lock:
            self._state.requests.clear()
            self._state.grants.clear()
            self._state.arrivals.clear()

    # --- what happened ---------------------------------------------------------------------------

    def requests(self, idempotency_key: str | None = None) -> list[RecordedRequest]:
        """Answered grant requests, oldest first; only those with this Idempotency-Key if given."""
        with self._lock:
            return [
                r
                for r in self._state.requests
                if idempotency_key is None or r.idempotency_key == idempotency_key
            ]

    def arrivals(self, idempotency_key: str | None = None) -> list[tuple[str, str | None, float]]:
        """Grant requests as they arrived (also those still held): (path, Idempotency-Key, when)."""
        with self._lock:
            return [a for a in self._state.arrivals if idempotency_key is None or a[1] == idempotency_key]

    def grants(self, idempotency_key: str | None = None) -> list[Grant]:
        """Distinct grants, oldest first; only the one with this Idempotency-Key if given."""
        return [g for g in self._distinct(idempotency_key) if not _is_revoke(g.path)]

    def revocations(self, idempotency_key: str | None = None) -> list[Grant]:
        """Distinct revocations (keyed by our refundId), oldest first."""
        return [g for g in self._distinct(idempotency_key) if _is_revoke(g.path)]

    def _distinct(self, idempotency_key: str | None) -> list[Grant]:
        with self._lock:
            return [
                g
                for g in self._state.grants.values()
                if idempotency_key is None or g.idempotency_key == idempotency_key
            ]

    async def wait_for_arrival(self, idempotency_key: str, *, count: int = 1, within: float = 20.0) -> float:
        """Wait (bounded) until `count` grant requests with this key arrived; returns the last's time."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen = self.arrivals(idempotency_key)
            if len(seen) >= count:
                return seen[count - 1][2]
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{count} grant request(s) with key {idempotency_key} did not arrive in {within}s"
        )

    # --- the ASGI app ----------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        received_at = time.monotonic()
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if method == "GET" and path == "/_health":
            await _respond(send, 200, {"status": "ok"})
            return
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        key = headers.get("idempotency-key")
        status, answer = await self._answer(method, path, body, key, received_at)
        with self._lock:
            self._state.requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    body=body,
                    idempotency_key=key,
                    status=status,
                    received_at=received_at,
                    answered_at=time.monotonic(),
                )
            )
        await _respond(send, status, answer)

    async def _answer(
        self, method: str, path: str, body: Any, key: str | None, received_at: float
    ) -> tuple[int, dict[str, Any]]:
        study = STUDY_PATH.match(path) or STUDY_CANCEL_PATH.match(path)
        if method != "POST" or (study is None and path not in (CREDIT_PATH, CREDIT_REVOKE_PATH)):
            return 404, {"success": False, "message": f"no route {method} {path}"}
        with self._lock:
            state = self._state
            state.arrivals.append((path, key, received_at))
            hold_until = (
                state.holds.get(key, state.holds.get(None)) if key is not None else state.holds.get(None)
            )
            generation = state.release_generation
        if hold_until is not None:
            # Answer at the deadline or when released, whichever comes first (bounded).
            while time.monotonic() < hold_until:
                with self._lock:
                    if self._state.release_generation != generation:
                        break
                await asyncio.sleep(HOLD_POLL_SECONDS)
        with self._lock:
            state = self._state
            if state.down:
                return 503, {"success": False, "message": "the service is down"}
            for rule in state.fail_rules:
                if rule.remaining > 0 and (rule.key is None or rule.key == key):
                    rule.remaining -= 1
                    return rule.status, {"success": False, "message": "temporarily unavailable"}
            refusal = state.refusals.get(key) if key is not None else None
            if refusal is None:
                refusal = state.refusals.get(None)
            if refusal is not None:
                return refusal, {"success": False, "message": "the grant is refused"}
            if not key:
                return 400, {"success": False, "message": "Idempotency-Key is required"}
            grant = state.grants.get(key)
            if grant is None:
                grant = Grant(
                    idempotency_key=key,
                    member_id=f"member-{next(self._member_ids)}",
                    path=path,
                    body=body,
                    granted_at=time.monotonic(),
                )
                state.grants[key] = grant
                message = "enrolled" if study is not None else "credits granted"
            else:
                message = "already granted"
        return 200, {"success": True, "memberId": grant.member_id, "message": message}


def _is_revoke(path: str) -> bool:
    return path == CREDIT_REVOKE_PATH or STUDY_CANCEL_PATH.match(path) is not None


async def _respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    with contextlib.suppress(Exception):  # the client may have gone (a killed worker)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


@contextlib.contextmanager
def running_fake_downstream() -> Iterator[FakeDownstream]:
    """A started fake downstream service, stopped afterwards."""
    fake = FakeDownstream()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
