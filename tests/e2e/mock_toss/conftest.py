"""The mock Toss as a real process, a tiny webhook receiver, and helpers shared by the e2e tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.mock_toss.helpers import (
    AUTH,
    SLOW_CONFIRM_SECONDS,
    WEBHOOK_SECRET,
    WebhookReceiver,
    start_receiver,
)
from tests.support.servers import RunningServer, running_server


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    hooks, server = start_receiver()
    yield hooks
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def mock_server(receiver: WebhookReceiver) -> Iterator[RunningServer]:
    args = [
        "mock_toss",
        "--time-scale",
        "0.001",
        "--slow-confirm-seconds",
        str(SLOW_CONFIRM_SECONDS),
        "--webhook-url",
        receiver.url(),
        "--webhook-secret",
        WEBHOOK_SECRET,
    ]
    with running_server(args, health_path="/_mock/health") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> None:
    # Every test starts from an empty mock (payments, journal, webhooks, chaos, clock).
    if "mock_server" in request.fixturenames:
        server: RunningServer = request.getfixturevalue("mock_server")
        httpx.post(f"{server.url}/_mock/reset", timeout=5, trust_env=False).raise_for_status()
        request.getfixturevalue("receiver").reset()


@pytest.fixture
async def toss(mock_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the mock, authenticated like a Toss client (Basic secret key)."""
    async with httpx.AsyncClient(
        base_url=mock_server.url, headers=AUTH, timeout=10, trust_env=False
    ) as client:
        yield client
