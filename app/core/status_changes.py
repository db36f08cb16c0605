"""The status-change bus: how a committed write reaches every process's status cache.

Each write announces its transaction id after the commit. `LocalStatusChanges` serves one process
(the embedded SQLite mode). With Redis, `RedisStatusChanges` drops the view in its own process at
once and PUBLISHes the id; `StatusChangeListener`, one task per API process, SUBSCRIBEs and drops
the views it hears about. The cache is only trusted while the listener is subscribed: rules in
`app.core.status_cache`.

The same announcements wake this process's open status streams (`StatusWatchers`, given as
`watchers`): the listener fans each id out to the streams of that transaction, and tells them
whether it is subscribed (while it is not, they read the database on a short interval).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.status_cache import StatusViewCache
from app.core.status_stream import StatusWatchers
from app.metrics import STATUS_CHANGE_BUS

log = logging.getLogger("app.status_changes")

_PUBLISH_FAILED = STATUS_CHANGE_BUS.labels(event="publish_failed")
_SUBSCRIBED = STATUS_CHANGE_BUS.labels(event="subscribed")
_LOST = STATUS_CHANGE_BUS.labels(event="subscription_lost")


def status_channel(redis: Redis) -> str:
    """One channel per Redis database: PUBLISH ignores SELECT, and test stacks use separate dbs."""
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    return f"payments:status-changed:db{db}"


class UncachedStatusChanges:
    """No process caches status views (a repository built without a bus: tests, scripts)."""

    async def announce(self, transaction_id: str) -> None:
        return None


class LocalStatusChanges:
    """One process holds every cache that could be stale: drop the view here, nothing more."""

    def __init__(self, cache: StatusViewCache, *, watchers: StatusWatchers | None = None) -> None:
        self._cache = cache
        self._watchers = watchers

    async def announce(self, transaction_id: str) -> None:
        self._cache.invalidate(transaction_id)
        if self._watchers is not None:
            self._watchers.changed(transaction_id)


class RedisStatusChanges:
    def __init__(
        self, redis: Redis, cache: StatusViewCache, *, watchers: StatusWatchers | None = None
    ) -> None:
        self._redis = redis
        self._cache = cache
        self._watchers = watchers
        self._channel = status_channel(redis)

    async def announce(self, transaction_id: str) -> None:
        self._cache.invalidate(transaction_id)  # this process's own polls see the write at once
        if self._watchers is not None:
            self._watchers.changed(transaction_id)  # and its streams, even if Redis is away
        try:
            await self._redis.publish(self._channel, transaction_id)
        except (RedisError, OSError) as exc:
            # The write is committed and stays; other processes may serve the old view until it
            # expires (STATUS_CACHE_TTL_SECONDS).
            _PUBLISH_FAILED.inc()
            log.warning(
                "status change not published; other processes' cached view expires on its own",
                extra={"transactionId": transaction_id, "error": repr(exc)},
            )


class StatusChangeListener:
    """Keeps one process's cache subscribed; marks it incoherent whenever the subscription is lost."""

    def __init__(
        self,
        redis: Redis,
        cache: StatusViewCache,
        *,
        ping_seconds: float = 2.0,
        watchers: StatusWatchers | None = None,
    ) -> None:
        self._redis = redis
        self._cache = cache
        self._watchers = watchers
        self._channel = status_channel(redis)
        self._ping = ping_seconds
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.1  # seconds before subscribing again; doubles up to 5 s, reset once subscribed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="status-change-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        """Subscribe, apply invalidations, and start over (after a short backoff) on any failure."""
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                self._lose(None)
                raise
            except Exception as exc:  # RedisError, OSError or a silent connection: start over
                was_coherent = self._cache.coherent
                self._lose(exc)
                if not was_coherent and self._backoff == 0.1:  # never subscribed, first failure
                    log.warning(
                        "status-change subscription failed; retrying with backoff, polls read the database",
                        extra={"error": repr(exc)},
                    )
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 5.0)

    def _lose(self, error: BaseException | None) -> None:
        if not self._cache.coherent:
            return
        self._cache.set_coherent(False)
        if self._watchers is not None:
            self._watchers.set_live(False)  # the streams read the database until it is back
        if error is not None:
            _LOST.inc()
            log.warning(
                "status-change subscription lost; polls read the database until it is back",
                extra={"error": repr(error)},
            )

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            last_heard = next_ping = time.monotonic()
            while True:
                message = await pubsub.get_message(timeout=self._ping)
                now = time.monotonic()
                if message is not None:
                    last_heard = now
                    if message["type"] == "message":
                        data = message["data"]
                        transaction_id = data.decode() if isinstance(data, bytes) else str(data)
                        self._cache.invalidate(transaction_id)
                        if self._watchers is not None:
                            self._watchers.changed(transaction_id)
                    elif message["type"] == "subscribe":
                        # From here on every announcement reaches us: the cache may be trusted.
                        self._cache.set_coherent(True)
                        if self._watchers is not None:
                            self._watchers.set_live(True)  # and each stream reads once: gaps close
                        self._backoff = 0.1
                        _SUBSCRIBED.inc()
                        log.info("status-change subscription active", extra={"channel": self._channel})
                if now >= next_ping:
                    if now - last_heard > 3 * self._ping:
                        raise ConnectionError("Redis did not answer the subscription's pings")
                    await pubsub.ping()
                    next_ping = now + self._ping
        finally:
            await pubsub.aclose()
