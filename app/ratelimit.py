"""Per-user rate limits on the write endpoints (issue, refund): fixed one-minute windows.

Redis when configured (shared by every API replica), process memory otherwise. A limit of 0
turns a limit off (load tests do that). When Redis cannot be reached the limiter fails open:
the request goes through, counted by this process alone, with a WARNING at most once per
window and `payments_redis_unavailable_total{component="rate_limiter"}` for each request. After a
failure Redis is left alone for a few seconds, so a hung Redis does not slow every request down.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import messages as texts
from app.core.domain import PaymentError
from app.messages import Text
from app.metrics import REDIS_UNAVAILABLE

log = logging.getLogger("app.ratelimit")

_FAILED_OPEN = REDIS_UNAVAILABLE.labels(component="rate_limiter")


class RateLimited(PaymentError):
    code = "RATE_LIMITED"

    def __init__(self, text: Text | None = None, *, retry_after: int) -> None:
        super().__init__(text, details={"retryAfterSeconds": retry_after})
        self.retry_after = retry_after


class RateLimiter:
    WINDOW_SECONDS = 60
    REDIS_RETRY_SECONDS = 5.0

    def __init__(self, redis: Redis | None, limits: dict[str, int]) -> None:
        self._redis = redis
        self._limits = limits
        self._counts: dict[str, int] = {}
        self._warned_until = 0.0  # monotonic time before which a Redis failure is not logged again
        self._redis_after = 0.0  # monotonic time before which Redis is not asked (it just failed)

    async def hit(self, user_id: str, action: str) -> None:
        """Count one request; RateLimited (429) when the user is over the action's limit."""
        limit = self._limits.get(action, 0)
        if limit <= 0:
            return
        now = time.time()
        window = int(now // self.WINDOW_SECONDS)
        key = f"ratelimit:{action}:{user_id}:{window}"
        count = await self._count_shared(key) if self._redis is not None else None
        if count is None:
            count = self._count_here(key, window)
        if count > limit:
            retry_after = max(1, int((window + 1) * self.WINDOW_SECONDS - now))
            raise RateLimited(
                texts.RATE_LIMIT_EXCEEDED.format(
                    limit=limit,
                    action=texts.RATE_LIMITED_ACTIONS.get(action, Text(action, action)),
                    seconds=retry_after,
                ),
                retry_after=retry_after,
            )

    async def _count_shared(self, key: str) -> int | None:
        """The count across replicas; None when Redis cannot be reached (fail open)."""
        assert self._redis is not None
        if time.monotonic() < self._redis_after:
            _FAILED_OPEN.inc()
            return None
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self.WINDOW_SECONDS + 5)
            count, _ = await pipe.execute()
            return int(count)
        except (RedisError, OSError) as exc:
            _FAILED_OPEN.inc()
            self._redis_after = time.monotonic() + self.REDIS_RETRY_SECONDS
            if time.monotonic() >= self._warned_until:
                self._warned_until = time.monotonic() + self.WINDOW_SECONDS
                log.warning(
                    "rate limiter cannot reach Redis: failing open, counting in this process only",
                    extra={"error": repr(exc)},
                )
            return None

    def _count_here(self, key: str, window: int) -> int:
        if len(self._counts) > 100_000:  # drop old windows; bounded memory
            self._counts = {k: v for k, v in self._counts.items() if k.endswith(f":{window}")}
        count = self._counts[key] = self._counts.get(key, 0) + 1
        return count
