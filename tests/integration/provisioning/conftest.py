"""Provisioning on real MariaDB + Redis + arq: Services built like a worker process, a burst Worker,
the real mock Toss and the fake study/credit service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.main import Services, build_services
from app.settings import load_settings
from tests.support.fake_downstream import FakeDownstream, running_fake_downstream
from tests.support.servers import RunningServer

from .redis_claim import claimed_redis_db, reset_claimed

ServicesFactory = Callable[..., Awaitable[Services]]


@pytest.fixture(scope="module")
def fake_service() -> Iterator[FakeDownstream]:
    with running_fake_downstream() as fake:
        yield fake


@pytest.fixture
def fake(fake_service: FakeDownstream) -> Iterator[FakeDownstream]:
    """The fake study/credit service, in normal service with an empty record for each test."""
    fake_service.reset()
    yield fake_service
    fake_service.reset()


@pytest.fixture(scope="module")
def claimed_redis_url(redis_url: str) -> Iterator[str]:
    """A Redis database of our own for the module (redis_url checks that Redis is up)."""
    with claimed_redis_db() as url:
        yield url


@pytest.fixture
def provisioning_redis_url(claimed_redis_url: str) -> str:
    """Our Redis database, emptied for each test."""
    reset_claimed(claimed_redis_url)
    return claimed_redis_url


@pytest.fixture
async def make_services(
    mysql_url: str, provisioning_redis_url: str, mock_toss: RunningServer
) -> AsyncIterator[ServicesFactory]:
    """Build Services like `payments worker` does, with fast retries; closed after the test."""
    built: list[Services] = []

    async def factory(**overrides: Any) -> Services:
        values: dict[str, Any] = {
            "database_url": mysql_url,
            "redis_url": provisioning_redis_url,
            "environment": "test",
            "toss_api_url": mock_toss.url,
            "toss_read_timeout_seconds": 1.0,
            "toss_max_attempts": 1,
            "toss_retry_delay_seconds": 0.1,
            "provisioning_retry_base_seconds": 0.05,
            "provisioning_retry_max_seconds": 0.2,
            "provisioning_max_tries": 3,
            "provisioning_http_timeout_seconds": 2.0,
            "refund_retry_seconds": 0.2,
            "public_base_url": "http://127.0.0.1:9",
            "frontend_base_url": "http://frontend.test",
            **overrides,
        }
        services = build_services(load_settings({}, **values))
        built.append(services)
        return services

    yield factory
    for services in built:
        await services.close()


@pytest.fixture
async def toss(mock_toss: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock_toss.url, timeout=20) as client:
        yield client
