"""StatusViewCache (rules 1-4 of app/core/status_cache.py) on a fake monotonic clock, and the
status read through it (CachedStatusReader)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from prometheus_client import REGISTRY

from app.core.domain import FINAL_STATUSES, Status
from app.core.ports import StatusView
from app.core.status_cache import CachedStatusReader, StatusViewCache
from app.core.status_changes import LocalStatusChanges
from tests.support.views import status_view

NON_FINAL = sorted(set(Status) - FINAL_STATUSES)
FINAL = sorted(FINAL_STATUSES)


class FakeMonotonic:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def view(transaction_id: str = "TXN_1", status: Status = Status.CREATED) -> StatusView:
    return status_view(transaction_id, status)


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


def make_cache(
    clock: FakeMonotonic, *, ttl: float = 5.0, coherent: bool = True, max_entries: int = 100
) -> StatusViewCache:
    return StatusViewCache(ttl_seconds=ttl, coherent=coherent, max_entries=max_entries, monotonic=clock)


def test_final_statuses_are_the_two_the_cache_keeps_forever() -> None:
    # The rules below are written for 41 and 95; fail loudly if the state machine changes them.
    assert {Status.PAYMENT_FAILED, Status.REFUNDED} == FINAL_STATUSES


# --- hit / miss ------------------------------------------------------------------------------------


def test_miss_then_put_then_hit(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    assert cache.get("TXN_1") is None
    assert len(cache) == 0

    stored = view("TXN_1", Status.PAYMENT_PENDING)
    assert cache.put(stored, cache.ticket()) is True

    assert cache.get("TXN_1") is stored
    assert cache.get("TXN_2") is None
    assert len(cache) == 1


def test_put_of_the_same_view_again_keeps_it(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    assert cache.put(view("TXN_1", Status.PAYMENT_PENDING), cache.ticket())
    again = view("TXN_1", Status.PAYMENT_PENDING)
    assert cache.put(again, cache.ticket())

    assert cache.get("TXN_1") == again
    assert len(cache) == 1


def test_two_reads_that_disagree_leave_nothing_cached(clock: FakeMonotonic) -> None:
    # Rule 2's second half. Between a write's commit and its announcement, a read that began before
    # the commit (45) and one that began after it (50) hold the same good ticket.
    cache = make_cache(clock, ttl=60)
    ticket = cache.ticket()
    newer, older = view("TXN_1", Status.PROVISION_SUCCESS), view("TXN_1", Status.PROVISION_PENDING)

    assert cache.put(newer, ticket) is True  # the fast read: a poll is answered 50 (and it is served)
    assert cache.get("TXN_1") is newer
    assert cache.put(older, ticket) is False  # the slow read must not put 45 in its place
    assert cache.get("TXN_1") is None  # the next poll reads the database: 50 again, never 45

    # The other order: the old row stored first, the new one read later; neither stays.
    assert cache.put(older, ticket) is True
    assert cache.put(newer, ticket) is False
    assert cache.get("TXN_1") is None


def test_a_read_with_a_void_ticket_still_drops_a_disagreeing_view(clock: FakeMonotonic) -> None:
    # The new row was read under a ticket another transaction's invalidation voided; the old row
    # (stored first) must not outlive the answer that showed the new one.
    cache = make_cache(clock, ttl=60)
    ticket = cache.ticket()
    assert cache.put(view("TXN_1", Status.PROVISION_PENDING), ticket)
    cache.invalidate("TXN_other")
    assert cache.put(view("TXN_1", Status.PROVISION_SUCCESS), ticket) is False
    assert cache.get("TXN_1") is None


def test_an_overflow_voids_the_tickets_taken_before_it(clock: FakeMonotonic) -> None:
    # A read that began before the cache was emptied cannot store its (possibly older) row after.
    cache = make_cache(clock, max_entries=2)
    early = cache.ticket()
    assert cache.put(view("TXN_1"), cache.ticket())
    assert cache.put(view("TXN_2"), cache.ticket())
    assert cache.put(view("TXN_3"), cache.ticket())  # full: cleared, then stored
    assert cache.put(view("TXN_1", Status.PAYMENT_PENDING), early) is False
    assert cache.get("TXN_1") is None


def test_invalidate_drops_only_that_transaction(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    one, two = view("TXN_1"), view("TXN_2")
    assert cache.put(one, cache.ticket())
    assert cache.put(two, cache.ticket())

    cache.invalidate("TXN_1")

    assert cache.get("TXN_1") is None
    assert cache.get("TXN_2") is two


def test_invalidate_drops_a_final_view_too(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    assert cache.put(view("TXN_1", Status.REFUNDED), cache.ticket())
    cache.invalidate("TXN_1")
    assert cache.get("TXN_1") is None


def test_invalidate_of_an_unknown_transaction_is_harmless(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    kept = view("TXN_1")
    assert cache.put(kept, cache.ticket())

    cache.invalidate("TXN_never_seen")
    cache.invalidate("TXN_never_seen")  # twice: still nothing to drop, nothing raised

    assert cache.get("TXN_1") is kept
    assert len(cache) == 1
    # A ticket taken after the invalidations is good.
    assert cache.put(view("TXN_2"), cache.ticket())


# --- rule 2: tickets -------------------------------------------------------------------------------


def test_ticket_is_voided_by_an_invalidation_of_the_same_transaction(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    ticket = cache.ticket()
    cache.invalidate("TXN_1")  # a write committed while the poll was reading

    assert cache.put(view("TXN_1"), ticket) is False
    assert cache.get("TXN_1") is None


def test_ticket_is_voided_by_an_invalidation_of_any_transaction(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    ticket = cache.ticket()
    cache.invalidate("TXN_other")

    assert cache.put(view("TXN_1"), ticket) is False
    assert cache.put(view("TXN_1", Status.REFUNDED), ticket) is False  # finals obey tickets too
    assert cache.get("TXN_1") is None
    assert len(cache) == 0


def test_ticket_is_voided_by_an_invalidation_of_an_unknown_transaction(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    ticket = cache.ticket()
    cache.invalidate("TXN_never_seen")
    assert cache.put(view("TXN_1"), ticket) is False


@pytest.mark.parametrize("coherent", [True, False])
def test_ticket_is_voided_by_set_coherent(clock: FakeMonotonic, coherent: bool) -> None:
    cache = make_cache(clock, coherent=True)
    ticket = cache.ticket()
    cache.set_coherent(coherent)  # even a "change" to the same value voids the tickets

    assert cache.put(view("TXN_1", Status.PAYMENT_FAILED), ticket) is False
    assert cache.put(view("TXN_2", Status.CREATED), ticket) is False
    assert len(cache) == 0


def test_a_fresh_ticket_after_the_invalidation_is_good(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    stale = cache.ticket()
    cache.invalidate("TXN_1")
    fresh = cache.ticket()

    assert cache.put(view("TXN_1"), stale) is False
    assert cache.put(view("TXN_1"), fresh) is True


def test_one_ticket_may_store_several_views_while_nothing_is_invalidated(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    ticket = cache.ticket()
    assert cache.put(view("TXN_1"), ticket)
    assert cache.put(view("TXN_2"), ticket)
    assert len(cache) == 2


# --- rule 3: coherence -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", NON_FINAL)
def test_non_final_views_are_not_stored_while_incoherent(clock: FakeMonotonic, status: Status) -> None:
    cache = make_cache(clock, coherent=False)
    assert cache.coherent is False
    assert cache.put(view("TXN_1", status), cache.ticket()) is False
    assert cache.get("TXN_1") is None
    assert len(cache) == 0


def test_non_final_views_are_not_served_once_incoherent(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    assert cache.put(view("TXN_1", Status.PAYMENT_PENDING), cache.ticket())

    cache.set_coherent(False)

    assert cache.coherent is False
    assert cache.get("TXN_1") is None
    assert len(cache) == 0


@pytest.mark.parametrize("status", FINAL)
def test_final_views_are_stored_while_incoherent_and_never_expire(
    clock: FakeMonotonic, status: Status
) -> None:
    cache = make_cache(clock, coherent=False, ttl=5.0)
    final = view("TXN_1", status)
    assert cache.put(final, cache.ticket()) is True

    clock.advance(10 * 365 * 24 * 3600.0)  # ten years

    assert cache.get("TXN_1") is final


def test_set_coherent_true_clears_and_then_accepts_non_final_views(clock: FakeMonotonic) -> None:
    cache = make_cache(clock, coherent=False)
    assert cache.put(view("TXN_final", Status.PAYMENT_FAILED), cache.ticket())

    cache.set_coherent(True)

    assert cache.coherent is True
    assert cache.get("TXN_final") is None  # every change of `coherent` empties the cache
    assert len(cache) == 0
    assert cache.put(view("TXN_1", Status.CREATED), cache.ticket()) is True
    assert cache.get("TXN_1") is not None


def test_set_coherent_false_clears_final_views_too(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    assert cache.put(view("TXN_1", Status.CREATED), cache.ticket())
    assert cache.put(view("TXN_2", Status.REFUNDED), cache.ticket())

    cache.set_coherent(False)

    assert len(cache) == 0
    assert cache.get("TXN_2") is None
    # A final view read after the loss may be stored again.
    assert cache.put(view("TXN_2", Status.REFUNDED), cache.ticket()) is True


# --- rule 4: expiry --------------------------------------------------------------------------------


def test_non_final_view_expires_exactly_at_the_ttl(clock: FakeMonotonic) -> None:
    cache = make_cache(clock, ttl=5.0)
    stored = view("TXN_1", Status.PAYMENT_PENDING)
    assert cache.put(stored, cache.ticket())

    clock.advance(4.999)
    assert cache.get("TXN_1") is stored
    clock.advance(0.001)  # now == stored at + ttl: expired
    assert cache.get("TXN_1") is None
    assert len(cache) == 0  # the expired entry is dropped, not just hidden


def test_expiry_counts_from_the_put_not_from_the_ticket(clock: FakeMonotonic) -> None:
    cache = make_cache(clock, ttl=5.0)
    ticket = cache.ticket()
    clock.advance(3.0)  # a slow read
    assert cache.put(view("TXN_1"), ticket)

    clock.advance(4.0)  # 7 s after the ticket, 4 s after the put
    assert cache.get("TXN_1") is not None
    clock.advance(1.0)
    assert cache.get("TXN_1") is None


def test_a_new_put_restarts_the_ttl(clock: FakeMonotonic) -> None:
    cache = make_cache(clock, ttl=5.0)
    assert cache.put(view("TXN_1", Status.PAYMENT_PENDING), cache.ticket())
    clock.advance(4.0)
    assert cache.put(view("TXN_1", Status.PAYMENT_PENDING), cache.ticket())
    clock.advance(4.0)
    cached = cache.get("TXN_1")
    assert cached is not None and cached.status == Status.PAYMENT_PENDING


@pytest.mark.parametrize("status", FINAL)
def test_final_view_does_not_expire_while_coherent(clock: FakeMonotonic, status: Status) -> None:
    cache = make_cache(clock, ttl=5.0)
    final = view("TXN_1", status)
    assert cache.put(final, cache.ticket())
    clock.advance(1e9)
    assert cache.get("TXN_1") is final


def test_ttl_zero_stores_only_final_views(clock: FakeMonotonic) -> None:
    cache = make_cache(clock, ttl=0)
    for i, status in enumerate(NON_FINAL):
        assert cache.put(view(f"TXN_n{i}", status), cache.ticket()) is False
    for i, status in enumerate(FINAL):
        assert cache.put(view(f"TXN_f{i}", status), cache.ticket()) is True

    assert len(cache) == len(FINAL)
    assert all(cache.get(f"TXN_n{i}") is None for i in range(len(NON_FINAL)))
    clock.advance(1e6)
    assert all(cache.get(f"TXN_f{i}") is not None for i in range(len(FINAL)))


# --- bound -----------------------------------------------------------------------------------------


def test_overflow_clears_the_cache_and_keeps_the_newest(clock: FakeMonotonic) -> None:
    cache = make_cache(clock, max_entries=3)
    for i in range(3):
        assert cache.put(view(f"TXN_{i}"), cache.ticket())
    assert len(cache) == 3

    newest = view("TXN_3")
    assert cache.put(newest, cache.ticket()) is True

    assert len(cache) == 1
    assert cache.get("TXN_3") is newest
    assert all(cache.get(f"TXN_{i}") is None for i in range(3))


def test_size_never_exceeds_the_bound(clock: FakeMonotonic) -> None:
    cache = make_cache(clock, max_entries=7)
    for i in range(100):
        status = Status.REFUNDED if i % 3 == 0 else Status.CREATED
        assert cache.put(view(f"TXN_{i}", status), cache.ticket())
        assert 1 <= len(cache) <= 7


def test_default_bound_is_max_entries() -> None:
    cache = StatusViewCache(ttl_seconds=5, coherent=True)
    for i in range(StatusViewCache.MAX_ENTRIES):
        cache.put(view(f"TXN_{i}"), cache.ticket())
    assert len(cache) == StatusViewCache.MAX_ENTRIES
    cache.put(view("TXN_one_more"), cache.ticket())
    assert len(cache) == 1


def test_replacing_an_entry_of_a_full_cache_still_clears_it(clock: FakeMonotonic) -> None:
    # Documents the "crude but bounded" rule: a full cache is cleared before any store.
    cache = make_cache(clock, max_entries=2)
    assert cache.put(view("TXN_1"), cache.ticket())
    assert cache.put(view("TXN_2"), cache.ticket())
    assert cache.put(view("TXN_1"), cache.ticket())
    assert len(cache) == 1
    assert cache.get("TXN_2") is None


# --- LocalStatusChanges ----------------------------------------------------------------------------


async def test_local_status_changes_announce_invalidates(clock: FakeMonotonic) -> None:
    cache = make_cache(clock)
    changes = LocalStatusChanges(cache)
    assert cache.put(view("TXN_1"), cache.ticket())
    assert cache.put(view("TXN_2"), cache.ticket())
    ticket = cache.ticket()

    await changes.announce("TXN_1")

    assert cache.get("TXN_1") is None
    assert cache.get("TXN_2") is not None
    assert cache.put(dataclasses.replace(view("TXN_1"), status=Status.PAYMENT_PENDING), ticket) is False
    assert cache.coherent is True  # a local announcement does not touch coherence


# --- CachedStatusReader: the status read through the cache --------------------------------------


class CountingReader:
    """The database's status read: what each transaction holds now, and how often it was asked."""

    def __init__(self, *views: StatusView) -> None:
        self.rows = {v.transaction_id: v for v in views}
        self.reads = 0
        self.during_read: list[StatusView] = []  # writes that commit (and are announced) mid-read
        self.cache: StatusViewCache | None = None

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        self.reads += 1
        row = self.rows.get(transaction_id)
        for newer in self.during_read:
            self.rows[newer.transaction_id] = newer
            assert self.cache is not None
            self.cache.invalidate(newer.transaction_id)
        self.during_read.clear()
        return row


