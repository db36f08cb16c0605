"""ProvisioningQueue adapters: arq on Redis (production) and an in-process runner (embedded)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from app.provisioning.jobs import (
    CALLBACK_JOB,
    GRANT_JOB,
    REFUND_JOB,
    WEBHOOK_JOB,
    WEBHOOK_QUEUE,
    JobDeps,
    process_webhook,
    provision_grant,
    refund_payment,
    replay_callback,
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


def callback_job_id(kind: str, query: Mapping[str, str]) -> str:
    """The same callback (a refresh, a double delivery) is replayed once."""
    digest = hashlib.sha256(json.dumps([kind, sorted(query.items())]).encode()).hexdigest()[:32]
    return f"callback:{digest}"


# arq's ArqRedis.enqueue_job, atomically in one round trip instead of three (WATCH + EXISTS, then
# MULTI/PSETEX/ZADD/EXEC): a job whose id is queued, running or has a kept result is not queued again.
# The job is arq's own (arq.jobs.serialize_job), read by an unchanged arq worker.
_ENQUEUE_ONCE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
  return 0
end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return 1
"""


class ArqProvisioningQueue:
    """Deterministic job ids: enqueueing a job that is already queued or running is a no-op."""

    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis
        self._enqueue_once = redis.register_script(_ENQUEUE_ONCE)

    async def enqueue_grant(self, transaction_id: str) -> None:
        await self._enqueue(GRANT_JOB, transaction_id, job_id=grant_job_id(transaction_id))

    async def enqueue_refund(self, refund_id: str) -> None:
        await self._enqueue(REFUND_JOB, refund_id, job_id=refund_job_id(refund_id))

    async def enqueue_webhook(self, event_id: int) -> None:
        await self._enqueue(WEBHOOK_JOB, event_id, job_id=webhook_job_id(event_id), queue=WEBHOOK_QUEUE)

    async def enqueue_callback(self, kind: str, query: Mapping[str, str]) -> None:
        # Like webhooks, callbacks come from anyone: their replays never take the grants' slots.
        await self._enqueue(
            CALLBACK_JOB, kind, dict(query), job_id=callback_job_id(kind, query), queue=WEBHOOK_QUEUE
        )

    async def _enqueue(self, function: str, *args: Any, job_id: str, queue: str | None = None) -> bool:
        """Queue `function(*args)` under `job_id` unless that id is known; True if queued now."""
        now = timestamp_ms()
        job = serialize_job(function, args, {}, None, now, serializer=self._redis.job_serializer)
        keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue or self._redis.default_queue_name]
        queued = await self._enqueue_once(keys=keys, args=[self._redis.expires_extra_ms, job, job_id, now])
        return bool(queued)


class InProcessQueue:
    """Runs the same job functions as asyncio tasks, with arq's Retry semantics and the same number
    of tries per job (`job_tries`).

    For the embedded default (REDIS_URL unset): one process, nothing survives a restart — the
    sweeper re-queues whatever a restart lost, exactly as with arq. At most `webhook_max_jobs`
    webhook jobs run at once, like the arq worker's webhook queue; grants and refunds have no cap.
    """

    def __init__(
        self,
        *,
        tries: Mapping[str, int],
        sweep_interval_seconds: float,
        webhook_max_jobs: int = 5,
    ) -> None:
        self._ctx: dict[str, Any] = {}
        self._tries = tries
        self._sweep_interval = sweep_interval_seconds
        self._webhook_slots = asyncio.Semaphore(webhook_max_jobs)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def run_jobs_with(self, deps: JobDeps) -> None:
        """What the jobs need; given by the composition root once it has built them (the use cases
        it builds need this queue first)."""
        self._ctx = {"deps": deps}

    async def enqueue_grant(self, transaction_id: str) -> None:
        self._enqueue(grant_job_id(transaction_id), provision_grant, transaction_id)

    async def enqueue_refund(self, refund_id: str) -> None:
        self._enqueue(refund_job_id(refund_id), refund_payment, refund_id)

    async def enqueue_webhook(self, event_id: int) -> None:
        self._enqueue(webhook_job_id(event_id), process_webhook, event_id, slots=self._webhook_slots)

    async def enqueue_callback(self, kind: str, query: Mapping[str, str]) -> None:
        job_id = callback_job_id(kind, query)
        self._enqueue(job_id, replay_callback, kind, dict(query), slots=self._webhook_slots)

    def _enqueue(
        self, job_id: str, function: JobFunction, *args: Any, slots: asyncio.Semaphore | None = None
    ) -> None:
        if job_id in self._tasks:
            return
        self._tasks[job_id] = asyncio.create_task(
            self._run(job_id, function, *args, slots=slots), name=job_id
        )

    async def _run(
        self, job_id: str, function: JobFunction, *args: Any, slots: asyncio.Semaphore | None = None
    ) -> None:
        try:
            job_try = 1
            max_tries = self._tries.get(function.__name__, 1)
            while job_try <= max_tries:
                try:
                    # A slot is held per attempt, not while waiting for a retry.
                    async with slots or contextlib.nullcontext():
                        await function({**self._ctx, "job_id": job_id, "job_try": job_try}, *args)
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
                await sweep(self._ctx)
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
