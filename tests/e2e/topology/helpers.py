"""Helpers of the production-topology tests: stacks with their own mock Toss, a browserless buyer,
and direct reads of the shared MariaDB.

Every server started here listens on 127.0.0.1; every wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.servers import RunningServer, free_port, running_server
from tests.support.stack import Stack, running_stack

FRONTEND = "http://frontend.test"
SUCCESS_PAGE = f"{FRONTEND}/payment/success"
FAIL_PAGE = f"{FRONTEND}/payment/fail"
CONFIRM_PATH = "/v1/payments/confirm"
WEBHOOK_PATH = "/webhooks/payments/toss"

# The pair from Toss's public docs: the mock's defaults and the service's development defaults.
CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
TOSS_BASIC = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()

CARD_APPROVE = "4330000000000005"
CARD_REJECT_BALANCE = "4330000000000013"
CARD_SLOW_CONFIRM = "4330000000000047"

STUDY: dict[str, Any] = {"productType": "STUDY", "productId": "study_123", "amount": 50_000}
RESUME: dict[str, Any] = {"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9_900}

PENDING_CODES = frozenset({10, 30, 40, 45})  # "stuck" if a transaction is still here at the end

# A fresh connection per request. uvicorn closes keep-alive connections idle for 5 s; under load a
# pooled connection can sit idle that long and be reused just as the server closes it, which
# httpx reports as a ReadError on a request the server never saw: a client-side race that has
# nothing to do with the service under test.
NO_KEEPALIVE = httpx.Limits(max_connections=100, max_keepalive_connections=0)


def user_id(label: str) -> str:
    """A user of its own for one test: the database is shared by the whole run."""
    return f"topo-{label}-{secrets.token_hex(4)}"[:64]


@contextlib.contextmanager
def mock_toss_on(
    port: int, *, webhook_urls: Sequence[str] = (), extra_args: Sequence[str] = ()
) -> Iterator[RunningServer]:
    """The mock Toss on a chosen port, delivering webhooks to every URL given."""
    args = ["mock_toss", "--time-scale", "0.001", *extra_args]
    for url in webhook_urls:
        args += ["--webhook-url", url]
    with running_server(args, port=port, health_path="/_mock/health") as server:
        yield server


@contextlib.contextmanager
def stack_with_mock(
    *,
    mysql_url: str,
    apis: int = 1,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    mock_args: Sequence[str] = (),
) -> Iterator[tuple[Stack, RunningServer]]:
    """API replicas and workers, then a mock Toss whose webhooks land on every replica.

    The stack must know the mock's URL before it starts and the mock must know the replicas'
    ports, so the mock's port is picked first and the mock is started last.
    """
    mock_port = free_port()
    with running_stack(
        mysql_url=mysql_url,
        toss_url=f"http://127.0.0.1:{mock_port}",
        apis=apis,
        workers=workers,
        env=dict(env or {}),
    ) as stack:
        hooks = [f"{api.url}{WEBHOOK_PATH}" for api in stack.apis]
        with mock_toss_on(mock_port, webhook_urls=hooks, extra_args=mock_args) as mock:
            yield stack, mock


@dataclass(frozen=True, slots=True)
class Window:
    """What the mock's payment window answered."""

    payment_key: str | None
    redirect_url: str

    @property
    def path_and_query(self) -> str:
        parts = urlsplit(self.redirect_url)
        return f"{parts.path}?{parts.query}"


async def issue(
    api: httpx.AsyncClient,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None = None,
    *,
    base_url: str = "",
) -> dict[str, Any]:
    response = await api.post(
        f"{base_url}/api/payments/issue", json=dict(body or STUDY), headers=dict(headers)
    )
    assert response.status_code == 201, (response.status_code, response.text)
    issued: dict[str, Any] = response.json()
    return issued


async def open_window(
    mock: httpx.AsyncClient, issued: Mapping[str, Any], *, card: str = CARD_APPROVE
) -> Window:
    """The buyer in the mock's payment window (`POST /_mock/checkout`, no browser)."""
    response = await mock.post(
        "/_mock/checkout",
        json={
            "clientKey": issued["clientKey"],
            "orderId": issued["transactionId"],
            "amount": issued["amount"],
            "orderName": issued["orderName"],
            "method": issued.get("method", "CARD"),
            "successUrl": issued["successUrl"],
            "failUrl": issued["failUrl"],
            "cardNumber": card,
        },
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    return Window(payment_key=answer["paymentKey"], redirect_url=answer["redirectUrl"])


def landed_on(response: httpx.Response) -> str:
    """The frontend page (without query) a callback's 302 points at."""
    assert response.status_code == 302, (response.status_code, response.text)
    parts = urlsplit(response.headers["location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def statuses(engine: AsyncEngine, transaction_ids: Iterable[str]) -> dict[str, int]:
    """transactionId → status code, read from MariaDB directly."""
    ids = list(transaction_ids)
    if not ids:
        return {}
    query = text("SELECT transaction_id, status FROM transactions WHERE transaction_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query, {"ids": ids})).all()
    return {str(row[0]): int(row[1]) for row in rows}


async def wait_for_statuses(
    engine: AsyncEngine, transaction_ids: Iterable[str], wanted: set[int], *, within: float
) -> dict[str, int]:
    """Poll the database (every 0.25 s, at most `within` s) until every transaction is in `wanted`."""
    ids = list(transaction_ids)
    deadline = time.monotonic() + within
    while True:
        current = await statuses(engine, ids)
        if len(current) == len(ids) and all(code in wanted for code in current.values()):
            return current
        if time.monotonic() >= deadline:
            return current
        await asyncio.sleep(0.25)


async def metrics_text(api: httpx.AsyncClient) -> str:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


def metric_samples(exposition: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of `name` (exact metric name, e.g. `payments_x_total`) as (labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: list[tuple[dict[str, str], float]] = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), float(sample.value)))
    return found


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0.0 when there is none)."""
    return sum(
        value
        for sample_labels, value in metric_samples(exposition, name)
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )
