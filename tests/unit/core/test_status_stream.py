"""The status stream's logic (app/core/status_stream.py) over a fake database read: what is sent
when, ids, resume, heartbeats, the lifetime, the fallback to reading the database while the bus is
down, and the per-user cap. Real time with short settings; every wait is bounded."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from app.core.catalog import StaticProductCatalog
from app.core.domain import Status
from app.core.ports import SequencedView
from app.core.queries import PaymentQueries
from app.core.status_cache import StatusViewCache
from app.core.status_changes import LocalStatusChanges
from app.core.status_stream import (
    KEEP_ALIVE,
    STREAM_END_STATUSES,
    KeepAlive,
    StatusEvent,
    StatusStreams,
    StatusWatchers,
    StreamConfig,
    StreamItem,
    StreamSlots,
)
from tests.support.fakes import FakeClock, InMemoryTransactionRepository
from tests.support.views import status_view

TID = "TXN_stream_1"
FAST = StreamConfig(heartbeat_seconds=0.3, max_seconds=5.0, poll_seconds=0.05, max_per_user=2)
WITHIN = 2.0  # every wait for an item is bounded by this


class FakeDatabase:
    """The sequenced status read: the transaction's row and history count, as a test sets them."""

    def __init__(self, status: Status = Status.CREATED) -> None:
        self.row = SequencedView(status_view(TID, status), 1)
        self.reads = 0
        self.failing = False

    def write(self, status: Status, *, rows: int = 1) -> None:
        """A committed write: the new status and `rows` more history rows."""
        self.row = SequencedView(dataclasses.replace(self.row.view, status=status), self.row.sequence + rows)

    async def get_sequenced_view(self, transaction_id: str) -> SequencedView | None:
        self.reads += 1
        if self.failing:
            raise ConnectionError("the database is away")
        return self.row if transaction_id == TID else None


def streams(database: FakeDatabase, watchers: StatusWatchers, config: StreamConfig = FAST) -> StatusStreams:
    queries = PaymentQueries(
        repository=InMemoryTransactionRepository(),
        catalog=StaticProductCatalog.from_file(),
        clock=FakeClock(),
    )
    return StatusStreams(reader=database, queries=queries, watchers=watchers, config=config)


async def next_item(items: AsyncIterator[StreamItem], within: float = WITHIN) -> StreamItem:
    async with asyncio.timeout(within):
        return await anext(items)


async def next_event(items: AsyncIterator[StreamItem], within: float = WITHIN) -> StatusEvent:
    """The next status event, skipping keep-alives."""
    async with asyncio.timeout(within):
        while True:
            item = await anext(items)
            if isinstance(item, StatusEvent):
                return item


async def ended(items: AsyncIterator[StreamItem], within: float = WITHIN) -> list[StreamItem]:
    """What is left until the stream ends by itself."""
    rest: list[StreamItem] = []
    async with asyncio.timeout(within):
        async for item in items:
            rest.append(item)
    return rest


def code(event: StatusEvent) -> int:
    return int(event.report.view.status)


# --- what is sent ----------------------------------------------------------------------------------


async def test_the_current_state_at_once_then_each_change_then_the_end() -> None:
    database, watchers = FakeDatabase(), StatusWatchers(live=True)
    follow = streams(database, watchers)
    items = follow.follow(await follow.current(TID))  # type: ignore[arg-type]

    first = await next_event(items, within=0.1)
    assert (code(first), first.sequence) == (10, 1)
    assert first.report.retry_after_ms is not None  # the status answer's fields, computed the same way
    seen = [first]
    for status in (Status.PAYMENT_PENDING, Status.PAYMENT_SUCCESS, Status.PROVISION_PENDING):
        database.write(status)
        watchers.changed(TID)
        seen.append(await next_event(items, within=0.2))  # the bus woke it: no heartbeat needed
    database.write(Status.PROVISION_SUCCESS)
    watchers.changed(TID)
    seen.append(await next_event(items, within=0.2))
    assert await ended(items) == []  # 50 ends it

    assert [code(e) for e in seen] == [10, 30, 40, 45, 50]
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]
    assert len(watchers) == 0  # nothing left behind


