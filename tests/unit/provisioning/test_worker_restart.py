"""A worker whose poll loop dies of WatchError (Redis dropped while arq claimed a job) is replaced.

redis-py turns a connection lost under WATCH into WatchError before any retry, and arq's claim
does not catch it there: without the restart the whole `payments worker` process exits.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from arq.worker import Worker
from redis.exceptions import WatchError

from app.provisioning.worker import _run_restarting


class FakeWorker:
    def __init__(self, outcome: BaseException | None) -> None:
        self.outcome = outcome
        self.queue_name = "arq:queue"
        self.ran = False
        self.closed = False

    async def async_run(self) -> None:
        self.ran = True
        if self.outcome is not None:
            raise self.outcome

    async def close(self) -> None:
        self.closed = True


async def test_a_worker_that_lost_redis_mid_claim_is_replaced_and_the_old_one_closed() -> None:
    dying, fresh = (
        FakeWorker(WatchError("A ConnectionError occurred on while watching one or more keys")),
        FakeWorker(None),
    )
    workers = cast(list[Worker], [dying])
    signals_taken: list[int] = []

    await _run_restarting(
        workers, 0, lambda: cast(Worker, fresh), asyncio.Event(), lambda: signals_taken.append(1)
    )

    assert workers[0] is cast(Any, fresh) and fresh.ran
    assert signals_taken == [1]  # the new Worker's own handlers are replaced by ours again
    await asyncio.sleep(0)
    assert dying.closed


async def test_a_worker_stopping_on_a_signal_is_not_restarted() -> None:
    stopping = asyncio.Event()
    stopping.set()
    workers = cast(list[Worker], [FakeWorker(WatchError("lost"))])

    def never() -> Worker:
        raise AssertionError("no new worker while stopping")

    with pytest.raises(WatchError):
        await _run_restarting(workers, 0, never, stopping, lambda: None)


async def test_other_errors_still_end_the_process() -> None:
    workers = cast(list[Worker], [FakeWorker(RuntimeError("a bug"))])
    with pytest.raises(RuntimeError):
        await _run_restarting(
            workers, 0, lambda: cast(Worker, FakeWorker(None)), asyncio.Event(), lambda: None
        )
