"""Observability of the real processes: health, request ids, JSON logs without secrets, Prometheus series.

One stack (an API, a worker, a mock Toss whose webhooks reach the API) walks a set of journeys
once per module: an approved card (then refunded), a declined card, a confirm that times out and
is settled by the reconciler, and a virtual account paid by deposit (plus a forged deposit
webhook). The tests then read what the processes logged and what /metrics exposes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.servers import RunningServer
from tests.support.stack import Stack

from .helpers import (
    CARD_APPROVE,
    CARD_REJECT_BALANCE,
    CARD_SLOW_CONFIRM,
    FAIL_PAGE,
    NO_KEEPALIVE,
    RESUME,
    SECRET_KEY,
    STUDY,
    SUCCESS_PAGE,
    TOSS_BASIC,
    WEBHOOK_PATH,
    issue,
    landed_on,
    metric_samples,
    metric_value,
    metrics_text,
    open_window,
    stack_with_mock,
    user_id,
)

VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
JOURNEY_TIMEOUT = 25.0  # per journey: waiting for a transaction to reach its end state


@dataclass
class Journeys:
    """What the module's journeys did, for the tests to check against logs and metrics."""

    stack: Stack
    mock: RunningServer
    buyer: str
    token: str
    request_ids: dict[str, str] = field(default_factory=dict)  # label → X-Request-Id sent
    transactions: dict[str, str] = field(default_factory=dict)  # label → transactionId
    final: dict[str, int] = field(default_factory=dict)  # label → final status code
    va_secret: str = ""
    forged_secret: str = ""
    forged_answer: int = 0

    @property
    def api(self) -> RunningServer:
        return self.stack.apis[0]


@pytest.fixture(scope="module")
def observed_stack(mysql_url: str) -> Iterator[tuple[Stack, RunningServer]]:
    # The slow test card holds its confirm 3 s, past the stack's 1 s PG read timeout (FAST_ENV):
    # the outcome is unknown and the worker's reconciler has to settle it.
    with stack_with_mock(
        mysql_url=mysql_url, apis=1, workers=1, mock_args=["--slow-confirm-seconds", "3"]
    ) as pair:
        yield pair


async def _wait_for(
    api: httpx.AsyncClient, headers: dict[str, str], tid: str, done: set[int], *, within: float
) -> int:
    """Poll the status endpoint (bounded) until the transaction's code is in `done`."""
    deadline = time.monotonic() + within
    while True:
        answer = await api.get(f"/api/payments/{tid}/status", headers=headers)
        assert answer.status_code == 200, answer.text
        code = int(answer.json()["statusCode"])
        if code in done or time.monotonic() >= deadline:
            return code
        await asyncio.sleep(0.3)


@pytest.fixture(scope="module")
async def journeys(observed_stack: tuple[Stack, RunningServer]) -> AsyncIterator[Journeys]:
    stack, mock = observed_stack
    buyer = user_id("obs")
    token = stack.token(buyer)
    seen = Journeys(stack=stack, mock=mock, buyer=buyer, token=token)
    auth = {"Authorization": f"Bearer {token}"}

    def rid(label: str) -> dict[str, str]:
        seen.request_ids[label] = f"topo-{label}-{secrets.token_hex(6)}"
        return {"X-Request-Id": seen.request_ids[label]}

    async with (
        httpx.AsyncClient(base_url=seen.api.url, timeout=20.0, limits=NO_KEEPALIVE) as api,
        httpx.AsyncClient(base_url=mock.url, timeout=20.0, limits=NO_KEEPALIVE) as pg,
    ):
        # 1. An approved card, through the window, to 50; then refunded (→ 95 by the worker).
        issued = await issue(api, {**auth, **rid("issue")}, STUDY)
        seen.transactions["paid"] = tid = issued["transactionId"]
        window = await open_window(pg, issued, card=CARD_APPROVE)
        assert landed_on(await api.get(window.redirect_url, headers=rid("callback"))) == SUCCESS_PAGE
        seen.final["paid"] = await _wait_for(api, auth, tid, {50, 51}, within=JOURNEY_TIMEOUT)
        refund = await api.post(
            f"/api/payments/{tid}/refund", json={"reason": "topology test"}, headers={**auth, **rid("refund")}
        )
        assert refund.status_code == 202, refund.text

        # 2. A declined card (insufficient balance): 41 with PAY_004.
        issued = await issue(api, auth, STUDY)
        seen.transactions["declined"] = issued["transactionId"]
        window = await open_window(pg, issued, card=CARD_REJECT_BALANCE)
        assert landed_on(await api.get(window.redirect_url, headers=rid("declined"))) == FAIL_PAGE

        # 3. A confirm that outlives the PG timeout: stays 30, then the reconciler settles it.
        issued = await issue(api, auth, STUDY)
        seen.transactions["slow"] = issued["transactionId"]
        window = await open_window(pg, issued, card=CARD_SLOW_CONFIRM)
        await api.get(window.redirect_url, headers=rid("slow"))

        # 4. A virtual account: a forged deposit webhook first, then the real deposit.
        issued = await issue(api, auth, {**RESUME, "method": "VIRTUAL_ACCOUNT"})
        seen.transactions["va"] = va = issued["transactionId"]
        window = await open_window(pg, issued)
        assert landed_on(await api.get(window.redirect_url)) == SUCCESS_PAGE
        payment = (await pg.get(f"/v1/payments/orders/{va}", headers={"Authorization": TOSS_BASIC})).json()
        seen.va_secret = payment["secret"]
        assert seen.va_secret.startswith("ps_"), payment
        seen.forged_secret = "ps_" + secrets.token_hex(14)
        forged = await api.post(
            WEBHOOK_PATH,
            json={
                "createdAt": "2026-01-01T00:00:00.000000",
                "secret": seen.forged_secret,
                "status": "DONE",
                "transactionKey": secrets.token_hex(16),
                "orderId": va,
            },
            headers=rid("forged-webhook"),
        )
        seen.forged_answer = forged.status_code
        deposit = await pg.post(f"/_mock/virtual-accounts/{va}/deposit", json={})
        assert deposit.status_code == 200, deposit.text

        seen.final["refunded"] = await _wait_for(api, auth, tid, {95}, within=JOURNEY_TIMEOUT)
        seen.final["declined"] = await _wait_for(
            api, auth, seen.transactions["declined"], {41}, within=JOURNEY_TIMEOUT
        )
        seen.final["slow"] = await _wait_for(
            api, auth, seen.transactions["slow"], {41, 50, 51}, within=JOURNEY_TIMEOUT
        )
        seen.final["va"] = await _wait_for(api, auth, va, {41, 50, 51}, within=JOURNEY_TIMEOUT)
    yield seen