@pytest.mark.parametrize("status", sorted(STREAM_END_STATUSES))
async def test_a_stream_opened_at_an_end_state_sends_it_and_ends(status: Status) -> None:
    database = FakeDatabase(status)
    follow = streams(database, StatusWatchers(live=True))
    items = follow.follow(database.row)
    assert code(await next_event(items)) == int(status)
    assert await ended(items) == []


def test_the_end_states_are_41_50_and_95() -> None:
    # 51 is followed by its automatic refund (90 → 95); 50 changes only when a refund is asked for.
    assert {int(s) for s in STREAM_END_STATUSES} == {41, 50, 95}


async def test_changes_too_quick_to_tell_apart_are_one_event_with_the_newer_sequence() -> None:
    database, watchers = FakeDatabase(Status.PAYMENT_PENDING), StatusWatchers(live=True)
    items = streams(database, watchers).follow(database.row)
    await next_event(items)
    database.write(Status.PAYMENT_SUCCESS)
    database.write(Status.PROVISION_PENDING)  # committed before the stream read again
    watchers.changed(TID)
    watchers.changed(TID)
    event = await next_event(items)
    assert (code(event), event.sequence) == (45, 3)


async def test_a_read_older_than_what_was_sent_is_never_sent() -> None:
    # A replica whose read lags (or a stale row): the client must never see 45 after 50.
    database, watchers = FakeDatabase(Status.PROVISION_PENDING), StatusWatchers(live=True)
    database.row = dataclasses.replace(database.row, sequence=4)
    items = streams(database, watchers, dataclasses.replace(FAST, heartbeat_seconds=0.1)).follow(
        SequencedView(status_view(TID, Status.PAYMENT_SUCCESS), 3)  # what the stream opened with
    )
    assert code(await next_event(items)) == 40
    assert code(await next_event(items)) == 45  # the heartbeat's read found 45 (sequence 4)
    database.row = SequencedView(status_view(TID, Status.PAYMENT_SUCCESS), 3)  # an older read
    watchers.changed(TID)
    for _ in range(3):
        item = await next_item(items)
        assert isinstance(item, KeepAlive), item  # nothing older is ever sent


async def test_a_note_in_the_history_without_a_new_state_sends_the_same_state_again() -> None:
    # Sequences count history rows; a note adds one without changing the view. The client gets a
    # newer id for the same state (harmless: the state shown does not change).
    database, watchers = FakeDatabase(Status.PAYMENT_PENDING), StatusWatchers(live=True)
    items = streams(database, watchers).follow(database.row)
    await next_event(items)
    database.write(Status.PAYMENT_PENDING)
    watchers.changed(TID)
    event = await next_event(items)
    assert (code(event), event.sequence) == (30, 2)


# --- resume (Last-Event-ID) --------------------------------------------------------------------------


async def test_resume_after_a_missed_change_sends_the_current_state() -> None:
    database = FakeDatabase(Status.PROVISION_PENDING)
    database.row = dataclasses.replace(database.row, sequence=4)
    items = streams(database, StatusWatchers(live=True)).follow(database.row, after=2)
    event = await next_event(items)
    assert (code(event), event.sequence) == (45, 4)


async def test_resume_when_nothing_changed_sends_nothing_until_a_change() -> None:
    database, watchers = FakeDatabase(Status.PAYMENT_PENDING), StatusWatchers(live=True)
    database.row = dataclasses.replace(database.row, sequence=2)
    items = streams(database, watchers).follow(database.row, after=2)
    assert await next_item(items) is KEEP_ALIVE  # the client has this state: a heartbeat, no event
    database.write(Status.PAYMENT_SUCCESS)
    watchers.changed(TID)
    assert (code(await next_event(items)), database.row.sequence) == (40, 3)


