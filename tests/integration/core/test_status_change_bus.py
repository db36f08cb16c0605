"""The status-change bus against real Redis (db 9) and, for the race, the real MariaDB repository.

Two API processes are simulated in one event loop: each has its own StatusViewCache and its own
Redis clients, exactly as two processes would, and they only meet through Redis and the database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.domain import Status, Transition
from app.core.ports import StatusView
from app.core.sql.status_reader import MySqlStatusReader, SqlStatusReader
from app.core.sql.transactions import SqlTransactionRepository
from app.core.status_cache import CachedStatusReader, StatusViewCache
from app.core.status_changes import RedisStatusChanges, StatusChangeListener, status_channel
from tests.integration.core.conftest import make_transaction
from tests.support.servers import free_port
from tests.support.views import status_view

WALK = (
    Status.CREATED,
    Status.PAYMENT_PENDING,
    Status.PAYMENT_SUCCESS,
    Status.PROVISION_PENDING,
    Status.PROVISION_SUCCESS,
)


def bus_events(event: str) -> float:
    return REGISTRY.get_sample_value("payments_status_change_bus_total", {"event": event}) or 0.0


async def wait_until(predicate: Callable[[], bool], within: float, what: str) -> None:
    """Poll `predicate` until it holds; fail after `within` seconds."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.002)


def unique_id() -> str:
    return f"TXN_bus_{secrets.token_hex(8)}"


def view(transaction_id: str, status: Status = Status.PAYMENT_PENDING) -> StatusView:
    return status_view(transaction_id, status)


