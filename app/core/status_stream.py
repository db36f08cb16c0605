"""The status stream: a transaction's status, pushed as it changes (the HTTP side frames it as
Server-Sent Events, app/http/status_events.py).

- **Ids.** Each event carries the transaction's *sequence*: how many history rows it had when the
  view was read, in the same statement (`SequencedStatusReader`). Every write that changes a view
  leaves a history row in its own database transaction, so the sequence only grows and every
  process reads the same one. An event is sent only when its sequence is above the last one sent
  (or the client's `Last-Event-ID`), so a client never sees a state older than one it saw, and a
  resumed stream sends the current state if anything changed since (changes in between are
  coalesced: the stream sends states, not every transition).
- **Waking.** `StatusWatchers` is this process's fan-out: the status-change bus (the listener of
  app.core.status_changes, or the local announcements of the embedded mode) calls `changed(id)`
  for each committed write, which wakes the streams of that transaction; each then reads the
  database once. No stream has a Redis connection of its own.
- **Fallback.** While the bus is not live (the listener is not subscribed), a stream reads the
  database every `poll_seconds` instead; it also reads once per heartbeat while live, which bounds
  how late a change whose announcement was lost can arrive.
- **Idle.** A waiting stream holds no database connection: each read is one short statement.
- **End.** After a state where nothing happens on its own any more (`STREAM_END_STATUSES`), or after
  `max_seconds`, or when the server shuts down (`StatusWatchers.close_all`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from app.core.domain import FINAL_STATUSES, Status
from app.core.ports import SequencedStatusReader, SequencedView
from app.core.queries import PaymentQueries, StatusReport
from app.messages import DEFAULT_LANGUAGE, Lang
from app.metrics import STATUS_STREAMS_OPEN

log = logging.getLogger("app.status_stream")

# 41 and 95 never change; 50 changes only when somebody asks for a refund, which is no part of a
# checkout (the refund's own answer says what happened). 51 is not here: its automatic refund
# (90 → 95) follows by itself, and the stream shows it.
STREAM_END_STATUSES: frozenset[Status] = FINAL_STATUSES | {Status.PROVISION_SUCCESS}


@dataclass(frozen=True, slots=True)
class StreamConfig:
    heartbeat_seconds: float = 15.0  # a comment at least this often (proxies close silent connections)
    max_seconds: float = 600.0  # then the stream ends; the client reconnects with Last-Event-ID
    poll_seconds: float = 1.0  # how often to read the database while the bus is not live
    max_per_user: int = 5  # open streams per user in one process


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The transaction's status at `sequence`, as the status endpoint would answer it."""

    sequence: int
    report: StatusReport


class KeepAlive:
    """Nothing changed: the stream writes a comment so that the connection is not idle."""


KEEP_ALIVE = KeepAlive()
StreamItem = StatusEvent | KeepAlive