def test_nothing_to_send_only_when_the_client_saw_the_end() -> None:
    done = SequencedView(status_view(TID, Status.PROVISION_SUCCESS), 5)
    pending = SequencedView(status_view(TID, Status.PROVISION_PENDING), 4)
    assert StatusStreams.nothing_to_send(done, 5) is True
    assert StatusStreams.nothing_to_send(done, 9) is True
    assert StatusStreams.nothing_to_send(done, 4) is False  # the end was missed: send it
    assert StatusStreams.nothing_to_send(done, None) is False
    assert StatusStreams.nothing_to_send(pending, 4) is False  # a change may still come


# --- heartbeats, lifetime --------------------------------------------------------------------------


async def test_a_keep_alive_at_least_every_heartbeat_while_nothing_changes() -> None:
    database = FakeDatabase(Status.PAYMENT_PENDING)
    config = dataclasses.replace(FAST, heartbeat_seconds=0.2)
    items = streams(database, StatusWatchers(live=True), config).follow(database.row)
    await next_event(items)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        assert await next_item(items, within=0.5) is KEEP_ALIVE
    assert 0.5 <= loop.time() - started <= 1.2


async def test_the_stream_ends_after_its_lifetime() -> None:
    database = FakeDatabase(Status.PAYMENT_PENDING)
    config = dataclasses.replace(FAST, heartbeat_seconds=0.2, max_seconds=0.5)
    items = streams(database, StatusWatchers(live=True), config).follow(database.row)
    loop = asyncio.get_running_loop()
    started = loop.time()
    rest = await ended(items)
    assert isinstance(rest[0], StatusEvent) and all(item is KEEP_ALIVE for item in rest[1:])
    assert 0.45 <= loop.time() - started <= 1.0


# --- the bus, and the fallback when it is down -------------------------------------------------------


async def test_while_the_bus_is_live_a_change_nobody_announced_waits_for_the_heartbeat() -> None:
    # What makes the events prompt is the fan-out: no announcement, no read until the heartbeat.
    database = FakeDatabase(Status.PAYMENT_PENDING)
    config = dataclasses.replace(FAST, heartbeat_seconds=0.6)
    items = streams(database, StatusWatchers(live=True), config).follow(database.row)
    await next_event(items)
    reads = database.reads
    database.write(Status.PAYMENT_SUCCESS)
    await asyncio.sleep(0.3)
    assert database.reads == reads  # idle: no reads, no database connection held
    assert isinstance(await next_item(items, within=0.6), KeepAlive)
    assert code(await next_event(items, within=0.1)) == 40  # the heartbeat's read found it


async def test_with_the_bus_down_the_stream_reads_the_database_on_a_short_interval() -> None:
    database = FakeDatabase(Status.PAYMENT_PENDING)
    watchers = StatusWatchers(live=False)  # the listener is not subscribed
    config = dataclasses.replace(FAST, heartbeat_seconds=5.0, poll_seconds=0.1)
    items = streams(database, watchers, config).follow(database.row)
    await next_event(items)
    loop = asyncio.get_running_loop()
    for status in (Status.PAYMENT_SUCCESS, Status.PROVISION_PENDING, Status.PROVISION_SUCCESS):
        database.write(status)  # never announced
        started = loop.time()
        event = await next_event(items, within=1.0)
        assert code(event) == int(status)
        assert loop.time() - started < 0.5  # the poll interval, not the heartbeat
    assert await ended(items) == []


async def test_when_the_bus_comes_back_every_stream_reads_at_once() -> None:
    database = FakeDatabase(Status.PAYMENT_PENDING)
    watchers = StatusWatchers(live=False)
    config = dataclasses.replace(FAST, heartbeat_seconds=5.0, poll_seconds=5.0)
    items = streams(database, watchers, config).follow(database.row)
    await next_event(items)
    waiting = asyncio.ensure_future(next_event(items, within=1.0))
    await asyncio.sleep(0.05)
    database.write(Status.PAYMENT_SUCCESS)  # changed while the subscription was down
    watchers.set_live(True)  # subscribed again: a change in the gap must not wait for a heartbeat
    assert code(await waiting) == 40