def polls(result: str) -> float:
    return REGISTRY.get_sample_value("payments_status_cache_total", {"result": result}) or 0.0


async def test_a_miss_reads_through_and_the_next_poll_is_a_hit(clock: FakeMonotonic) -> None:
    database = CountingReader(view("TXN_1", Status.PAYMENT_PENDING))
    reader = CachedStatusReader(database, make_cache(clock))
    hits, misses = polls("hit"), polls("miss")

    first = await reader.get_status_view("TXN_1")
    second = await reader.get_status_view("TXN_1")

    assert first is not None and first.status == Status.PAYMENT_PENDING
    assert second is first
    assert database.reads == 1
    assert (polls("hit") - hits, polls("miss") - misses) == (1, 1)


async def test_a_view_read_while_a_write_was_announced_is_not_kept(clock: FakeMonotonic) -> None:
    # Rule 2: the ticket is taken before the read, so the row read before the write is not stored.
    cache = make_cache(clock, ttl=60)
    database = CountingReader(view("TXN_1", Status.PAYMENT_PENDING))
    database.cache = cache
    database.during_read.append(view("TXN_1", Status.PAYMENT_SUCCESS))
    reader = CachedStatusReader(database, cache)

    raced = await reader.get_status_view("TXN_1")
    after = await reader.get_status_view("TXN_1")

    assert raced is not None and raced.status == Status.PAYMENT_PENDING  # what the database held then
    assert after is not None and after.status == Status.PAYMENT_SUCCESS  # not the raced row, kept
    assert database.reads == 2


