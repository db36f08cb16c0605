"""A callback answers within 15 s even when Toss hangs (real API process with the default PG timeouts:
10 s read × 3 attempts would take over a minute), then reconciliation finishes the payment."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import RunningServer, running_server
from tests.support.stack import Stack, running_stack

from .helpers import CARD_APPROVE, page_redirect

pytestmark = pytest.mark.slow

CALLBACK_LIMIT_SECONDS = 15.0
DEFAULT_PG_TIMEOUTS = {
    "TOSS_READ_TIMEOUT_SECONDS": "10",
    "TOSS_MAX_ATTEMPTS": "3",
    "TOSS_RETRY_DELAY_SECONDS": "1",
}


@pytest.fixture(scope="module")
def real_time_mock() -> Iterator[RunningServer]:
    """A mock of our own on Toss's real clock: an authenticated payment stays confirmable 10 min."""
    with running_server(["mock_toss"], health_path="/_mock/health") as server:
        yield server


@pytest.fixture(scope="module")
def stack(mysql_url: str, real_time_mock: RunningServer) -> Iterator[Stack]:
    with running_stack(
        mysql_url=mysql_url, toss_url=real_time_mock.url, workers=1, env=DEFAULT_PG_TIMEOUTS
    ) as s:
        yield s


async def test_a_success_callback_answers_within_15_s_when_toss_hangs(
    stack: Stack, real_time_mock: RunningServer
) -> None:
    user = f"e2e-hang-{secrets.token_hex(4)}"
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
        httpx.AsyncClient(base_url=real_time_mock.url, timeout=60) as mock,
    ):
        issued = (
            await api.post(
                "/api/payments/issue",
                json={"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9_900},
                headers=stack.headers(user),
            )
        ).json()
        tid = issued["transactionId"]
        window = await mock.post(
            "/_mock/checkout",
            json={
                "clientKey": issued["clientKey"],
                "orderId": tid,
                "amount": 9_900,
                "orderName": issued["orderName"],
                "method": "CARD",
                "successUrl": issued["successUrl"],
                "failUrl": issued["failUrl"],
                "cardNumber": CARD_APPROVE,
            },
        )
        assert window.status_code == 200, window.text
        hang = {"latencyMs": 20_000}  # longer than the budget; the held confirm approves at 20 s
        chaos = await mock.put("/_mock/chaos", json={"seed": 1, "routes": {"confirm": hang, "lookup": hang}})
        assert chaos.status_code == 200, chaos.text
        try:
            started = time.monotonic()
            callback = httpx.URL(window.json()["redirectUrl"])
            landed = page_redirect(
                await api.get(callback.path, params=callback.params, follow_redirects=False)
            )
            elapsed = time.monotonic() - started
        finally:
            await mock.delete("/_mock/chaos")

        assert elapsed < CALLBACK_LIMIT_SECONDS, elapsed
        assert landed.is_success and landed.params == {"transactionId": tid}  # the "confirming" page
        status = (await api.get(f"/api/payments/{tid}/status", headers=stack.headers(user))).json()
        assert (status["statusCode"], status["needsPolling"]) == (30, True)
        detail = (await api.get(f"/api/payments/{tid}", headers=stack.headers(user))).json()
        assert any("did not answer the confirm in time" in h["message"] for h in detail["history"])

        # The PG answers again: reconciliation confirms with the PG's own key, charged once.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = (await api.get(f"/api/payments/{tid}/status", headers=stack.headers(user))).json()
            if status["statusCode"] in (45, 50):
                break
            await asyncio.sleep(0.3)
        assert status["statusCode"] in (45, 50), status
        pg = (
            await mock.get(
                "/_mock/requests", params={"method": "POST", "path": "/v1/payments/confirm", "orderId": tid}
            )
        ).json()["requests"]
        assert len({r["idempotencyKey"] for r in pg}) == 1, pg
        print(f"\ncallback answered in {elapsed:.1f} s while Toss hung")
