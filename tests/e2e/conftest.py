"""End-to-end fixtures: the payments API as a real process in front of the real mock Toss."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.auth import TokenAuthority
from tests.support.servers import RunningServer, free_port, running_server

E2E_FRONTEND_BASE_URL = "http://frontend.test"


@pytest.fixture(scope="session")
def api_jwt_secret() -> str:
    """The JWT secret of the API process started for this run (random: nothing else knows it)."""
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def token_authority(api_jwt_secret: str) -> TokenAuthority:
    """Mints bearer tokens the e2e API process accepts."""
    return TokenAuthority(api_jwt_secret)


@pytest.fixture(scope="session")
def payments_api(
    mysql_url: str, redis_url: str, mock_toss: RunningServer, api_jwt_secret: str
) -> Iterator[RunningServer]:
    """`payments serve` on MariaDB + Redis, confirming against the shared mock Toss.

    PG timeouts are short (1 s read, 2 attempts, 0.2 s apart) so slow-PG scenarios run in seconds.
    """
    port = free_port()
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": mysql_url,
        "REDIS_URL": redis_url,
        "TOSS_API_URL": mock_toss.url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "FRONTEND_BASE_URL": E2E_FRONTEND_BASE_URL,
        "TOSS_READ_TIMEOUT_SECONDS": "1",
        "TOSS_RETRY_DELAY_SECONDS": "0.2",
        "TOSS_MAX_ATTEMPTS": "2",
        "JWT_SECRET": api_jwt_secret,
        "TRANSACTION_EXPIRE_MINUTES": "30",
    }
    with running_server(["app.cli", "serve"], port=port, health_path="/health/live", env=env) as server:
        yield server


@pytest.fixture
async def e2e_db_engine(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct SQL access to the e2e API's database (e.g. to move a transaction's expiry)."""
    engine = create_async_engine(mysql_url)
    yield engine
    await engine.dispose()