async def test_an_unknown_transaction_is_never_cached(clock: FakeMonotonic) -> None:
    database = CountingReader()
    reader = CachedStatusReader(database, make_cache(clock))

    assert await reader.get_status_view("TXN_missing") is None
    assert await reader.get_status_view("TXN_missing") is None
    assert database.reads == 2


async def test_while_incoherent_only_final_views_are_served_from_the_cache(clock: FakeMonotonic) -> None:
    # Rule 3 through the reader: a pending view is read every time, a failed one once.
    database = CountingReader(view("TXN_1", Status.PAYMENT_PENDING), view("TXN_2", Status.PAYMENT_FAILED))
    reader = CachedStatusReader(database, make_cache(clock, coherent=False))

    for _ in range(2):
        await reader.get_status_view("TXN_1")
        await reader.get_status_view("TXN_2")

    assert database.reads == 3


async def test_an_expired_view_is_read_again(clock: FakeMonotonic) -> None:
    # Rule 4 through the reader.
    database = CountingReader(view("TXN_1", Status.PAYMENT_PENDING))
    reader = CachedStatusReader(database, make_cache(clock, ttl=5))

    await reader.get_status_view("TXN_1")
    clock.advance(4.9)
    await reader.get_status_view("TXN_1")
    assert database.reads == 1
    clock.advance(0.1)
    await reader.get_status_view("TXN_1")
    assert database.reads == 2


