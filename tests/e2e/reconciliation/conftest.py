"""Environments for the reconciliation e2e tests (real API, worker and mock processes).

Each environment has its own MariaDB database (a stack's sweeper reconciles every pending
transaction it can see, against its own mock) and its own Redis database on a private
redis-server (so no other test session's workers take its jobs).

`main_env`: webhooks unsigned, the default virtual-account recheck (1 h), so what resolves a
deposit is the webhook. `signed_env`: TOSS_WEBHOOK_SECRET set and the mock signing with it,
VIRTUAL_ACCOUNT_RECHECK_SECONDS=1 so the sweeper notices an expired virtual account at once, and
RECONCILE_GIVE_UP_SECONDS=3 (only a failing lookup ever reaches the give-up rule); its mock's
clock is moved by the expiry test, so nothing else shares that mock. `flood_env`: two webhook job
slots, a low per-source webhook limit and one trusted proxy address, for the webhook flood tests
(their slow lookups and spent limits must not reach the other tests).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from .helpers import (
    FLOOD_ENV,
    GIVE_UP_SECONDS,
    Env,
    Shop,
    fresh_database,
    private_redis,
    running_env,
)


@pytest.fixture(scope="package")
def redis_base() -> Iterator[str]:
    with private_redis() as url:
        yield url


@pytest.fixture(scope="package")
def main_env(mysql_url: str, redis_base: str) -> Iterator[Env]:
    # mysql_url is requested for its check that MariaDB is up; the env uses a database of its own.
    with (
        fresh_database("recon_main") as database_url,
        running_env(database_url=database_url, redis_base_url=redis_base) as env,
    ):
        yield env


@pytest.fixture(scope="package")
def signed_env(mysql_url: str, redis_base: str) -> Iterator[Env]:
    with (
        fresh_database("recon_signed") as database_url,
        running_env(
            database_url=database_url,
            redis_base_url=redis_base,
            signing_secret="whsec_" + secrets.token_hex(16),
            env={"VIRTUAL_ACCOUNT_RECHECK_SECONDS": "1", "RECONCILE_GIVE_UP_SECONDS": str(GIVE_UP_SECONDS)},
        ) as env,
    ):
        yield env


@pytest.fixture(scope="package")
def flood_env(mysql_url: str, redis_base: str) -> Iterator[Env]:
    with (
        fresh_database("recon_flood") as database_url,
        running_env(database_url=database_url, redis_base_url=redis_base, env=FLOOD_ENV) as env,
    ):
        yield env


async def _shop(env: Env) -> AsyncIterator[Shop]:
    engine = create_async_engine(env.database_url, pool_size=2, max_overflow=2)
    timeout = httpx.Timeout(20.0)
    async with (
        httpx.AsyncClient(base_url=env.stack.api_url, timeout=timeout, trust_env=False) as api,
        httpx.AsyncClient(base_url=env.mock.url, timeout=timeout, trust_env=False) as mock,
    ):
        try:
            yield Shop(env, api=api, mock=mock, db=engine)
        finally:
            env.proxy.fail_next(0)
            await mock.delete("/_mock/chaos")  # never leave chaos behind for the next test
            await engine.dispose()


@pytest.fixture
async def shop(main_env: Env) -> AsyncIterator[Shop]:
    async for value in _shop(main_env):
        yield value


@pytest.fixture
async def signed_shop(signed_env: Env) -> AsyncIterator[Shop]:
    async for value in _shop(signed_env):
        yield value


@pytest.fixture
async def flood_shop(flood_env: Env) -> AsyncIterator[Shop]:
    async for value in _shop(flood_env):
        yield value
