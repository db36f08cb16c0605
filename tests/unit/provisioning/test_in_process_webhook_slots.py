"""The embedded queue (`payments dev`, no Redis) caps webhook jobs like the arq worker does (issue 11)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from app.core.catalog import StaticProductCatalog
from app.core.checkout import Checkout
from app.core.domain import Method, ProductType, Status, Transaction
from app.core.reconciliation import PaymentReconciler
from app.core.refunds import RefundService
from app.core.sweeper import Sweeper
from app.core.webhooks import WebhookService
from app.provisioning.handlers import GrantHandler, GrantRequest, RevokeRequest
from app.provisioning.jobs import JobDeps, job_tries
from app.provisioning.queue import InProcessQueue
from tests.support.core import CoreOverFakes, build_test_core

TID = "TXN_20250314_slotsslotsslots"
SLOTS = 2
DELIVERIES = 10


@dataclass
class HeldWebhooks:
    """Every delivery's processing waits for the gate; counts how many run at once."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    peak: int = 0
    processed: list[int] = field(default_factory=list)

    async def process(self, event_id: int) -> str:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        self.processed.append(event_id)
        return "NO_CHANGE"


class Granting:
    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        return {"granted": request.transaction_id}

    async def revoke(self, request: RevokeRequest) -> dict[str, Any]:
        return {}


def provision_pending() -> Transaction:
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    return Transaction(
        provider="TOSS",
        transaction_id=TID,
        user_id="u-slots",
        product_type=ProductType.STUDY,
        product_id="study_123",
        order_name="study",
        amount=50_000,
        method=Method.CARD,
        status=Status.PROVISION_PENDING,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(minutes=30),
    )


def job_deps(core: CoreOverFakes, webhooks: HeldWebhooks) -> JobDeps:
    handler = cast(GrantHandler, Granting())
    return JobDeps(
        transactions=core.repo,
        fulfilment=core.fulfilment,
        checkout=cast(Checkout, None),
        sweeper=cast(Sweeper, None),
        refunds=cast(RefundService, None),
        catalog=StaticProductCatalog.from_file(),
        reconciler=cast(PaymentReconciler, None),
        webhooks=cast(WebhookService, webhooks),
        handlers={ProductType.STUDY: handler, ProductType.AI_RESUME: handler},
        max_tries=3,
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
        refund_retry_seconds=0.01,
        sweep_stale_after_seconds=15,
        sweep_batch_size=100,
    )


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def test_in_process_webhook_jobs_run_at_most_their_slots_at_once_and_a_grant_is_not_held() -> None:
    core, webhooks = build_test_core(), HeldWebhooks()
    await core.repo.add(provision_pending(), "seeded")
    queue = InProcessQueue(tries=job_tries(3), sweep_interval_seconds=60, webhook_max_jobs=SLOTS)
    queue.run_jobs_with(job_deps(core, webhooks))
    try:
        for event_id in range(1, DELIVERIES + 1):
            await queue.enqueue_webhook(event_id)
        await wait_until(lambda: webhooks.running == SLOTS)
        await asyncio.sleep(0.05)  # give any job beyond the slots the chance to start (it must not)
        assert (webhooks.running, webhooks.peak) == (SLOTS, SLOTS)

        await queue.enqueue_grant(TID)  # every webhook slot is held: the grant runs anyway
        await wait_until(lambda: core.repo.stored(TID).status == Status.PROVISION_SUCCESS)

        webhooks.gate.set()
        await wait_until(lambda: len(webhooks.processed) == DELIVERIES)
        assert sorted(webhooks.processed) == list(range(1, DELIVERIES + 1))
        assert webhooks.peak == SLOTS
    finally:
        await queue.close()
