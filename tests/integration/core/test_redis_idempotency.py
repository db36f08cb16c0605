"""RedisIdempotencyStore against a real Redis (database 9 of the test run)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.core.domain import IdempotencyKeyInProgress, IdempotencyKeyReused
from app.core.idempotency import RedisIdempotencyStore, request_fingerprint
from app.core.ports import StoredResponse
from app.http.errors import http_status_of

DAY = 24 * 3600


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test alone, so tests never see each other's keys."""
    return f"itest-idem-{secrets.token_hex(4)}"


@pytest.fixture
def store(redis: Redis, prefix: str) -> RedisIdempotencyStore:
    return RedisIdempotencyStore(redis, prefix=prefix)


async def _only_key(redis: Redis, prefix: str) -> bytes:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    assert len(keys) == 1, keys
    return keys[0]


FP_A = request_fingerprint("POST", "/api/payments/issue", b'{"amount": 50000, "productId": "study_123"}')
FP_B = request_fingerprint(
    "POST", "/api/payments/issue", b'{"amount": 9900, "productId": "resume_credit_10"}'
)
RESPONSE = StoredResponse(status_code=201, body=b'{"transactionId":"TXN_1"}')


def test_fingerprint_ignores_json_key_order_but_not_values() -> None:
    a = request_fingerprint("POST", "/p", b'{"a": 1, "b": 2}')
    assert a == request_fingerprint("post", "/p", b'{"b":2,"a":1}')
    assert a != request_fingerprint("POST", "/p", b'{"a": 1, "b": 3}')
    assert a != request_fingerprint("POST", "/other", b'{"a": 1, "b": 2}')


async def test_begin_finish_then_replay(store: RedisIdempotencyStore) -> None:
    assert await store.begin("user-1:POST:/api/payments/issue", "key-1", FP_A) is None
    await store.finish("user-1:POST:/api/payments/issue", "key-1", FP_A, RESPONSE)

    replayed = await store.begin("user-1:POST:/api/payments/issue", "key-1", FP_A)
    again = await store.begin("user-1:POST:/api/payments/issue", "key-1", FP_A)

    assert replayed == RESPONSE
    assert again == RESPONSE


async def test_finished_key_with_a_different_body_is_pay_009(store: RedisIdempotencyStore) -> None:
    assert await store.begin("u:POST:/issue", "key-1", FP_A) is None
    await store.finish("u:POST:/issue", "key-1", FP_A, RESPONSE)

    with pytest.raises(IdempotencyKeyReused) as caught:
        await store.begin("u:POST:/issue", "key-1", FP_B)

    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_009", 422)


async def test_key_still_in_progress_is_pay_010(store: RedisIdempotencyStore) -> None:
    assert await store.begin("u:POST:/issue", "key-1", FP_A) is None

    with pytest.raises(IdempotencyKeyInProgress) as caught:
        await store.begin("u:POST:/issue", "key-1", FP_A)

    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_010", 409)


async def test_in_progress_key_with_a_different_body_is_pay_009(store: RedisIdempotencyStore) -> None:
    assert await store.begin("u:POST:/issue", "key-1", FP_A) is None

    with pytest.raises(IdempotencyKeyReused):
        await store.begin("u:POST:/issue", "key-1", FP_B)


async def test_abandon_frees_the_key_for_a_retry(
    store: RedisIdempotencyStore, redis: Redis, prefix: str
) -> None:
    assert await store.begin("u:POST:/issue", "key-1", FP_A) is None
    await store.abandon("u:POST:/issue", "key-1")

    assert [key async for key in redis.scan_iter(match=f"{prefix}:*")] == []
    assert await store.begin("u:POST:/issue", "key-1", FP_B) is None  # even with another body


async def test_scopes_and_keys_are_independent(store: RedisIdempotencyStore) -> None:
    assert await store.begin("alice:POST:/issue", "shared", FP_A) is None
    assert await store.begin("bob:POST:/issue", "shared", FP_A) is None  # another user
    assert await store.begin("alice:POST:/refund", "shared", FP_A) is None  # another endpoint
    assert await store.begin("alice:POST:/issue", "other", FP_A) is None  # another key


async def test_finished_key_lives_24_hours(store: RedisIdempotencyStore, redis: Redis, prefix: str) -> None:
    assert await store.begin("u:POST:/issue", "key-ttl", FP_A) is None
    await store.finish("u:POST:/issue", "key-ttl", FP_A, RESPONSE)

    ttl = await redis.ttl(await _only_key(redis, prefix))

    assert DAY - 60 <= ttl <= DAY


async def test_in_progress_claim_expires_on_its_own(
    store: RedisIdempotencyStore, redis: Redis, prefix: str
) -> None:
    """A crashed request must not block its key for 24 h: the claim has a short lock TTL."""
    assert await store.begin("u:POST:/issue", "key-lock", FP_A) is None

    ttl = await redis.ttl(await _only_key(redis, prefix))

    assert 0 < ttl <= 60


async def test_expired_claim_can_be_claimed_again(redis: Redis, prefix: str) -> None:
    store = RedisIdempotencyStore(redis, prefix=prefix, lock_seconds=1)
    assert await store.begin("u:POST:/issue", "key-crash", FP_A) is None
    await asyncio.sleep(1.2)

    assert await store.begin("u:POST:/issue", "key-crash", FP_A) is None


async def test_keys_are_hashed_not_stored_verbatim(
    store: RedisIdempotencyStore, redis: Redis, prefix: str
) -> None:
    raw_key = "k" * 255
    assert await store.begin("u:POST:/issue", raw_key, FP_A) is None

    name = await _only_key(redis, prefix)

    assert raw_key.encode() not in name
    assert len(name) < 200


async def test_twenty_concurrent_begins_have_exactly_one_winner(store: RedisIdempotencyStore) -> None:
    async def attempt() -> str:
        try:
            result = await store.begin("u:POST:/issue", "key-race", FP_A)
        except IdempotencyKeyInProgress:
            return "in_progress"
        return "claimed" if result is None else "replayed"

    outcomes = await asyncio.gather(*(attempt() for _ in range(20)))

    assert outcomes.count("claimed") == 1
    assert outcomes.count("in_progress") == 19


async def test_concurrent_begins_after_finish_all_replay(store: RedisIdempotencyStore) -> None:
    assert await store.begin("u:POST:/issue", "key-done", FP_A) is None
    await store.finish("u:POST:/issue", "key-done", FP_A, RESPONSE)

    results = await asyncio.gather(*(store.begin("u:POST:/issue", "key-done", FP_A) for _ in range(20)))

    assert results == [RESPONSE] * 20
