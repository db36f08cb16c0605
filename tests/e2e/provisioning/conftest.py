"""Real processes: `payments serve` and `payments worker` (arq) over MariaDB and Redis, the mock
Toss, and the fake study service. One stack per test module (one worker), torn down with the
module: every stack's sweeper re-queues any stale 45 of the shared database, so only one stack may
run at a time. A module that needs another stack (the worker crash) builds it with `private_stack`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.integration.provisioning.redis_claim import claimed_redis_db
from tests.support.fake_downstream import FakeDownstream, running_fake_downstream
from tests.support.servers import RunningServer
from tests.support.stack import Stack, running_stack

from .helpers import Shop


@contextlib.contextmanager
def private_stack(
    *,
    mysql_url: str,
    toss_url: str,
    downstream: FakeDownstream,
    workers: int,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """running_stack with STUDY_SERVICE_URL on the fake and a Redis database of our own.

    The stack's own database (10–15) is shared by concurrent runs of other suites, and any worker
    on our queue's database would take our jobs: the REDIS_URL override points at a claimed one.
    """
    with (
        claimed_redis_db() as redis_db_url,
        running_stack(
            mysql_url=mysql_url,
            toss_url=toss_url,
            workers=workers,
            env={"STUDY_SERVICE_URL": downstream.url, "REDIS_URL": redis_db_url, **(env or {})},
        ) as started,
    ):
        yield started


@pytest.fixture(scope="module")
def downstream() -> Iterator[FakeDownstream]:
    with running_fake_downstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    mysql_url: str, redis_url: str, mock_toss: RunningServer, downstream: FakeDownstream
) -> Iterator[Stack]:
    with private_stack(
        mysql_url=mysql_url, toss_url=mock_toss.url, downstream=downstream, workers=1
    ) as started:
        yield started


@pytest.fixture
async def shop(stack: Stack, mock_toss: RunningServer, downstream: FakeDownstream) -> AsyncIterator[Shop]:
    downstream.reset()
    timeout = httpx.Timeout(20.0)
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=timeout) as api,
        httpx.AsyncClient(base_url=mock_toss.url, timeout=timeout) as mock,
    ):
        yield Shop(stack=stack, api=api, mock=mock, fake=downstream)
    downstream.reset()
