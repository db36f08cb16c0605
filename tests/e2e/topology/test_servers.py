"""`payments serve --server uvicorn|granian`: what the app promises whichever server runs it.

Each test runs against a real `python -m app.cli serve --server <name>` process (one worker, on
MariaDB, no Redis: the webhook limit counts in process memory). The request-head timeout, the
graceful shutdown and `--workers` are tested under both servers in test_production_hardening.py,
test_graceful_shutdown.py and test_status_stream.py.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from app.core.auth import TokenAuthority
from tests.support.servers import RunningServer, running_server

from .helpers import STUDY, WEBHOOK_PATH

MAX_BODY = 65_535  # app/http/requests.py MAX_BODY_BYTES
WEBHOOK_LIMIT = 3  # RATE_LIMIT_WEBHOOK_PER_MINUTE of the server under test
TRUSTED_PROXY = "127.0.0.20"  # Linux routes all of 127.0.0.0/8 to the loopback interface
JWT_SECRET = secrets.token_hex(32)


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def api(request: pytest.FixtureRequest, mysql_url: str) -> Iterator[RunningServer]:
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": mysql_url,
        "REDIS_URL": "",
        "JWT_SECRET": JWT_SECRET,
        "TRUSTED_PROXIES": TRUSTED_PROXY,
        "RATE_LIMIT_WEBHOOK_PER_MINUTE": str(WEBHOOK_LIMIT),
        "SERVER": "",
    }
    args = ["app.cli", "serve", "--server", request.param]
    with running_server(args, health_path="/health/ready", env=env, name=request.param) as server:
        yield server


def owner() -> dict[str, str]:
    user = f"servers-{secrets.token_hex(4)}"
    return {"Authorization": f"Bearer {TokenAuthority(JWT_SECRET).mint(user)}"}


def test_the_lifespan_started_the_app_once(api: RunningServer) -> None:
    """Its startup ran (it logs the mode) in the one worker; the shutdown is test_graceful_shutdown's."""
    log = api.log()
    assert log.count("AsyncSite Payments is running in TEST mode") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_request_ids_are_echoed_or_made(api: RunningServer) -> None:
    given = httpx.get(f"{api.url}/health/live", headers={"X-Request-Id": "checkout-42.retry_1"})
    made = httpx.get(f"{api.url}/health/live")
    refused = httpx.get(f"{api.url}/health/live", headers={"X-Request-Id": "no spaces <allowed>"})

    assert given.headers["x-request-id"] == "checkout-42.retry_1"
    for response in (made, refused):
        made_id = response.headers["x-request-id"]
        assert len(made_id) == 32 and int(made_id, 16) >= 0, made_id  # a fresh uuid4 hex


def test_a_body_over_the_limit_is_413_with_a_length_or_chunked(api: RunningServer) -> None:
    headers = {**owner(), "Content-Type": "application/json"}
    # The largest body allowed: STUDY padded with blanks to exactly MAX_BODY bytes.
    compact = json.dumps(STUDY).encode()
    at_limit = compact[:-1] + b" " * (MAX_BODY - len(compact)) + b"}"
    assert len(at_limit) == MAX_BODY
    over = at_limit[:-1] + b" }"

    def chunked(body: bytes) -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    with httpx.Client(base_url=api.url, timeout=10.0) as client:
        allowed = client.post("/api/payments/issue", content=at_limit, headers=headers)
        with_length = client.post("/api/payments/issue", content=over, headers=headers)
        streamed = client.post("/api/payments/issue", content=chunked(over), headers=headers)
        streamed_allowed = client.post("/api/payments/issue", content=chunked(at_limit), headers=headers)

    assert allowed.status_code == 201, allowed.text
    assert streamed_allowed.status_code == 201, streamed_allowed.text
    for response in (with_length, streamed):
        assert response.status_code == 413, (response.status_code, response.text)
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE", response.text
        assert response.headers.get("x-request-id"), response.headers


def post_webhook(client: httpx.Client, forwarded_for: str | None = None) -> httpx.Response:
    """An unknown order's webhook: recorded and IGNORED, no job; counted per source address."""
    headers = {
        "Content-Type": "application/json",
        "tosspayments-webhook-transmission-id": "servers-" + secrets.token_hex(8),
        "tosspayments-webhook-transmission-retried-count": "0",
        "tosspayments-webhook-transmission-time": "2026-03-01T12:00:00+09:00",
    }
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    body = {
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-03-01T12:00:00.000000",
        "data": {"orderId": "TXN_not_ours_" + secrets.token_hex(6), "status": "DONE"},
    }
    return client.post(WEBHOOK_PATH, json=body, headers=headers)


def client_from(api: RunningServer, address: str) -> httpx.Client:
    """A client whose connections come from `address`: another source, as the API sees it."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=api.url, transport=transport, timeout=10.0, trust_env=False)


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(api: RunningServer) -> None:
    # The limit counts per clock minute: start at least 10 s before the next one (≤ 10 s wait).
    if (left := 60 - time.time() % 60) < 10:
        time.sleep(left + 0.2)
    direct_peer = f"127.0.0.{secrets.randbelow(100) + 100}"  # the source: its own address
    with client_from(api, direct_peer) as direct:
        claimed = [post_webhook(direct, f"198.51.100.{n}") for n in range(WEBHOOK_LIMIT + 1)]
    with client_from(api, TRUSTED_PROXY) as proxy:
        forwarded = [post_webhook(proxy, "203.0.113.7") for _ in range(WEBHOOK_LIMIT + 1)]
        prepended = post_webhook(proxy, "192.0.2.99, 203.0.113.7")  # the right-most untrusted counts
        another = post_webhook(proxy, "203.0.113.8")

    # An untrusted peer is its own source, whatever address it claims.
    assert [r.status_code for r in claimed] == [200] * WEBHOOK_LIMIT + [429], [r.text for r in claimed]
    # Behind the trusted proxy each forwarded-for client is a source of its own.
    assert [r.status_code for r in forwarded] == [200] * WEBHOOK_LIMIT + [429], [r.text for r in forwarded]
    assert prepended.status_code == 429, prepended.text
    assert another.status_code == 200, another.text