async def test_local_announcements_wake_the_streams_in_the_embedded_mode() -> None:
    database = FakeDatabase(Status.PAYMENT_PENDING)
    watchers = StatusWatchers(live=True)
    announcements = LocalStatusChanges(StatusViewCache(ttl_seconds=5, coherent=True), watchers=watchers)
    items = streams(database, watchers, dataclasses.replace(FAST, heartbeat_seconds=5.0)).follow(database.row)
    await next_event(items)
    database.write(Status.PAYMENT_SUCCESS)
    await announcements.announce(TID)
    assert code(await next_event(items, within=0.3)) == 40


async def test_a_failing_database_keeps_the_stream_and_it_recovers(caplog: pytest.LogCaptureFixture) -> None:
    database = FakeDatabase(Status.PAYMENT_PENDING)
    watchers = StatusWatchers(live=True)
    config = dataclasses.replace(FAST, heartbeat_seconds=0.3, poll_seconds=0.05)
    items = streams(database, watchers, config).follow(database.row)
    await next_event(items)
    database.failing = True
    watchers.changed(TID)
    assert isinstance(await next_item(items, within=1.0), KeepAlive)  # still open, still talking
    database.write(Status.PAYMENT_SUCCESS)
    database.failing = False
    assert code(await next_event(items, within=1.0)) == 40  # read again soon, not a heartbeat later
    assert "could not read the database" in caplog.text


async def test_the_watchers_wake_only_that_transactions_streams() -> None:
    watchers = StatusWatchers(live=True)
    with watchers.watching("TXN_a") as a, watchers.watching("TXN_a") as a2, watchers.watching("TXN_b") as b:
        assert len(watchers) == 3
        watchers.changed("TXN_a")
        assert a.is_set() and a2.is_set() and not b.is_set()
        watchers.changed("TXN_unknown")
    assert len(watchers) == 0


async def test_a_cancelled_stream_leaves_no_watcher_behind() -> None:
    database, watchers = FakeDatabase(Status.PAYMENT_PENDING), StatusWatchers(live=True)
    items = streams(database, watchers).follow(database.row)

    async def consume() -> None:
        async for _ in items:
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    assert len(watchers) == 1
    task.cancel()  # the client went away
    await asyncio.gather(task, return_exceptions=True)
    assert len(watchers) == 0


# --- the per-user cap ----------------------------------------------------------------------------------


def open_streams() -> float:
    return REGISTRY.get_sample_value("payments_status_streams_open") or 0.0


def test_at_most_max_per_user_open_streams_per_user() -> None:
    slots = StreamSlots(2)
    before = open_streams()
    first, second = slots.take("alice"), slots.take("alice")
    assert first is not None and second is not None
    assert slots.take("alice") is None  # over the cap
    bob = slots.take("bob")
    assert bob is not None  # per user
    assert (len(slots), open_streams() - before) == (3, 3)

    first.release()
    first.release()  # idempotent: counted once
    assert slots.open_for("alice") == 1
    third = slots.take("alice")
    assert third is not None
    for slot in (second, third, bob):
        slot.release()
    assert (len(slots), open_streams()) == (0, before)


async def test_a_server_shutdown_ends_every_stream_at_once() -> None:
    database, watchers = FakeDatabase(Status.PAYMENT_PENDING), StatusWatchers(live=True)
    follow = streams(database, watchers, dataclasses.replace(FAST, heartbeat_seconds=5.0))
    first, second = follow.follow(database.row), follow.follow(database.row)
    await next_event(first)
    await next_event(second)
    ending = asyncio.ensure_future(ended(first, within=0.5))
    await asyncio.sleep(0.05)
    watchers.close_all()  # app.http_server: uvicorn began its graceful shutdown
    assert await ending == []
    assert await ended(second, within=0.5) == []
    late = follow.follow(database.row)  # one opened as the server closes: its state, then the end
    assert isinstance(await next_item(late), StatusEvent)
    assert await ended(late, within=0.5) == []