class StatusWatchers:
    """This process's open streams by transaction, woken by the status-change bus."""

    def __init__(self, *, live: bool) -> None:
        # Live: every committed write reaches `changed` (one process, or the bus is subscribed).
        self._live = live
        self._closing = False
        self._waiting: dict[str, set[asyncio.Event]] = {}

    @property
    def live(self) -> bool:
        return self._live

    @property
    def closing(self) -> bool:
        return self._closing

    def close_all(self) -> None:
        """The server is shutting down: every stream ends now (its client reconnects elsewhere)."""
        self._closing = True
        self._wake_all()

    def __len__(self) -> int:
        return sum(len(events) for events in self._waiting.values())

    def changed(self, transaction_id: str) -> None:
        """A write to this transaction committed (here or in another process)."""
        for event in self._waiting.get(transaction_id, ()):
            event.set()

    def set_live(self, live: bool) -> None:
        """The bus subscription started (True) or was lost (False). Either way every stream reads
        again: a change may have slipped through while the subscription was down."""
        self._live = live
        self._wake_all()

    def _wake_all(self) -> None:
        for events in self._waiting.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def watching(self, transaction_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `transaction_id` may have changed, for as long as the block runs."""
        event = asyncio.Event()
        self._waiting.setdefault(transaction_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiting.get(transaction_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[transaction_id]


class StreamSlot:
    """One open stream, counted against its user until `release()` (idempotent)."""

    __slots__ = ("_released", "_slots", "user_id")

    def __init__(self, slots: StreamSlots, user_id: str) -> None:
        self._slots = slots
        self.user_id = user_id
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._slots._release(self.user_id)


class StreamSlots:
    """At most `per_user` open streams per user in this process (one per browser tab in practice),
    counted in the `payments_status_streams_open` gauge."""

    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._open: dict[str, int] = {}

    @property
    def per_user(self) -> int:
        return self._per_user

    def open_for(self, user_id: str) -> int:
        return self._open.get(user_id, 0)

    def __len__(self) -> int:
        return sum(self._open.values())

    def take(self, user_id: str) -> StreamSlot | None:
        """A slot for one more stream of `user_id`, or None when the user has `per_user` open."""
        count = self._open.get(user_id, 0)
        if count >= self._per_user:
            return None
        self._open[user_id] = count + 1
        STATUS_STREAMS_OPEN.inc()
        return StreamSlot(self, user_id)

    def _release(self, user_id: str) -> None:
        count = self._open.get(user_id, 0) - 1
        if count > 0:
            self._open[user_id] = count
        else:
            self._open.pop(user_id, None)
        STATUS_STREAMS_OPEN.dec()


class _ReadFailures:
    """A database read of a stream failed: one warning a minute per process, not one per stream."""

    def __init__(self) -> None:
        self._quiet_until = 0.0

    def report(self, transaction_id: str, error: Exception) -> None:
        now = time.monotonic()
        if now >= self._quiet_until:
            self._quiet_until = now + 60.0
            log.warning(
                "status stream could not read the database; it keeps trying",
                extra={"transactionId": transaction_id, "error": repr(error)},
            )


class StatusStreams:
    """Follows one transaction for a stream: its current state at once, then each change."""

    def __init__(
        self,
        *,
        reader: SequencedStatusReader,
        queries: PaymentQueries,
        watchers: StatusWatchers,
        config: StreamConfig,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._queries = queries
        self._watchers = watchers
        self._config = config
        self._monotonic = monotonic
        self._failures = _ReadFailures()

    @property
    def config(self) -> StreamConfig:
        return self._config

    async def current(self, transaction_id: str) -> SequencedView | None:
        """The transaction's state and sequence now (a short read), or None when there is none."""
        return await self._reader.get_sequenced_view(transaction_id)

    @staticmethod
    def nothing_to_send(current: SequencedView, after: int | None) -> bool:
        """A resumed stream that would send nothing and end at once: the client saw the end."""
        return after is not None and current.sequence <= after and current.view.status in STREAM_END_STATUSES

    async def follow(
        self, first: SequencedView, *, after: int | None = None, lang: Lang = DEFAULT_LANGUAGE
    ) -> AsyncIterator[StreamItem]:
        """`first` (the state read when the stream opened) unless the client saw it (`after`, its
        Last-Event-ID), then each newer state (its message in `lang`), keep-alives in between; ends
        after an end state or `max_seconds`."""
        config = self._config
        transaction_id = first.view.transaction_id
        last = -1 if after is None else after
        current: SequencedView | None = first
        started = last_write = self._monotonic()
        deadline = started + config.max_seconds
        failing = False
        with self._watchers.watching(transaction_id) as woken:
            while True:
                if current is not None and current.sequence > last:
                    last = current.sequence
                    last_write = self._monotonic()
                    yield StatusEvent(last, self._queries.report(current.view, attempt=None, lang=lang))
                if current is not None and current.view.status in STREAM_END_STATUSES:
                    return
                now = self._monotonic()
                if now >= deadline or self._watchers.closing:
                    return
                live = self._watchers.live and not failing
                interval = config.heartbeat_seconds if live else config.poll_seconds
                timeout = max(0.0, min(interval, last_write + config.heartbeat_seconds - now, deadline - now))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await woken.wait()
                woken.clear()  # before reading: a change announced during the read wakes us again
                if self._watchers.closing:
                    return
                if self._monotonic() - last_write >= config.heartbeat_seconds:
                    last_write = self._monotonic()
                    yield KEEP_ALIVE
                if self._monotonic() >= deadline:
                    return
                try:
                    current = await self._reader.get_sequenced_view(transaction_id)
                except Exception as exc:  # the database is unreachable: keep the stream, read again soon
                    self._failures.report(transaction_id, exc)
                    current, failing = None, True
                    continue
                failing = False
                if current is None:  # gone (transactions are never deleted)
                    return
