"""A tiny webhook forwarder between the mock Toss and our API, for e2e tests.

The mock's `--webhook-url` must be known when the mock starts, but the API's port is known only
after the stack started (and the stack needs the mock's URL first). So the mock points at this
proxy, and the test sets the proxy's target once the API is up:

    with running_webhook_proxy() as proxy:
        ... start the mock with --webhook-url proxy.url, then the stack ...
        proxy.set_target(f"{stack.api_url}/webhooks/payments/toss")

It forwards every POST (raw body and every header but hop-by-hop ones) and answers the mock with
the API's answer. `fail_next(n)` makes it answer 500 to the mock for the next n deliveries AFTER
forwarding them — the receiver recorded the delivery but the PG believes it failed (a "crash after
recording"), so the PG retries. Everything forwarded is kept in `forwarded`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

FORWARD_TIMEOUT_SECONDS = 10.0
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "te", "upgrade"}
)


@dataclass(frozen=True, slots=True)
class ForwardedDelivery:
    """One POST the proxy received and what happened to it."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    upstream_status: int | None  # what the API answered (None: not reachable or no target)
    upstream_body: bytes
    answered_status: int  # what the proxy answered to the sender (the mock)
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def transmission_id(self) -> str | None:
        return self.headers.get("tosspayments-webhook-transmission-id")

    @property
    def retried_count(self) -> int | None:
        raw = self.headers.get("tosspayments-webhook-transmission-retried-count")
        return int(raw) if raw is not None and raw.isdigit() else None

    @property
    def order_id(self) -> str | None:
        try:
            body = self.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        data = body.get("data")
        source = data if isinstance(data, dict) else body
        value = source.get("orderId")
        return value if isinstance(value, str) else None

    @property
    def outcome(self) -> str | None:
        """The API's `{"outcome": …}` answer, when it gave one."""
        try:
            body = json.loads(self.upstream_body)
        except ValueError:
            return None
        return body.get("outcome") if isinstance(body, dict) else None


class WebhookProxy:
    """State shared with the HTTP handler threads; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: str | None = None
        self._fail_remaining = 0
        self._forwarded: list[ForwardedDelivery] = []
        self._client = httpx.Client(timeout=FORWARD_TIMEOUT_SECONDS, trust_env=False)
        self.port = 0

    @property
    def url(self) -> str:
        """Where the mock should send webhooks (any path is forwarded to the target as is)."""
        return f"http://127.0.0.1:{self.port}/webhooks"

    @property
    def target(self) -> str | None:
        with self._lock:
            return self._target

    def set_target(self, url: str | None) -> None:
        """The URL every delivery is forwarded to (None: answer 503 without forwarding)."""
        with self._lock:
            self._target = url

    def fail_next(self, count: int) -> None:
        """Answer 500 to the sender for the next `count` deliveries, after forwarding them."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            self._fail_remaining = count

    @property
    def failures_pending(self) -> int:
        with self._lock:
            return self._fail_remaining

    @property
    def forwarded(self) -> list[ForwardedDelivery]:
        """Every delivery so far, oldest first (a copy)."""
        with self._lock:
            return list(self._forwarded)

    def for_order(self, order_id: str) -> list[ForwardedDelivery]:
        return [delivery for delivery in self.forwarded if delivery.order_id == order_id]

    def wait_for(
        self, predicate: Callable[[list[ForwardedDelivery]], bool], *, timeout: float = 20.0
    ) -> list[ForwardedDelivery]:
        """Block (bounded) until `predicate(forwarded)` holds; returns the deliveries either way."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.forwarded
            if predicate(seen) or time.monotonic() >= deadline:
                return seen
            time.sleep(0.05)

    def clear(self) -> None:
        with self._lock:
            self._forwarded.clear()
            self._fail_remaining = 0

    def close(self) -> None:
        self._client.close()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Forward one delivery; returns the status and body to answer the sender with."""
        arrived = time.monotonic()
        with self._lock:
            target = self._target
        upstream_status: int | None = None
        upstream_body = b""
        if target is not None:
            forward_headers = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
            try:
                response = self._client.post(target, content=body, headers=forward_headers)
                upstream_status, upstream_body = response.status_code, response.content
            except httpx.HTTPError as exc:
                upstream_body = f"proxy could not reach the target: {exc!r}".encode()
        with self._lock:
            if target is not None and self._fail_remaining > 0:
                self._fail_remaining -= 1
                answered, answer_body = 500, b'{"error":"proxy: crashed after recording"}'
            elif upstream_status is None:
                answered, answer_body = 503, upstream_body or b'{"error":"proxy: no target"}'
            else:
                answered, answer_body = upstream_status, upstream_body
            self._forwarded.append(
                ForwardedDelivery(
                    path=path,
                    headers=headers,
                    body=body,
                    upstream_status=upstream_status,
                    upstream_body=upstream_body,
                    answered_status=answered,
                    at=arrived,
                )
            )
        return answered, answer_body


def _handler_for(proxy: WebhookProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = proxy.handle(self.path, headers, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextlib.contextmanager
def running_webhook_proxy() -> Iterator[WebhookProxy]:
    """A WebhookProxy on a free 127.0.0.1 port, served by a daemon thread; shut down on exit."""
    proxy = WebhookProxy()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(proxy))
    server.daemon_threads = True
    proxy.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        proxy.close()
