"""Real processes: `payments serve` and `payments worker` (arq) over MariaDB and Redis, the mock
Toss, and the fake study service. One stack per test module (one worker), torn down with the
module: every stack's sweeper re-queues any stale 45 of the shared database, so only one stack may
run at a time. A module that needs another stack (the worker crash) builds it with `private_stack`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import app
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
def catalog_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped catalog plus studies that started 3 and 8 days ago, for the refund policy's rule
    (its dates come from the catalog only, never from what the buyer sends)."""
    shipped = json.loads((Path(app.__file__).parent / "catalog.json").read_text())
    now = datetime.now(UTC)
    for product_id, days in (("study_started_3d", 3), ("study_started_8d", 8)):
        shipped["products"].append(
            {
                "productType": "STUDY",
                "productId": product_id,
                "name": f"A study that started {days} days ago",
                "amount": 50_000,
                "studyId": product_id,
                "startsAt": (now - timedelta(days=days)).isoformat(),
                "endsAt": (now + timedelta(days=30)).isoformat(),
            }
        )
    path = tmp_path_factory.mktemp("catalog") / "catalog.json"
    path.write_text(json.dumps(shipped))
    return path


@pytest.fixture(scope="module")
def stack(
    mysql_url: str,
    redis_url: str,
    mock_toss: RunningServer,
    downstream: FakeDownstream,
    catalog_path: Path,
) -> Iterator[Stack]:
    with private_stack(
        mysql_url=mysql_url,
        toss_url=mock_toss.url,
        downstream=downstream,
        workers=1,
        env={"PRODUCT_CATALOG_PATH": str(catalog_path)},
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
