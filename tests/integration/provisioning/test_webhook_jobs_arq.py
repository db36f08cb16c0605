"""Webhook jobs on real arq and Redis: a queue of their own, served by workers of their own (issue 11)."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime

from sqlalchemy import select

from app.core.ports import WebhookEvent
from app.core.sql.webhook_events import SqlWebhookEventRepository
from app.db import webhook_events
from app.main import Services
from app.provisioning.jobs import WEBHOOK_QUEUE
from app.provisioning.queue import webhook_job_id

from .conftest import ServicesFactory
from .helpers import WORKER_TIMEOUT, new_webhook_worker, new_worker

GRANTS_QUEUE = "arq:queue"


async def recorded_delivery(services: Services) -> int:
    """A delivery as the receiver records it, for an order that is not ours (its job: IGNORED)."""
    order_id = "TXN_not_ours_" + secrets.token_hex(6)
    event_id, outcome = await SqlWebhookEventRepository(services.engine).record(
        WebhookEvent(
            provider="TOSS",
            transmission_id="whtrans_a" + secrets.token_hex(13),
            event_type="PAYMENT_STATUS_CHANGED",
            order_id=order_id,
            payment_key=None,
            pg_status="DONE",
            secret=None,
            retried_count=0,
            raw_body=json.dumps(
                {"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": order_id, "status": "DONE"}}
            ),
            received_at=datetime.now(UTC),
        )
    )
    assert outcome == "RECEIVED"
    return event_id


async def outcome_of(services: Services, event_id: int) -> str:
    async with services.engine.connect() as conn:
        outcome = await conn.scalar(select(webhook_events.c.outcome).where(webhook_events.c.id == event_id))
    return str(outcome)


async def test_webhook_jobs_are_queued_once_on_their_own_queue_and_run_only_by_webhook_workers(
    make_services: ServicesFactory,
) -> None:
    services = await make_services()
    assert services.redis is not None
    event_id = await recorded_delivery(services)

    # Deterministic id: queueing the same delivery again (a retried delivery) is a no-op.
    await services.queue.enqueue_webhook(event_id)
    await services.queue.enqueue_webhook(event_id)
    webhook_queue = WEBHOOK_QUEUE
    assert webhook_queue != GRANTS_QUEUE
    assert await services.redis.zrange(webhook_queue, 0, -1) == [webhook_job_id(event_id).encode()]
    assert await services.redis.zcard(GRANTS_QUEUE) == 0

    # The grants-and-refunds worker does not take it ...
    grants = new_worker(services)
    await asyncio.wait_for(grants.main(), WORKER_TIMEOUT)
    assert grants.jobs_complete == 0
    assert await outcome_of(services, event_id) == "RECEIVED"

    # ... a webhook worker, with its own slots, does.
    worker = new_webhook_worker(services)
    await asyncio.wait_for(worker.main(), WORKER_TIMEOUT)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert await outcome_of(services, event_id) == "IGNORED"
    assert await services.redis.zcard(webhook_queue) == 0
