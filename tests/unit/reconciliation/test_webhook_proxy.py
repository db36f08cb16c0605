"""The e2e helper tests/support/webhook_proxy.py: forwards, fails after forwarding, records."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.support.webhook_proxy import running_webhook_proxy


class _Target:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/payments/toss"


@contextlib.contextmanager
def _running_target() -> Iterator[_Target]:
    target = _Target()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            target.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = b'{"outcome":"QUEUED"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    target.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


HEADERS = {
    "Content-Type": "application/json",
    "tosspayments-webhook-transmission-id": "whtrans_aunit0001",
    "tosspayments-webhook-transmission-retried-count": "0",
    "X-Toss-Signature": "abc123",
}
BODY = b'{"eventType":"PAYMENT_STATUS_CHANGED","data":{"orderId":"TXN_unit_1","status":"DONE"}}'


def test_without_a_target_it_answers_503_and_records() -> None:
    with running_webhook_proxy() as proxy:
        response = httpx.post(proxy.url, content=BODY, headers=HEADERS, trust_env=False, timeout=5)

        assert response.status_code == 503
        [seen] = proxy.forwarded
        assert (seen.upstream_status, seen.answered_status, seen.order_id) == (None, 503, "TXN_unit_1")


def test_it_forwards_the_raw_body_and_headers_and_relays_the_answer() -> None:
    with _running_target() as target, running_webhook_proxy() as proxy:
        proxy.set_target(target.url)

        response = httpx.post(proxy.url, content=BODY, headers=HEADERS, trust_env=False, timeout=5)

        assert response.status_code == 200 and response.json() == {"outcome": "QUEUED"}
        [(path, headers, body)] = target.received
        assert (path, body) == ("/webhooks/payments/toss", BODY)
        assert headers["tosspayments-webhook-transmission-id"] == "whtrans_aunit0001"
        assert headers["x-toss-signature"] == "abc123"
        [seen] = proxy.forwarded
        assert (seen.transmission_id, seen.retried_count, seen.outcome) == ("whtrans_aunit0001", 0, "QUEUED")
        assert (seen.upstream_status, seen.answered_status) == (200, 200)


def test_fail_next_answers_500_after_forwarding_then_recovers() -> None:
    with _running_target() as target, running_webhook_proxy() as proxy:
        proxy.set_target(target.url)
        proxy.fail_next(2)

        answers = [
            httpx.post(proxy.url, content=BODY, headers=HEADERS, trust_env=False, timeout=5).status_code
            for _ in range(3)
        ]

        assert answers == [500, 500, 200]
        assert len(target.received) == 3  # every one reached the target ("crash after recording")
        assert [f.upstream_status for f in proxy.forwarded] == [200, 200, 200]
        assert proxy.failures_pending == 0
        assert len(proxy.for_order("TXN_unit_1")) == 3
        proxy.clear()
        assert proxy.forwarded == []
