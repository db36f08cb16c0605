"""A per-process near cache of the status poll's views, kept coherent by invalidations.

Polls are most of the traffic, and one database round trip costs several times what the rest of
a poll costs. So each API process remembers the views it read, and every committed write to a
transaction drops that transaction's view in every process: in its own at once
(`invalidate`), in the others through the status-change bus (`app.core.status_changes`).

The rules that keep a cached view from being older than what the database held when the poll
arrived:

1. A write announces itself only **after** its commit, so a process that drops the view and reads
   again sees the new row.
2. A view read from the database is stored only if no invalidation (of any transaction) arrived
   while it was being read: take `ticket()` before the read, hand it to `put()` after. A read that
   raced a write cannot store the older row. And two reads of one transaction that disagree
   leave nothing cached: between a write's commit and its announcement's arrival, a read that
   started before the commit (the old row) and one that started after it (the new row) hold the
   same good ticket, so whichever stores last would win, and a poll that was answered the new
   row could be answered the old one next. Which of the two is newer is not known here, so
   `put()` drops the stored view instead of replacing it with a different one; the next poll
   reads the database.
3. While the process is not subscribed to the bus (`coherent` is False), non-final views are
   neither stored nor served: an invalidation sent then would be lost. Every change of
   `coherent` empties the cache and voids the tickets handed out before it.
4. A non-final view expires after `ttl_seconds`. This bounds how long a view can be stale if an
   invalidation is ever lost in a way the subscriber cannot see (a writer that could not reach
   Redis after its commit). `ttl_seconds=0` turns the cache off for non-final views.

Final views (41, 95) never change: they are kept without expiry, coherent or not.

`CachedStatusReader` is the status read through the cache, a decorator of the database's reader:
it keeps rule 2 (and counts hits and misses); the writers keep rule 1 by announcing after their
commit (`app.core.sql`), the listener keeps rule 3 (`app.core.status_changes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.core.domain import FINAL_STATUSES
from app.core.ports import StatusReader, StatusView
from app.metrics import STATUS_CACHE

_CACHE_HITS = STATUS_CACHE.labels(result="hit")
_CACHE_MISSES = STATUS_CACHE.labels(result="miss")


class StatusViewCache:
    MAX_ENTRIES = 50_000

    def __init__(
        self,
        *,
        ttl_seconds: float,
        coherent: bool,
        max_entries: int = MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._coherent = coherent
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._views: dict[str, tuple[StatusView, float]] = {}  # view, expires at (inf when final)
        self._invalidations = 0  # the ticket counter of rule 2

    @property
    def coherent(self) -> bool:
        return self._coherent

    def __len__(self) -> int:
        return len(self._views)

    def get(self, transaction_id: str) -> StatusView | None:
        entry = self._views.get(transaction_id)
        if entry is None:
            return None
        view, expires_at = entry
        if self._monotonic() >= expires_at:
            del self._views[transaction_id]
            return None
        return view

    def ticket(self) -> int:
        """Take before reading the database; pass to `put` with what was read."""
        return self._invalidations

    def put(self, view: StatusView, ticket: int) -> bool:
        """Store a view read from the database. Returns whether it was stored."""
        stored = self._views.get(view.transaction_id)
        if stored is not None and stored[0] != view:
            # Two reads disagree and no invalidation told them apart (rule 2): one of them is older
            # than a committed write, and the view already served from here may be the newer one.
            del self._views[view.transaction_id]
            return False
        if ticket != self._invalidations:
            return False  # a write may have committed after the read: the row may be old
        if view.status in FINAL_STATUSES:
            expires_at = float("inf")
        elif self._coherent and self._ttl > 0:
            expires_at = self._monotonic() + self._ttl
        else:
            return False
        if len(self._views) >= self._max_entries:
            self._views.clear()  # crude but bounded; polls refill what is still being polled
            self._invalidations += 1  # a read that began before the clear cannot store over it
        self._views[view.transaction_id] = (view, expires_at)
        return True

    def invalidate(self, transaction_id: str) -> None:
        """A write to this transaction committed (here or in another process)."""
        self._invalidations += 1
        self._views.pop(transaction_id, None)

    def set_coherent(self, coherent: bool) -> None:
        """The bus subscription started (True) or was lost (False)."""
        self._invalidations += 1
        self._coherent = coherent
        self._views.clear()


class CachedStatusReader:
    """A StatusReader that answers from this process's cache while it may, and reads through
    `reader` (the database) otherwise."""

    def __init__(self, reader: StatusReader, cache: StatusViewCache) -> None:
        self._reader = reader
        self._cache = cache

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        cached = self._cache.get(transaction_id)
        if cached is not None:
            _CACHE_HITS.inc()
            return cached
        _CACHE_MISSES.inc()
        return await self.read_through(transaction_id)

    async def read_through(self, transaction_id: str) -> StatusView | None:
        """Read the database, never the cache; the view read is kept for the polls that follow."""
        ticket = self._cache.ticket()  # before the read: a write announced during it voids the ticket
        view = await self._reader.get_status_view(transaction_id)
        if view is not None:
            self._cache.put(view, ticket)
        return view
