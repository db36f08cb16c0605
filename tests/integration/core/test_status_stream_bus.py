"""The status stream over the real status-change bus (Redis db 9) and the real MariaDB reads.

Two processes are simulated in one event loop, as in test_status_change_bus.py: A writes through
its own repository and announces on Redis; B only streams, with its own watchers, listener and
raw status reader. They meet through Redis and the database only.

- bus up: B's stream gets each of A's writes through B's listener's fan-out, long before a
  heartbeat or a poll could bring it;
- bus down (B's listener cannot subscribe, or loses its subscription): the stream reads MariaDB
  every `poll_seconds` and still delivers every change; once subscribed again, it is back to the bus.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.catalog import StaticProductCatalog
from app.core.domain import Status, Transition
from app.core.queries import PaymentQueries
from app.core.sql.status_reader import MySqlStatusReader, SqlStatusReader
from app.core.sql.transactions import SqlTransactionRepository
from app.core.status_cache import CachedStatusReader, StatusViewCache
from app.core.status_changes import RedisStatusChanges, StatusChangeListener
from app.core.status_stream import StatusEvent, StatusStreams, StatusWatchers, StreamConfig, StreamItem
from tests.integration.core.conftest import make_transaction
from tests.support.fakes import FakeClock, InMemoryTransactionRepository
from tests.support.servers import free_port

QUICK = 0.5  # the bus: from A's commit to B's event
HEARTBEAT = 20.0  # never reached here: only the bus or the poll can deliver


async def wait_until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[Callable[..., Redis]]:
    made: list[Redis] = []

    def make(url: str | None = None, **kwargs: object) -> Redis:
        client = Redis.from_url(url or redis_url, **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def reader_b(mysql_url: str) -> AsyncIterator[MySqlStatusReader]:
    reader = MySqlStatusReader(mysql_url, pool_size=3, recycle_seconds=3600)
    yield reader
    await reader.close()


class ProcessB:
    """The streaming process: watchers, a listener, the stream use case on its own reads."""

    def __init__(self, redis: Redis, reader: MySqlStatusReader, *, poll_seconds: float) -> None:
        self.watchers = StatusWatchers(live=False)  # as built with Redis: not subscribed yet
        self.cache = StatusViewCache(ttl_seconds=60, coherent=False)
        self.listener = StatusChangeListener(redis, self.cache, watchers=self.watchers)
        # The stream's reports need only the clock of PaymentQueries (the view comes from `reader`).
        queries = PaymentQueries(
            repository=InMemoryTransactionRepository(),
            catalog=StaticProductCatalog.from_file(),
            clock=FakeClock(),
        )
        self.streams = StatusStreams(
            reader=reader,
            queries=queries,
            watchers=self.watchers,
            config=StreamConfig(heartbeat_seconds=HEARTBEAT, max_seconds=60, poll_seconds=poll_seconds),
        )


async def write(repo: SqlTransactionRepository, tid: str, expected: Status, target: Status) -> float:
    assert await repo.apply(tid, Transition(expected, target, "stream test"), now=datetime.now(UTC))
    return time.monotonic()


async def next_event(items: AsyncIterator[StreamItem], within: float) -> tuple[StatusEvent, float]:
    async with asyncio.timeout(within):
        while True:
            item = await anext(items)
            if isinstance(item, StatusEvent):
                return item, time.monotonic()


@pytest.fixture
def repo_a(engine: AsyncEngine, clients: Callable[..., Redis]) -> SqlTransactionRepository:
    cache_a = StatusViewCache(ttl_seconds=60, coherent=True)
    return SqlTransactionRepository(
        engine,
        CachedStatusReader(SqlStatusReader(engine), cache_a),
        status_changes=RedisStatusChanges(clients(), cache_a),
    )


async def test_with_the_bus_up_every_write_of_another_process_reaches_the_stream_at_once(
    repo_a: SqlTransactionRepository, clients: Callable[..., Redis], reader_b: MySqlStatusReader
) -> None:
    b = ProcessB(clients(), reader_b, poll_seconds=30.0)  # polling would take 30 s: only the bus is quick
    b.listener.start()
    try:
        await wait_until(lambda: b.watchers.live, 5.0, "B's listener subscribed")
        transaction = make_transaction()
        await repo_a.add(transaction, "issued")
        tid = transaction.transaction_id
        first = await b.streams.current(tid)
        assert first is not None and first.sequence == 1
        items = b.streams.follow(first)
        event, _ = await next_event(items, 1.0)
        assert int(event.report.view.status) == 10

        walk = [
            Status.CREATED,
            Status.PAYMENT_PENDING,
            Status.PAYMENT_SUCCESS,
            Status.PROVISION_PENDING,
            Status.PROVISION_SUCCESS,
        ]
        for sequence, (expected, target) in enumerate(itertools.pairwise(walk), start=2):
            committed = await write(repo_a, tid, expected, target)
            event, arrived = await next_event(items, 5.0)
            assert (event.report.view.status, event.sequence) == (target, sequence)
            assert arrived - committed < QUICK, arrived - committed
        with pytest.raises(StopAsyncIteration):
            await anext(items)  # 50: the end
        assert len(b.watchers) == 0
    finally:
        await b.listener.stop()


async def test_with_the_bus_down_the_stream_reads_the_database_and_comes_back_to_the_bus(
    repo_a: SqlTransactionRepository,
    clients: Callable[..., Redis],
    reader_b: MySqlStatusReader,
    redis_url: str,
) -> None:
    # B's listener points at a port where nothing listens: it never subscribes.
    dead = clients(f"redis://127.0.0.1:{free_port()}/9", socket_connect_timeout=0.3)
    b = ProcessB(dead, reader_b, poll_seconds=0.2)
    b.listener.start()
    try:
        await asyncio.sleep(0.3)
        assert not b.watchers.live
        transaction = make_transaction()
        await repo_a.add(transaction, "issued")
        tid = transaction.transaction_id
        first = await b.streams.current(tid)
        assert first is not None
        items = b.streams.follow(first)
        await next_event(items, 1.0)

        # A's announcements reach Redis, but not B: B reads MariaDB every 0.2 s.
        committed = await write(repo_a, tid, Status.CREATED, Status.PAYMENT_PENDING)
        event, arrived = await next_event(items, 3.0)
        assert event.report.view.status == Status.PAYMENT_PENDING
        assert arrived - committed < 1.0  # the poll interval, never silence until a heartbeat
        committed = await write(repo_a, tid, Status.PAYMENT_PENDING, Status.PAYMENT_SUCCESS)
        event, arrived = await next_event(items, 3.0)
        assert event.report.view.status == Status.PAYMENT_SUCCESS and arrived - committed < 1.0
        await items.aclose()
    finally:
        await b.listener.stop()

    # Another B whose subscription is cut, then comes back (CLIENT KILL of its pubsub connection).
    name = f"itest-stream-{secrets.token_hex(4)}"
    admin = clients()
    b = ProcessB(clients(client_name=name), reader_b, poll_seconds=0.2)
    b.listener.start()
    try:
        await wait_until(lambda: b.watchers.live, 5.0, "B's listener subscribed")
        transaction = make_transaction()
        await repo_a.add(transaction, "issued")
        tid = transaction.transaction_id
        first = await b.streams.current(tid)
        assert first is not None
        items = b.streams.follow(first)
        await next_event(items, 1.0)

        ours = [c for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
        assert len(ours) == 1, ours
        assert await admin.client_kill_filter(_id=ours[0]["id"], _type="pubsub") == 1
        await wait_until(lambda: not b.watchers.live, 3.0, "the loss was noticed")
        committed = await write(repo_a, tid, Status.CREATED, Status.PAYMENT_PENDING)
        event, arrived = await next_event(items, 3.0)
        assert event.report.view.status == Status.PAYMENT_PENDING and arrived - committed < 1.0

        await wait_until(lambda: b.watchers.live, 5.0, "B subscribed again")
        committed = await write(repo_a, tid, Status.PAYMENT_PENDING, Status.PAYMENT_FAILED)
        event, arrived = await next_event(items, 3.0)
        assert event.report.view.status == Status.PAYMENT_FAILED
        with pytest.raises(StopAsyncIteration):
            await anext(items)
    finally:
        await b.listener.stop()
