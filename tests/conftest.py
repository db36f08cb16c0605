"""Shared fixtures: real MariaDB and Redis (never silently skipped), servers as real processes."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.servers import REDIS_HOST_URL, RunningServer, port_open, running_server

MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", f"{REDIS_HOST_URL}/9")
HOW_TO_START = "Start the services with `make services` (or `bash scripts/ensure-services.sh`)."


def _require_port(name: str, port: int) -> None:
    if not port_open(port):
        pytest.fail(f"{name} is not reachable on 127.0.0.1:{port}. {HOW_TO_START}", pytrace=False)


async def _create_database(name: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{MARIADB_ADMIN_URL}/mysql")
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    await engine.dispose()


async def _drop_database(name: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{MARIADB_ADMIN_URL}/mysql")
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    await engine.dispose()


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A fresh, migrated MariaDB database for this test run; dropped at the end."""
    from app.migrate import upgrade_database

    _require_port("MariaDB", 3306)
    name = f"payments_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_create_database(name))
    url = f"{MARIADB_ADMIN_URL}/{name}"
    try:
        upgrade_database(url)
        yield url
    finally:
        asyncio.run(_drop_database(name))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis database 9, emptied once at the start of the run."""
    import redis

    _require_port("Redis", int(REDIS_HOST_URL.rsplit(":", 1)[-1]))
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def mock_toss() -> Iterator[RunningServer]:
    """The mock Toss as a real process, shared by the run (tests reset what they need)."""
    with running_server(
        ["mock_toss", "--time-scale", "0.001", "--slow-confirm-seconds", "4"], health_path="/_mock/health"
    ) as server:
        yield server


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[object]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
