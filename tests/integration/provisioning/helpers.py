"""Helpers for the provisioning integration tests: drive transactions, run workers, read state."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from arq.worker import Worker
from sqlalchemy import func, select, update

from app.core.checkout import IssueCommand
from app.core.domain import Method, ProductType, Status, Transaction
from app.core.ports import RefundRecord
from app.db import entitlements, transaction_history, transactions
from app.main import Services
from app.provisioning.jobs import WEBHOOK_QUEUE
from app.provisioning.worker import grant_worker_settings, webhook_worker_settings

SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
TOSS_AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()}
CANCEL_PATH = "/v1/payments/*"
Product = tuple[ProductType, str, int]
STUDY: Product = (ProductType.STUDY, "study_123", 50_000)
RESUME: Product = (ProductType.AI_RESUME, "resume_credit_10", 9_900)
WORKER_TIMEOUT = 30.0


# --- driving transactions --------------------------------------------------------------------------


def new_user() -> str:
    return f"prov-{secrets.token_hex(5)}"


async def pay(
    services: Services,
    toss: httpx.AsyncClient,
    product: Product = STUDY,
    *,
    user_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Transaction:
    """Issue, pay in the mock's window and deliver the success callback to Core: 10→30→40→45.

    Returns the transaction as stored afterwards (45, with its grant job queued in Redis).
    """
    product_type, product_id, amount = product
    issued = await services.checkout.issue(
        IssueCommand(
            user_id=user_id or new_user(),
            product_type=product_type,
            product_id=product_id,
            amount=amount,
            order_name=None,
            method=Method.CARD,
            metadata=metadata or {},
        )
    )
    window = await toss.post(
        "/_mock/checkout",
        json={
            "clientKey": issued.client_key,
            "orderId": issued.transaction.transaction_id,
            "amount": amount,
            "orderName": issued.transaction.order_name,
            "method": "CARD",
            "successUrl": issued.success_url,
            "failUrl": issued.fail_url,
            "cardNumber": "4330000000000005",
        },
    )
    assert window.status_code == 200, window.text
    redirect = window.json()["redirectUrl"]
    query = {k: v[-1] for k, v in parse_qs(urlsplit(redirect).query).items()}
    landed = await services.checkout.handle_success_callback(
        payment_key=query["paymentKey"], order_id=query["orderId"], amount=query["amount"]
    )
    assert not landed.failed, landed
    transaction = await services.queries.get_transaction(issued.transaction.transaction_id)
    assert transaction is not None
    assert transaction.status == Status.PROVISION_PENDING, transaction.status
    return transaction


def new_worker(services: Services, **kwargs: Any) -> Worker:
    """A burst arq worker with the production function definitions over our Services."""
    assert services.redis is not None
    return Worker(
        functions=grant_worker_settings(services.settings)["functions"],
        redis_pool=services.redis,
        burst=True,
        poll_delay=0.01,
        ctx={"deps": services.job_deps},
        handle_signals=False,
        keep_result=0,
        health_check_interval=1,  # its health-check key expires 2 s after the run
        **kwargs,
    )


def new_webhook_worker(services: Services, **kwargs: Any) -> Worker:
    """A burst arq worker of the webhook queue, with the production definitions (its own slots)."""
    assert services.redis is not None
    return Worker(
        functions=webhook_worker_settings(services.settings)["functions"],
        queue_name=WEBHOOK_QUEUE,
        max_jobs=services.settings.provisioning.webhook_max_jobs,
        redis_pool=services.redis,
        burst=True,
        poll_delay=0.01,
        ctx={"deps": services.job_deps},
        handle_signals=False,
        keep_result=0,
        health_check_interval=1,
        **kwargs,
    )


async def run_worker(services: Services, within: float = WORKER_TIMEOUT) -> Worker:
    """Run burst workers until both queues are empty (bounded), like one `payments worker`: grants
    and refunds, then webhook jobs, then the grants and refunds those queued, and so on. Fails the
    test on failed jobs; returns the first grants-and-refunds worker (its counts)."""
    assert services.redis is not None
    deadline = asyncio.get_running_loop().time() + within
    first = worker = new_worker(services)
    while True:
        await asyncio.wait_for(worker.main(), deadline - asyncio.get_running_loop().time())
        assert worker.jobs_failed == 0, f"{worker.jobs_failed} job(s) failed"
        if not await services.redis.zcard(WEBHOOK_QUEUE):
            return first
        webhooks = new_webhook_worker(services)
        await asyncio.wait_for(webhooks.main(), deadline - asyncio.get_running_loop().time())
        assert webhooks.jobs_failed == 0, f"{webhooks.jobs_failed} webhook job(s) failed"
        if not await services.redis.zcard(worker.queue_name):
            return first
        worker = new_worker(services)


async def status_of(services: Services, transaction_id: str) -> Status:
    transaction = await services.queries.get_transaction(transaction_id)
    assert transaction is not None
    return transaction.status


async def history_codes(services: Services, transaction_id: str) -> list[int]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(transaction_history.c.status)
            .where(transaction_history.c.transaction_id == transaction_id)
            .order_by(transaction_history.c.id)
        )
        return [int(r[0]) for r in rows]


async def history(services: Services, transaction_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(
                transaction_history.c.status, transaction_history.c.message, transaction_history.c.metadata
            )
            .where(transaction_history.c.transaction_id == transaction_id)
            .order_by(transaction_history.c.id)
        )
        return [(int(r[0]), str(r[1]), dict(r[2] or {})) for r in rows]


async def ledger_rows(services: Services, transaction_id: str) -> int:
    async with services.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(entitlements)
            .where(entitlements.c.transaction_id == transaction_id)
        )
    return int(count or 0)


async def age(services: Services, transaction_id: str, seconds: float) -> None:
    """Move the transaction's last change back in time (as if its job had been lost long ago)."""
    transaction = await services.queries.get_transaction(transaction_id)
    assert transaction is not None
    async with services.engine.begin() as conn:
        await conn.execute(
            update(transactions)
            .where(transactions.c.transaction_id == transaction_id)
            .values(updated_at=transaction.updated_at - timedelta(seconds=seconds))
        )


async def refund_of(services: Services, transaction_id: str) -> RefundRecord:
    """The transaction's one refund (fails the test when it has none or several)."""
    refunds = await services.refunds.list_refunds(transaction_id)
    assert len(refunds) == 1, refunds
    return refunds[0]


async def cancels(toss: httpx.AsyncClient, order_id: str) -> list[dict[str, Any]]:
    """Every cancel the mock received for this orderId (the journal), oldest first."""
    response = await toss.get(
        "/_mock/requests", params={"method": "POST", "path": CANCEL_PATH, "orderId": order_id}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    found: list[dict[str, Any]] = [r for r in answer["requests"] if r["path"].endswith("/cancel")]
    return found


async def pg_payment(toss: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    response = await toss.get(f"/v1/payments/orders/{order_id}", headers=TOSS_AUTH)
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()
    return payment


@dataclass
class Poller:
    timeout: float = 20.0
    interval: float = 0.05

    async def until(self, predicate: Callable[[], Awaitable[bool]], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not await predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {self.timeout}s waiting for {what}")
            await asyncio.sleep(self.interval)
