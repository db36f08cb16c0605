"""Idempotency-Key stores (Stripe semantics): Redis in production, memory in the embedded default.

A key is scoped per user and endpoint. The first request claims it (in progress, with the
request's fingerprint); when it finishes its response is stored for 24 h and replayed. A
different fingerprint is PAY_009; a claim still in progress is PAY_010. An in-progress claim
expires on its own after `lock_seconds`, so a crashed request never blocks its key forever.
A Redis that cannot be reached is ServiceUnavailable (503): a key that cannot be checked must
not run its request, or a retry could do the work twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import messages as texts
from app.core.domain import IdempotencyKeyInProgress, IdempotencyKeyReused
from app.core.ports import ServiceUnavailable, StoredResponse
from app.metrics import REDIS_UNAVAILABLE

log = logging.getLogger("app.idempotency")

_UNAVAILABLE = REDIS_UNAVAILABLE.labels(component="idempotency")


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 of the request; the JSON body is canonicalised so key order does not matter."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except (msgspec.DecodeError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


class _Record(msgspec.Struct):
    fingerprint: str
    state: str  # "in_progress" | "done"
    status_code: int = 0
    body: bytes = b""


def _check(record: _Record, fingerprint: str) -> StoredResponse:
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if record.state != "done":
        raise IdempotencyKeyInProgress()
    return StoredResponse(status_code=record.status_code, body=record.body)


class RedisIdempotencyStore:
    def __init__(
        self, redis: Redis, *, ttl_seconds: int = 24 * 3600, lock_seconds: int = 60, prefix: str = "idem"
    ) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._lock = lock_seconds
        self._prefix = prefix

    def _key(self, scope: str, key: str) -> str:
        return f"{self._prefix}:{scope}:{hashlib.sha256(key.encode()).hexdigest()}"

    @asynccontextmanager
    async def _reachable(self, step: str) -> AsyncIterator[None]:
        try:
            yield
        except (RedisError, OSError) as exc:
            _UNAVAILABLE.inc()
            log.warning("idempotency store unreachable", extra={"step": step, "error": repr(exc)})
            raise ServiceUnavailable(texts.IDEMPOTENCY_UNAVAILABLE) from exc

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        name = self._key(scope, key)
        claim = msgspec.msgpack.encode(_Record(fingerprint=fingerprint, state="in_progress"))
        async with self._reachable("begin"):
            # SET NX is atomic: of two concurrent duplicates exactly one claims the key.
            if await self._redis.set(name, claim, nx=True, ex=self._lock):
                return None
            raw = await self._redis.get(name)
            if raw is None:  # expired between the two calls: claim again
                if await self._redis.set(name, claim, nx=True, ex=self._lock):
                    return None
                raise IdempotencyKeyInProgress()
        return _check(msgspec.msgpack.decode(raw, type=_Record), fingerprint)

    async def finish(self, scope: str, key: str, fingerprint: str, response: StoredResponse) -> None:
        record = _Record(
            fingerprint=fingerprint, state="done", status_code=response.status_code, body=response.body
        )
        async with self._reachable("finish"):
            await self._redis.set(self._key(scope, key), msgspec.msgpack.encode(record), ex=self._ttl)

    async def abandon(self, scope: str, key: str) -> None:
        async with self._reachable("abandon"):
            await self._redis.delete(self._key(scope, key))


class InMemoryIdempotencyStore:
    """Same semantics in one process (the embedded default and unit tests)."""

    def __init__(self, *, ttl_seconds: int = 24 * 3600, lock_seconds: int = 60) -> None:
        self._ttl = ttl_seconds
        self._lock = lock_seconds
        self._records: dict[tuple[str, str], tuple[float, _Record]] = {}

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        now = time.monotonic()
        entry = self._records.get((scope, key))
        if entry is None or entry[0] <= now:
            self._records[(scope, key)] = (
                now + self._lock,
                _Record(fingerprint=fingerprint, state="in_progress"),
            )
            return None
        return _check(entry[1], fingerprint)

    async def finish(self, scope: str, key: str, fingerprint: str, response: StoredResponse) -> None:
        record = _Record(
            fingerprint=fingerprint, state="done", status_code=response.status_code, body=response.body
        )
        self._records[(scope, key)] = (time.monotonic() + self._ttl, record)

    async def abandon(self, scope: str, key: str) -> None:
        self._records.pop((scope, key), None)
