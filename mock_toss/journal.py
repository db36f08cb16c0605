"""The request journal: every /v1 API request the mock received, so tests can assert on calls."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 50_000


@dataclass(slots=True)
class JournalEntry:
    """One API request; `status` stays None until the mock has answered it."""

    id: int
    method: str
    path: str
    query: dict[str, str]
    body: Any
    idempotency_key: str | None
    time: str
    order_id: str | None = None
    payment_key: str | None = None
    status: int | None = None
    duration_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as `GET /_mock/requests` shows it."""
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": self.body,
            "idempotencyKey": self.idempotency_key,
            "orderId": self.order_id,
            "paymentKey": self.payment_key,
            "status": self.status,
            "time": self.time,
            "durationMs": self.duration_ms,
        }


def path_matches(path: str, wanted: str) -> bool:
    """Exact match, or prefix match when `wanted` ends with `*` or `/`."""
    if wanted.endswith("*"):
        return path.startswith(wanted[:-1])
    if wanted.endswith("/"):
        return path.startswith(wanted)
    return path == wanted


class RequestJournal:
    """The last MAX_ENTRIES API requests, oldest first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=max_entries)
        self._ids = itertools.count(1)

    def record(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        idempotency_key: str | None,
        time: str,
        payment_key: str | None,
    ) -> JournalEntry:
        """Append a request as it arrives; the caller fills in status and orderId when it answers."""
        entry = JournalEntry(
            id=next(self._ids),
            method=method,
            path=path,
            query=query,
            body=body,
            idempotency_key=idempotency_key,
            time=time,
            payment_key=payment_key,
        )
        self._entries.append(entry)
        return entry

    def find(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        order_id: str | None = None,
        payment_key: str | None = None,
        status: int | None = None,
    ) -> list[JournalEntry]:
        """Entries matching every filter given, oldest first."""
        wanted_method = method.upper() if method else None
        return [
            entry
            for entry in self._entries
            if (wanted_method is None or entry.method == wanted_method)
            and (path is None or path_matches(entry.path, path))
            and (order_id is None or entry.order_id == order_id)
            and (payment_key is None or entry.payment_key == payment_key)
            and (status is None or entry.status == status)
        ]

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
