"""ProvisioningQueue adapters: arq on Redis (production) and an in-process runner (embedded)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry
from arq.connections import ArqRedis

from app.provisioning.jobs import (
    GRANT_JOB,
    REFUND_JOB,
    WEBHOOK_JOB,
    process_webhook,
    provision_grant,
    refund_payment,
    sweep,
)

log = logging.getLogger("app.provisioning")

JobFunction = Callable[..., Awaitable[Any]]


def grant_job_id(transaction_id: str) -> str:
    return f"provision:{transaction_id}"


def refund_job_id(refund_id: str) -> str:
    return f"refund:{refund_id}"


def webhook_job_id(event_id: int) -> str:
    return f"webhook:{event_id}"


class ArqProvisioningQueue:
    """Deterministic job ids: enqueueing a job that is already queued or running is a no-op."""

    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis

    async def enqueue_grant(self, transaction_id: str) -> None:
        await self._redis.enqueue_job(GRANT_JOB, transaction_id, _job_id=grant_job_id(transaction_id))

    async def enqueue_refund(self, refund_id: str) -> None:
        await self._redis.enqueue_job(REFUND_JOB, refund_id, _job_id=refund_job_id(refund_id))

    async def enqueue_webhook(self, event_id: int) -> None:
        await self._redis.enqueue_job(WEBHOOK_JOB, event_id, _job_id=webhook_job_id(event_id))


class InProcessQueue:
    """Runs the same job functions as asyncio tasks, with arq's Retry semantics.

    For the embedded default (REDIS_URL unset): one process, nothing survives a restart — the
    sweeper re-queues whatever a restart lost, exactly as with arq.
    """

    def __init__(self, ctx: dict[str, Any], *, max_tries: int, sweep_interval_seconds: float) -> None:
        self.ctx = ctx
        self._max_tries = max_tries
        self._sweep_interval = sweep_interval_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def enqueue_grant(self, transaction_id: str) -> None:
        self._enqueue(grant_job_id(transaction_id), provision_grant, transaction_id)

    async def enqueue_refund(self, refund_id: str) -> None:
        self._enqueue(refund_job_id(refund_id), refund_payment, refund_id)

    async def enqueue_webhook(self, event_id: int) -> None:
        self._enqueue(webhook_job_id(event_id), process_webhook, event_id)

    def _enqueue(self, job_id: str, function: JobFunction, *args: Any) -> None:
        if job_id in self._tasks:
            return
        self._tasks[job_id] = asyncio.create_task(self._run(job_id, function, *args), name=job_id)

    async def _run(self, job_id: str, function: JobFunction, *args: Any) -> None:
        try:
            job_try = 1
            while job_try <= self._max_tries + 1:
                try:
                    await function({**self.ctx, "job_id": job_id, "job_try": job_try}, *args)
                    return
                except Retry as retry:
                    await asyncio.sleep((retry.defer_score or 0) / 1000)
                    job_try += 1
            log.error("job %s gave up after %d tries", job_id, job_try - 1)
        except Exception:
            log.exception("job %s failed", job_id)
        finally:
            self._tasks.pop(job_id, None)

    def start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="sweeper")

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await sweep(self.ctx)
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(self._sweep_interval)

    async def stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    async def close(self) -> None:
        tasks = [*self._tasks.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