# --- health ---------------------------------------------------------------------------------------


async def test_health_live_and_ready_with_database_and_redis(
    observed_stack: tuple[Stack, RunningServer],
) -> None:
    stack, _ = observed_stack
    async with httpx.AsyncClient(base_url=stack.apis[0].url, timeout=10.0) as api:
        live = await api.get("/health/live")
        ready = await api.get("/health/ready")
    assert live.status_code == 200, live.text
    assert live.json()["status"] == "ok"
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}


# --- request ids ----------------------------------------------------------------------------------


async def test_a_sane_request_id_is_echoed_and_a_missing_or_malformed_one_replaced(
    observed_stack: tuple[Stack, RunningServer],
) -> None:
    stack, _ = observed_stack
    mine = f"client-{secrets.token_hex(8)}"
    malformed = ["x" * 200, "has spaces in it", "semi;colon", ""]
    async with httpx.AsyncClient(base_url=stack.apis[0].url, timeout=10.0) as api:
        echoed = await api.get("/api/products", headers={"X-Request-Id": mine})
        generated = [await api.get("/api/products") for _ in range(2)]
        replaced = [await api.get("/api/products", headers={"X-Request-Id": bad}) for bad in malformed]
        on_error = await api.get("/api/payments", headers={"X-Request-Id": mine + "-err"})  # no token
        on_redirect = await api.get(
            "/api/payments/callback/fail", params={"code": "X"}, headers={"X-Request-Id": mine + "-302"}
        )

    assert echoed.headers.get("x-request-id") == mine
    made = [response.headers.get("x-request-id") or "" for response in generated]
    assert all(VALID_REQUEST_ID.fullmatch(value) for value in made), made
    assert made[0] != made[1]
    for bad, response in zip(malformed, replaced, strict=True):
        value = response.headers.get("x-request-id") or ""
        assert value != bad and VALID_REQUEST_ID.fullmatch(value), (bad, value)
    assert on_error.status_code == 401 and on_error.headers.get("x-request-id") == mine + "-err"
    assert on_redirect.status_code == 302 and on_redirect.headers.get("x-request-id") == mine + "-302"


# --- logs -----------------------------------------------------------------------------------------


