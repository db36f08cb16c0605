"""Toss's `Idempotency-Key`: the first response is replayed for 15 days; the body is not compared."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from mock_toss.store import MockClock

MAX_KEY_LENGTH = 300
KEY_LIFETIME = timedelta(days=15)


class IdempotencyIdentity(NamedTuple):
    """What makes two requests "the same" for Toss: key, API key, path and method — not the body."""

    key: str
    secret_key: str
    path: str
    method: str


@dataclass(slots=True)
class StoredResponse:
    """The first answer to an idempotent request; `status` is None while it is still processing."""

    first_used_at: datetime
    status: int | None = None
    body: bytes = b""


class IdempotencyStore:
    """Claims, completes and replays idempotent requests; bounded so a load test cannot exhaust memory."""

    def __init__(self, clock: MockClock, max_entries: int = 200_000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[IdempotencyIdentity, StoredResponse] = OrderedDict()

    def begin(self, identity: IdempotencyIdentity) -> StoredResponse | None:
        """Claim the identity and return None, or return the stored response (status None = processing)."""
        now = self._clock.now()
        stored = self._entries.get(identity)
        if stored is not None and now - stored.first_used_at < KEY_LIFETIME:
            return stored
        self._entries[identity] = StoredResponse(first_used_at=now)
        self._entries.move_to_end(identity)
        self._evict()
        return None

    def complete(self, identity: IdempotencyIdentity, status: int, body: bytes) -> None:
        """Remember the response the claimed request produced."""
        stored = self._entries.get(identity)
        if stored is not None:
            stored.status = status
            stored.body = body

    def release(self, identity: IdempotencyIdentity) -> None:
        """Forget a claim whose request produced no response (it crashed or was cancelled)."""
        stored = self._entries.get(identity)
        if stored is not None and stored.status is None:
            del self._entries[identity]

    def clear(self) -> None:
        """Forget every key."""
        self._entries.clear()

    def _evict(self) -> None:
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
