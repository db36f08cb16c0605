"""The worker's Redis retry: it waits through a short outage and gives up after its time bound."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from app.provisioning import worker
from app.provisioning.worker import RideOutRedisOutages
from app.settings import load_settings


async def test_a_command_waits_until_redis_answers_again() -> None:
    retry = RideOutRedisOutages(seconds=5)
    calls: list[str] = []

    async def command() -> str:
        calls.append("try")
        tries = calls.count("try")
        if tries == 1:
            raise ConnectionRefusedError("redis is restarting")  # a connect, before redis-py wraps it
        if tries < 4:
            raise RedisConnectionError("Connection closed by server.")
        return "PONG"

    async def disconnect(_: Exception) -> None:
        calls.append("disconnect")

    assert await retry.call_with_retry(command, disconnect) == "PONG"
    assert calls.count("try") == 4 and calls.count("disconnect") == 3


async def test_it_gives_up_after_its_time_bound() -> None:
    retry = RideOutRedisOutages(seconds=1.0)
    tries = 0

    async def command() -> None:
        nonlocal tries
        tries += 1
        raise RedisConnectionError(f"still down ({tries})")

    async def disconnect(_: Exception) -> None:
        return None

    # Waits 0.1, 0.2, 0.4, 0.8 s at most: it gives up long before this bound on the test itself.
    with pytest.raises(RedisConnectionError) as raised:
        await asyncio.wait_for(retry.call_with_retry(command, disconnect), timeout=30)
    assert tries >= 2  # it did wait for Redis before giving up ...
    assert str(raised.value) == f"still down ({tries})"  # ... and raised the last error, not a timeout


async def test_other_redis_errors_are_not_retried() -> None:
    retry = RideOutRedisOutages(seconds=5)
    tries = 0

    async def command() -> None:
        nonlocal tries
        tries += 1
        raise ResponseError("WRONGTYPE")

    async def disconnect(_: Exception) -> None:
        return None

    with pytest.raises(ResponseError):
        await retry.call_with_retry(command, disconnect)
    assert tries == 1


def test_the_worker_uses_it() -> None:
    for arq_settings in (worker.grant_worker_settings, worker.webhook_worker_settings):
        settings = arq_settings(load_settings({"REDIS_URL": "redis://127.0.0.1:6390/3"}))["redis_settings"]
        assert isinstance(settings.retry, RideOutRedisOutages)
        assert (settings.port, settings.database) == (6390, 3)