def _parse_log(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(JSON objects, lines that are not JSON objects) of a process log."""
    entries: list[dict[str, Any]] = []
    other: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            other.append(line)
    return entries, other


def test_api_log_lines_are_json_and_carry_the_request_id(journeys: Journeys) -> None:
    entries, other = _parse_log(journeys.api.log())
    assert not other, f"{len(other)} API log lines are not JSON, e.g.:\n" + "\n".join(other[:8])
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
    by_request: dict[str, list[str]] = {}
    for entry in entries:
        if "requestId" in entry:
            by_request.setdefault(entry["requestId"], []).append(entry["message"])
    # Lines logged while serving a request carry that request's id.
    assert by_request.get(journeys.request_ids["issue"]), by_request
    assert by_request.get(journeys.request_ids["callback"]), by_request
    assert any("succeeded" in m for m in by_request[journeys.request_ids["callback"]]), by_request


def test_worker_log_lines_are_json(journeys: Journeys) -> None:
    entries, other = _parse_log(journeys.stack.workers[0].log())
    assert entries
    assert not other, f"{len(other)} worker log lines are not JSON, e.g.:\n" + "\n".join(other[:8])


def test_no_secret_card_number_or_token_reaches_any_log(journeys: Journeys) -> None:
    assert journeys.forged_answer in (200, 401), journeys.forged_answer
    assert journeys.final["va"] == 50, journeys.final  # the real deposit secret went through
    forbidden = {
        "card number": CARD_APPROVE,
        "declined card number": CARD_REJECT_BALANCE,
        "bearer token": journeys.token,
        "JWT signature": journeys.token.rsplit(".", 1)[-1],
        "JWT secret": journeys.stack.jwt_secret,
        "Toss secret key": SECRET_KEY,
        "Toss Basic credentials": TOSS_BASIC.split()[1],
        "Toss Basic credentials (unpadded)": base64.b64encode(f"{SECRET_KEY}:".encode()).decode().rstrip("="),
        "virtual-account secret": journeys.va_secret,
        "forged virtual-account secret": journeys.forged_secret,
    }
    logs = {"api": journeys.api.log(), "worker": journeys.stack.workers[0].log()}
    leaks = [
        f"{what} ({value[:12]}…) in the {name} log"
        for name, text in logs.items()
        for what, value in forbidden.items()
        if value and value in text
    ]
    assert not leaks, leaks


# --- metrics --------------------------------------------------------------------------------------


async def test_api_metrics_expose_the_api_series(journeys: Journeys) -> None:
    assert journeys.final["paid"] == 50 and journeys.final["declined"] == 41, journeys.final
    async with httpx.AsyncClient(base_url=journeys.api.url, timeout=10.0) as api:
        exposition = await metrics_text(api)
        response = await api.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-type"].count("charset") == 1, response.headers["content-type"]

    wanted = {
        "payments_transactions_created_total{product_type=STUDY}": metric_value(
            exposition, "payments_transactions_created_total", product_type="STUDY"
        ),
        "payments_payments_succeeded_total": metric_value(exposition, "payments_payments_succeeded_total"),
        "payments_payments_failed_total{code=PAY_004}": metric_value(
            exposition, "payments_payments_failed_total", code="PAY_004"
        ),
        "payments_payment_duration_seconds_count": metric_value(
            exposition, "payments_payment_duration_seconds_count"
        ),
        "payments_refunds_total{stage=requested}": metric_value(
            exposition, "payments_refunds_total", stage="requested"
        ),
        "payments_webhook_deliveries_total": metric_value(exposition, "payments_webhook_deliveries_total"),
        "payments_status_polls_total{settled=true}": metric_value(
            exposition, "payments_status_polls_total", settled="true"
        ),
        "payments_status_polls_total{settled=false}": metric_value(
            exposition, "payments_status_polls_total", settled="false"
        ),
        "payments_pg_request_seconds_count{endpoint=confirm}": metric_value(
            exposition, "payments_pg_request_seconds_count", endpoint="confirm"
        ),
    }
    missing = {name: value for name, value in wanted.items() if value < 1}
    assert not missing, f"series without samples after the journeys: {missing}"
    assert metric_value(exposition, "payments_transactions_created_total") >= 4
    assert metric_samples(exposition, "payments_payment_duration_seconds_bucket")


async def test_worker_series_are_scrapeable_on_metrics(journeys: Journeys) -> None:
    """Provisioning, refund completion and reconciliation run in the worker process; the service's
    only /metrics endpoint (the API's) must expose them too, or nobody can scrape them."""
    assert journeys.final["paid"] == 50, journeys.final
    assert journeys.final["refunded"] == 95, journeys.final
    async with httpx.AsyncClient(base_url=journeys.api.url, timeout=10.0) as api:
        exposition = await metrics_text(api)
    wanted = {
        "payments_provisioning_outcomes_total{outcome=granted}": metric_value(
            exposition, "payments_provisioning_outcomes_total", outcome="granted"
        ),
        "payments_refunds_total{stage=refunded}": metric_value(
            exposition, "payments_refunds_total", stage="refunded"
        ),
        "payments_reconciliation_actions_total": metric_value(
            exposition, "payments_reconciliation_actions_total"
        ),
    }
    missing = {name: value for name, value in wanted.items() if value < 1}
    has_retries_series = bool(metric_samples(exposition, "payments_provisioning_retries_total"))
    worker_log = journeys.stack.workers[0].log()
    evidence = {
        "grants": worker_log.count("provision_grant ● 'granted'"),
        "refunds": worker_log.count("refund_payment ● 'REFUNDED'"),
        "sweeps that reconciled": worker_log.count('"reconcile:'),
    }
    assert not missing and has_retries_series, (
        f"worker-recorded series missing from the API's /metrics (journeys ended at {journeys.final}; "
        f"the worker's own log shows {evidence}): {missing}; "
        f"payments_provisioning_retries_total present: {has_retries_series}"
    )
