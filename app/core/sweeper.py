"""The sweeper: expiry of unpaid transactions, and nothing lost between a commit and an enqueue.

Every step after a commit (queueing a grant, starting the automatic refund, queueing a refund's
job) may be cut short by a crash or a Redis error; the sweeper finds such work by its age and
does it again. Each step is idempotent, so doing it twice is harmless.
"""

from __future__ import annotations

from datetime import timedelta

from app.core.domain import Status, Transition
from app.core.fulfilment import Fulfilment
from app.core.payment_metrics import count_payment_outcome
from app.core.ports import Clock, TransactionRepository
from app.core.refunds import RefundService


class Sweeper:
    def __init__(
        self,
        *,
        repository: TransactionRepository,
        fulfilment: Fulfilment,
        refunds: RefundService,
        clock: Clock,
    ) -> None:
        self._repo = repository
        self._fulfilment = fulfilment
        self._refunds = refunds
        self._clock = clock

    async def expire_stale(self, *, limit: int = 100) -> int:
        """CREATED transactions past expiresAt → 41 PAY_002. Returns how many expired."""
        now = self._clock.now()
        expired = 0
        expiry = Transition.expire()
        for tid in await self._repo.find_expired_created(now, limit):
            if await self._repo.apply(tid, expiry, now=now):
                count_payment_outcome(expiry)
                expired += 1
        return expired

    async def sweep(self, *, stale_after_seconds: float, batch_size: int = 100) -> dict[str, int]:
        """Expire stale CREATED, and re-queue 40/45/51/90 work whose job may have been lost."""
        now = self._clock.now()
        before = now - timedelta(seconds=stale_after_seconds)
        counts = {
            "expired": await self.expire_stale(limit=batch_size),
            "provisioning": 0,
            "grants": 0,
            "refunds": 0,
        }
        for tid in await self._repo.find_stale(Status.PAYMENT_SUCCESS, before, batch_size):
            counts["provisioning"] += int(await self._fulfilment.start_provisioning(tid))
        for tid in await self._repo.find_stale(Status.PROVISION_PENDING, before, batch_size):
            await self._fulfilment.enqueue_grant(tid)
            counts["grants"] += 1
        for tid in await self._repo.find_stale(Status.PROVISION_FAILED, before, batch_size):
            # 45→51 commits before the automatic refund starts: finish what a crash cut short.
            failed = await self._repo.get(tid)
            if failed is not None and not await self._refunds.list_refunds(tid):
                await self._refunds.start_automatic_refund(failed)
                counts["refunds"] += 1
        counts["refunds"] += await self._refunds.requeue_open(before, batch_size)
        return counts
