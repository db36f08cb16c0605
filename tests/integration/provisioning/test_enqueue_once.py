"""ArqProvisioningQueue's one-round-trip enqueue against real Redis: the same rules as arq's own
ArqRedis.enqueue_job (a job id that is queued, running or has a kept result is not queued again),
under real concurrency, and a job an unchanged arq worker reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from arq.constants import default_queue_name, job_key_prefix, result_key_prefix
from arq.jobs import deserialize_job_raw

from app.provisioning.jobs import GRANT_JOB, WEBHOOK_JOB, WEBHOOK_QUEUE
from app.provisioning.queue import ArqProvisioningQueue, grant_job_id, webhook_job_id


@pytest.fixture
async def arq_redis(provisioning_redis_url: str) -> AsyncIterator[ArqRedis]:
    client = ArqRedis.from_url(provisioning_redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_fifty_concurrent_enqueues_of_one_grant_queue_one_job(arq_redis: ArqRedis) -> None:
    queue = ArqProvisioningQueue(arq_redis)
    # Fifty tasks on five clients, as callbacks, webhooks and sweeps of several processes racing.
    clients = [ArqRedis.from_url(_url(arq_redis)) for _ in range(5)]
    try:
        queues = [ArqProvisioningQueue(c) for c in clients]
        results = await asyncio.gather(
            *(q._enqueue(GRANT_JOB, "TXN_race", job_id=grant_job_id("TXN_race")) for q in queues * 10)
        )
    finally:
        for c in clients:
            await c.aclose()

    assert results.count(True) == 1
    assert await arq_redis.zrange(default_queue_name, 0, -1) == [grant_job_id("TXN_race").encode()]
    await queue.enqueue_grant("TXN_race")  # and once more later: still one
    assert await arq_redis.zcard(default_queue_name) == 1


async def test_the_job_is_arqs_own_with_its_expiry_and_queue(arq_redis: ArqRedis) -> None:
    queue = ArqProvisioningQueue(arq_redis)
    await queue.enqueue_webhook(42)

    raw = await arq_redis.get(job_key_prefix + webhook_job_id(42))
    assert raw is not None
    function, args, kwargs, job_try, enqueue_ms = deserialize_job_raw(raw)  # what the arq worker reads
    assert (function, args, kwargs, job_try) == (WEBHOOK_JOB, (42,), {}, None)
    assert await arq_redis.zscore(WEBHOOK_QUEUE, webhook_job_id(42)) == enqueue_ms  # due now
    assert await arq_redis.zcard(default_queue_name) == 0  # the webhooks' own queue, not the grants'
    ttl_ms = await arq_redis.pttl(job_key_prefix + webhook_job_id(42))
    assert 0 < ttl_ms <= arq_redis.expires_extra_ms


async def test_a_job_with_a_kept_result_is_not_queued_again(arq_redis: ArqRedis) -> None:
    queue = ArqProvisioningQueue(arq_redis)
    await arq_redis.set(result_key_prefix + grant_job_id("TXN_done"), b"kept")

    await queue.enqueue_grant("TXN_done")

    assert await arq_redis.exists(job_key_prefix + grant_job_id("TXN_done")) == 0
    assert await arq_redis.zcard(default_queue_name) == 0


def _url(client: ArqRedis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