class HeldReader:
    """The database's status read, where a test holds a read's answer (the row it got) until it
    says so: what a slow poll (GIL, a full event loop) does between MariaDB's answer and its put."""

    def __init__(self, row: StatusView) -> None:
        self.row = row
        self.hold: asyncio.Event | None = None

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        got, hold = self.row, self.hold
        self.hold = None
        if hold is not None:
            await hold.wait()
        return got


async def test_a_poll_never_goes_back_when_a_slow_read_of_the_old_row_lands_late(
    clock: FakeMonotonic,
) -> None:
    # The flaky "50 then 45" of tests/integration/core/test_status_change_bus.py, made certain:
    # the write commits after the slow read got its row and before its announcement arrives.
    cache = make_cache(clock, ttl=60)
    database = HeldReader(view("TXN_1", Status.PROVISION_PENDING))
    reader = CachedStatusReader(database, cache)
    release = asyncio.Event()
    database.hold = release
    slow = asyncio.create_task(reader.get_status_view("TXN_1"))  # gets 45, held
    await asyncio.sleep(0)

    database.row = view("TXN_1", Status.PROVISION_SUCCESS)  # committed; not announced yet
    seen = await reader.get_status_view("TXN_1")
    assert seen is not None and seen.status == Status.PROVISION_SUCCESS  # a poller is answered 50
    release.set()
    late = await slow
    assert late is not None and late.status == Status.PROVISION_PENDING  # the slow poll's own answer

    after = await reader.get_status_view("TXN_1")  # the same poller, next poll: never 45
    assert after is not None and after.status == Status.PROVISION_SUCCESS
