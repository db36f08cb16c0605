"""Per-user rate limits on the write endpoints (issue, refund): fixed one-minute windows.

Redis when configured (shared by every API replica), process memory otherwise. A limit of 0
turns a limit off (load tests do that).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from app.core.domain import PaymentError


class RateLimited(PaymentError):
    code, http_status, default_message = "RATE_LIMITED", 429, "Too many requests; retry later."

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retryAfterSeconds": retry_after})
        self.retry_after = retry_after


class RateLimiter:
    WINDOW_SECONDS = 60

    def __init__(self, redis: Redis | None, limits: dict[str, int]) -> None:
        self._redis = redis
        self._limits = limits
        self._counts: dict[str, int] = {}

    async def hit(self, user_id: str, action: str) -> None:
        """Count one request; RateLimited (429) when the user is over the action's limit."""
        limit = self._limits.get(action, 0)
        if limit <= 0:
            return
        now = time.time()
        window = int(now // self.WINDOW_SECONDS)
        key = f"ratelimit:{action}:{user_id}:{window}"
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self.WINDOW_SECONDS + 5)
            count, _ = await pipe.execute()
        else:
            if len(self._counts) > 100_000:  # drop old windows; bounded memory
                self._counts = {k: v for k, v in self._counts.items() if k.endswith(f":{window}")}
            count = self._counts[key] = self._counts.get(key, 0) + 1
        if int(count) > limit:
            retry_after = max(1, int((window + 1) * self.WINDOW_SECONDS - now))
            raise RateLimited(
                f"At most {limit} {action} requests per minute; retry in {retry_after} s.",
                retry_after=retry_after,
            )
