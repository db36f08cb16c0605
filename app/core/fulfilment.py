"""Fulfilment: a paid payment becomes the buyer's purchase (40 → 45 → 50), or is refunded when
the grant fails for good (45 → 51 → the automatic refund). The grant itself runs in a job
(app.provisioning), which reports back here.
"""

from __future__ import annotations

import logging
from typing import Any

from app.core.domain import Status, Transition
from app.core.ports import Clock, ProvisioningQueue, TransactionRepository
from app.core.refunds import RefundService

log = logging.getLogger("app.core")


class Fulfilment:
    def __init__(
        self,
        *,
        repository: TransactionRepository,
        queue: ProvisioningQueue,
        refunds: RefundService,
        clock: Clock,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._refunds = refunds
        self._clock = clock

    async def start_provisioning(self, transaction_id: str) -> bool:
        """40 → 45, then queue the grant — after the commit, never inside it.

        A crash or a Redis error between the two leaves a 45 without a job; the sweeper queues
        it again (enqueues are idempotent per transaction), so no grant is ever lost.
        """
        moved = await self._repo.apply(transaction_id, Transition.start_provisioning(), now=self._clock.now())
        if moved:
            await self.enqueue_grant(transaction_id)
        return moved

    async def complete_provisioning(self, transaction_id: str, details: dict[str, Any]) -> bool:
        """45 → 50: the buyer has what they paid for."""
        done = await self._repo.apply(transaction_id, Transition.provisioned(details), now=self._clock.now())
        if done:
            log.info("provisioning succeeded", extra={"transactionId": transaction_id})
        return done

    async def fail_provisioning(self, transaction_id: str, reason: str) -> bool:
        """45 → 51, then an automatic full refund (51 → 90 → 95)."""
        failed = await self._repo.apply(
            transaction_id, Transition.provisioning_failed(reason), now=self._clock.now()
        )
        if failed:
            log.error(
                "provisioning failed; refunding", extra={"transactionId": transaction_id, "reason": reason}
            )
        transaction = await self._repo.get(transaction_id)
        if transaction is not None and transaction.status == Status.PROVISION_FAILED:
            await self._refunds.start_automatic_refund(transaction)
        return failed

    async def enqueue_grant(self, transaction_id: str) -> None:
        try:
            await self._queue.enqueue_grant(transaction_id)
        except Exception:  # the sweeper re-queues it; the request must not fail for this
            log.exception(
                "could not queue the grant; the sweeper will retry", extra={"transactionId": transaction_id}
            )