class RecordingCache(StatusViewCache):
    """The real cache, remembering every change of coherence (the listener's window is short)
    and every invalidation it received (to tell a lost message from a stale store on failure)."""

    def __init__(self, *, ttl_seconds: float, coherent: bool) -> None:
        super().__init__(ttl_seconds=ttl_seconds, coherent=coherent)
        self.coherence_changes: list[bool] = []
        self.invalidated: Counter[str] = Counter()

    def set_coherent(self, coherent: bool) -> None:
        self.coherence_changes.append(coherent)
        super().set_coherent(coherent)

    def invalidate(self, transaction_id: str) -> None:
        self.invalidated[transaction_id] += 1
        super().invalidate(transaction_id)


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[Callable[..., Redis]]:
    """Makes Redis clients (one per simulated process) and closes them all at the end."""
    made: list[Redis] = []

    def make(url: str | None = None, **kwargs: object) -> Redis:
        client = Redis.from_url(url or redis_url, **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def listeners(clients: Callable[..., Redis]) -> AsyncIterator[list[StatusChangeListener]]:
    """Listeners started by a test; stopped at the end whatever happened (before their clients close)."""
    started: list[StatusChangeListener] = []
    yield started
    for listener in started:
        await listener.stop()


async def start_listener(
    listeners: list[StatusChangeListener], redis: Redis, cache: StatusViewCache
) -> StatusChangeListener:
    listener = StatusChangeListener(redis, cache)
    listeners.append(listener)
    listener.start()
    await wait_until(lambda: cache.coherent, 5.0, "the listener subscribed")
    return listener


# --- a. two processes ------------------------------------------------------------------------------


async def test_an_announcement_reaches_the_other_process(
    clients: Callable[..., Redis], listeners: list[StatusChangeListener]
) -> None:
    cache_a = StatusViewCache(ttl_seconds=60, coherent=True)
    changes_a = RedisStatusChanges(clients(), cache_a)
    cache_b = StatusViewCache(ttl_seconds=60, coherent=False)  # as built with Redis: not yet subscribed
    await start_listener(listeners, clients(), cache_b)

    tid, other = unique_id(), unique_id()
    assert cache_a.put(view(tid), cache_a.ticket())
    assert cache_b.put(view(tid), cache_b.ticket())
    assert cache_b.put(view(other), cache_b.ticket())
    ticket_b = cache_b.ticket()  # a poll in B that started reading before the write's announcement

    await changes_a.announce(tid)

    assert cache_a.get(tid) is None  # A's own cache at once, before anything travels
    # Only the announcement can drop it: B's view would live 60 s (a bounded wait, not a speed check).
    await wait_until(lambda: cache_b.get(tid) is None, 5.0, "B dropped the announced view")
    assert cache_b.put(view(tid), ticket_b) is False  # B's ticket taken before the message is void
    assert cache_b.get(tid) is None
    assert cache_b.get(other) is not None  # only the announced transaction is dropped
    assert cache_b.coherent
    assert cache_b.put(view(tid), cache_b.ticket()) is True  # a read after the message may be kept


async def test_the_channel_is_per_redis_database(clients: Callable[..., Redis], redis_url: str) -> None:
    assert status_channel(clients()) == "payments:status-changed:db9"
    assert status_channel(clients(redis_url.rsplit("/", 1)[0] + "/3")) == "payments:status-changed:db3"


# --- b. subscription loss --------------------------------------------------------------------------


async def test_a_lost_subscription_makes_the_cache_incoherent_until_it_is_back(
    clients: Callable[..., Redis],
    listeners: list[StatusChangeListener],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"itest-bus-{secrets.token_hex(4)}"
    admin = clients()
    cache_b = RecordingCache(ttl_seconds=60, coherent=False)
    await start_listener(listeners, clients(client_name=name), cache_b)
    changes_a = RedisStatusChanges(clients(), StatusViewCache(ttl_seconds=60, coherent=True))

    tid = unique_id()
    assert cache_b.put(view(tid), cache_b.ticket())
    ticket = cache_b.ticket()
    lost_before = bus_events("subscription_lost")
    subscribed_before = bus_events("subscribed")
    assert cache_b.coherence_changes == [True]

    # Kill only this listener's pubsub connection (other tests may be subscribed on this server).
    ours = [c for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
    assert len(ours) == 1, ours
    with caplog.at_level(logging.WARNING, logger="app.status_changes"):
        assert await admin.client_kill_filter(_id=ours[0]["id"], _type="pubsub") == 1
        await wait_until(lambda: False in cache_b.coherence_changes, 2.0, "the loss was noticed")

    assert len(cache_b) == 0  # the loss emptied the cache
    assert cache_b.put(view(tid), ticket) is False  # and voided the tickets taken before it
    assert bus_events("subscription_lost") == lost_before + 1
    assert any(
        r.name == "app.status_changes"
        and r.levelno == logging.WARNING
        and "subscription lost" in r.getMessage()
        for r in caplog.records
    )

    await wait_until(lambda: cache_b.coherent, 5.0, "the listener subscribed again")
    assert cache_b.coherence_changes == [True, False, True]
    assert bus_events("subscribed") == subscribed_before + 1
    resubscribed = [c for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
    assert len(resubscribed) == 1 and resubscribed[0]["id"] != ours[0]["id"]

    # Announcements reach it again.
    assert cache_b.put(view(tid), cache_b.ticket())
    await changes_a.announce(tid)
    await wait_until(lambda: cache_b.get(tid) is None, 1.0, "B dropped the view after resubscribing")


async def test_non_final_views_are_refused_while_the_subscription_is_down(
    clients: Callable[..., Redis],
    listeners: list[StatusChangeListener],
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A listener that can never subscribe (nothing listens on the port) keeps the cache incoherent.
    cache = StatusViewCache(ttl_seconds=60, coherent=False)
    dead = clients(f"redis://127.0.0.1:{free_port()}/9", socket_connect_timeout=0.5)
    listener = StatusChangeListener(dead, cache)
    listeners.append(listener)
    with caplog.at_level(logging.WARNING, logger="app.status_changes"):
        listener.start()
        await asyncio.sleep(0.5)  # a few failed attempts (backoff 0.1, 0.2, ...)

    # said once, not once per attempt
    failures = [r for r in caplog.records if "subscription failed" in r.message]
    assert len(failures) == 1, [r.message for r in caplog.records]
    assert not cache.coherent
    assert cache.put(view(unique_id(), Status.PAYMENT_PENDING), cache.ticket()) is False
    assert cache.put(view(unique_id(), Status.PAYMENT_FAILED), cache.ticket()) is True


# --- c. publish failure ----------------------------------------------------------------------------


async def test_a_failed_publish_does_not_raise_and_still_drops_the_local_view(
    clients: Callable[..., Redis], caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = clients(f"redis://127.0.0.1:{free_port()}/9", socket_connect_timeout=1)
    cache = StatusViewCache(ttl_seconds=60, coherent=True)
    changes = RedisStatusChanges(nowhere, cache)
    tid = unique_id()
    assert cache.put(view(tid), cache.ticket())
    ticket = cache.ticket()
    failed_before = bus_events("publish_failed")

    with caplog.at_level(logging.WARNING, logger="app.status_changes"):
        await changes.announce(tid)  # must not raise: the write it announces is committed

    assert cache.get(tid) is None
    assert cache.put(view(tid), ticket) is False
    assert bus_events("publish_failed") == failed_before + 1
    warnings = [r for r in caplog.records if r.name == "app.status_changes" and "not published" in r.message]
    assert len(warnings) == 1
    assert getattr(warnings[0], "transactionId", None) == tid


# --- d. the race: polls in B while A writes ---------------------------------------------------------


TRANSACTIONS = 12
READERS = 20
ROUNDS = 3
REFLECT_SECONDS = 5.0  # a bounded wait ≪ the caches' 60 s TTL: only a lost invalidation takes longer
FAST_READ_SECONDS = (0.0, 0.002)
SLOW_READ_SECONDS = (0.02, 0.04)
SLOW_READ_SHARE = 0.2


@dataclass
class RaceLog:
    backwards: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    reads: int = 0


class LaggyStatusReader(MySqlStatusReader):
    """The real raw reader, plus a random pause between the row leaving MariaDB and the poll
    storing it: what a loaded process (GIL, full event loop, slow network) adds anyway. It widens
    the window in which a write can commit and be announced while the poll still holds the old row,
    so that a cache ignoring its tickets is caught on every run, not once in a while.
    """

    async def fetch(self, transaction_id: str) -> Sequence[Any] | None:
        row = await super().fetch(transaction_id)
        slow = random.random() < SLOW_READ_SHARE
        await asyncio.sleep(random.uniform(*(SLOW_READ_SECONDS if slow else FAST_READ_SECONDS)))
        return row


@pytest.fixture
async def engine_b(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    """Process B's own engine (its own connections)."""
    created = create_async_engine(mysql_url, pool_size=5)
    yield created
    await created.dispose()


@pytest.fixture
async def reader_b(mysql_url: str) -> AsyncIterator[MySqlStatusReader]:
    """Process B's own raw status reader, as the app uses on MySQL, sized for the pollers."""
    reader = LaggyStatusReader(mysql_url, pool_size=READERS + 5, recycle_seconds=3600)
    yield reader
    await reader.close()


async def _reader(repo: SqlTransactionRepository, tids: list[str], stop: asyncio.Event, log: RaceLog) -> None:
    """Polls every transaction in turn; a poller must never see a status go back."""
    seen: dict[str, Status] = {}
    offset = secrets.randbelow(len(tids))
    while not stop.is_set():
        for tid in tids[offset:] + tids[:offset]:
            current = await repo.get_status_view(tid)
            assert current is not None
            log.reads += 1
            last = seen.get(tid)
            if last is not None and current.status < last:
                log.backwards.append(f"{tid}: {int(last)} then {int(current.status)}")
            seen[tid] = current.status
            await asyncio.sleep(0)  # a cache hit never yields: let the others run


async def _walk(
    repo_a: SqlTransactionRepository,
    repo_b: SqlTransactionRepository,
    cache_b: RecordingCache,
    tid: str,
    log: RaceLog,
) -> None:
    """Writes in A; after each write, B must show it within REFLECT_SECONDS."""
    now = datetime.now(UTC)
    for step, (expected, target) in enumerate(itertools.pairwise(WALK), start=1):
        assert await repo_a.apply(
            tid, Transition(expected, target, "race"), now=now + timedelta(seconds=step)
        )
        deadline = time.monotonic() + REFLECT_SECONDS
        while True:
            current = await repo_b.get_status_view(tid)
            assert current is not None
            if current.status == target:
                break
            if time.monotonic() > deadline:
                log.slow.append(
                    f"{tid}: B still shows {int(current.status)} {REFLECT_SECONDS} s after {int(target)}"
                    f" (B received {cache_b.invalidated[tid]} of {step} invalidations)"
                )
                return
            await asyncio.sleep(0.001)


async def test_polls_in_one_process_never_go_stale_while_another_writes(
    engine: AsyncEngine,
    engine_b: AsyncEngine,
    reader_b: MySqlStatusReader,
    clients: Callable[..., Redis],
    listeners: list[StatusChangeListener],
) -> None:
    cache_a = StatusViewCache(ttl_seconds=60, coherent=True)
    repo_a = SqlTransactionRepository(
        engine,
        CachedStatusReader(SqlStatusReader(engine), cache_a),
        status_changes=RedisStatusChanges(clients(), cache_a),
    )
    # ttl 60: a view stored from a read that raced a write would stay for the whole test.
    cache_b = RecordingCache(ttl_seconds=60, coherent=False)
    repo_b = SqlTransactionRepository(
        engine_b,
        CachedStatusReader(reader_b, cache_b),
        status_changes=RedisStatusChanges(clients(), cache_b),
    )
    await start_listener(listeners, clients(), cache_b)
    reference = SqlTransactionRepository(engine)  # caches nothing: reads the database

    log = RaceLog()
    all_tids: list[str] = []
    async with asyncio.timeout(60):  # a bound on the test, not a speed check: the race is in `problems`
        for _ in range(ROUNDS):
            tids = []
            for _ in range(TRANSACTIONS):
                transaction = make_transaction()
                await repo_a.add(transaction, "issued")
                tids.append(transaction.transaction_id)
            all_tids += tids
            for tid in tids:  # B has read (and cached) the first status of each before the writes
                first = await repo_b.get_status_view(tid)
                assert first is not None and first.status == Status.CREATED

            stop = asyncio.Event()
            readers = [asyncio.create_task(_reader(repo_b, tids, stop, log)) for _ in range(READERS)]
            try:
                await asyncio.gather(*(_walk(repo_a, repo_b, cache_b, tid, log) for tid in tids))
                await asyncio.sleep(0.05)  # the readers keep polling the final state a little
            finally:
                stop.set()
                await asyncio.gather(*readers)

    stale, in_database = [], []
    for tid in all_tids:
        in_db = await reference.get_status_view(tid)
        assert in_db is not None
        in_database.append(in_db.status)
        in_b = cache_b.get(tid)
        if in_b is not None and in_b != in_db:
            stale.append(f"{tid}: cached {int(in_b.status)}, database {int(in_db.status)}")
    problems = {
        "(i) a poller saw a status go back": log.backwards,
        "(ii) B did not reflect a write in time": log.slow,
        "(iii) B's cache holds views older than the database": stale,
    }
    assert not any(problems.values()), "\n".join(
        f"{what}: {len(found)} times, e.g. {found[:3]}" for what, found in problems.items() if found
    )
    assert set(in_database) == {Status.PROVISION_SUCCESS}  # every walk went to the end
    assert cache_b.coherence_changes == [True]  # the subscription held for the whole run
    cached = [cache_b.get(tid) for tid in all_tids]
    assert any(v is not None for v in cached)  # the check above was not vacuous
    assert log.reads > 1000, log.reads
