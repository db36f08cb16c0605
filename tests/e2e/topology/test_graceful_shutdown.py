"""Graceful shutdown: SIGTERM to `payments serve` while a slow success callback is in flight.

The PG holds the confirm for 2 s (the mock's slow test card). The API receives SIGTERM once the
confirm has reached the PG; it must still finish that request (302 to the success page, the
payment recorded) and then exit cleanly — with one uvicorn process, and with `--workers 2` as
compose.yaml runs it.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.auth import TokenAuthority
from tests.support.servers import RunningServer, free_port, start_server
from tests.support.stack import FAST_ENV

from .helpers import (
    CARD_SLOW_CONFIRM,
    CONFIRM_PATH,
    SUCCESS_PAGE,
    issue,
    landed_on,
    mock_toss_on,
    open_window,
    statuses,
    user_id,
)

SLOW_CONFIRM_SECONDS = 2.0


@pytest.fixture(scope="module")
def slow_pg() -> Iterator[RunningServer]:
    with mock_toss_on(free_port(), extra_args=["--slow-confirm-seconds", str(SLOW_CONFIRM_SECONDS)]) as mock:
        yield mock


@pytest.mark.parametrize("uvicorn_workers", [1, 2])
async def test_sigterm_lets_the_in_flight_callback_finish(
    uvicorn_workers: int, mysql_url: str, redis_url: str, slow_pg: RunningServer
) -> None:
    port = free_port()
    jwt_secret = secrets.token_hex(16)
    env = {
        **FAST_ENV,
        "TOSS_READ_TIMEOUT_SECONDS": "10",  # longer than the slow confirm: the request just waits
        "DATABASE_URL": mysql_url,
        "REDIS_URL": redis_url,
        "TOSS_API_URL": slow_pg.url,
        "JWT_SECRET": jwt_secret,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "FRONTEND_BASE_URL": "http://frontend.test",
    }
    api = start_server(
        ["app.cli", "serve", "--port", str(port), "--workers", str(uvicorn_workers)],
        port=port,
        health_path="/health/ready",
        env=env,
    )
    engine = create_async_engine(mysql_url, pool_size=1)
    try:
        user = user_id("sigterm")
        headers = {"Authorization": f"Bearer {TokenAuthority(jwt_secret).mint(user)}"}
        async with (
            httpx.AsyncClient(base_url=api.url, timeout=30.0) as http,
            httpx.AsyncClient(base_url=slow_pg.url, timeout=10.0) as pg,
        ):
            issued = await issue(http, headers)
            tid = issued["transactionId"]
            window = await open_window(pg, issued, card=CARD_SLOW_CONFIRM)
            callback = asyncio.create_task(http.get(window.redirect_url))

            # Wait (bounded) until the confirm is at the PG and unanswered: the request is in flight.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                journal = await pg.get(
                    "/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH, "orderId": tid}
                )
                if journal.json()["count"]:
                    break
                await asyncio.sleep(0.05)
            assert journal.json()["count"] == 1, journal.text
            assert journal.json()["requests"][0]["status"] is None  # not answered yet
            assert not callback.done()

            api.process.terminate()  # SIGTERM
            # Bounded by uvicorn's shutdown grace (timeout_graceful_shutdown=20 in app/cli.py): past
            # it the request would be cancelled, not answered.
            response = await asyncio.wait_for(callback, timeout=20)
            answered = await pg.get(
                "/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH, "orderId": tid}
            )

        exit_code = await asyncio.to_thread(api.process.wait, 25)
        log = api.log()
        assert landed_on(response) == SUCCESS_PAGE, (response.status_code, response.text, log[-2000:])
        # The PG answered the confirm after the SIGTERM, and the request in flight used that answer.
        assert [c["status"] for c in answered.json()["requests"]] == [200], answered.text
        # uvicorn finishes the in-flight requests, then re-raises the SIGTERM it captured (so a lone
        # server reports -15); the --workers supervisor exits 0 once its children are done.
        assert exit_code in (0, -signal.SIGTERM), (exit_code, log[-3000:])
        assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]
        recorded = await statuses(engine, [tid])
        assert recorded[tid] in (40, 45), recorded  # confirmed and stored before the process left
    finally:
        await asyncio.to_thread(api.stop)  # SIGTERM (lets uvicorn stop its children), then SIGKILL
        await engine.dispose()
