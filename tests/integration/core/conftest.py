"""Fixtures for the persistence adapters' integration tests: real MariaDB (migrated) and Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.domain import Method, ProductType, Status, Transaction, new_transaction_id
from app.core.sql.refunds import SqlRefundRepository
from app.core.sql.transactions import SqlTransactionRepository
from app.db_direct import DirectDatabase

TransactionFactory = Callable[..., Transaction]


@pytest.fixture
async def engine(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the run's migrated MariaDB database, with room for 25 concurrent callers."""
    created = create_async_engine(mysql_url, pool_size=25, max_overflow=5, pool_pre_ping=True)
    yield created
    await created.dispose()


@pytest.fixture(params=["engine", "direct"])
async def repository(
    request: pytest.FixtureRequest, engine: AsyncEngine, mysql_url: str
) -> AsyncIterator[SqlTransactionRepository]:
    """The repository as each process builds it on MySQL (its hot statements on a DirectDatabase,
    app.db_direct), and on the engine alone (as on SQLite): every test runs on both."""
    if request.param == "engine":
        yield SqlTransactionRepository(engine)
        return
    direct = DirectDatabase(mysql_url, pool_size=25, recycle_seconds=300, dialect=engine.dialect)
    try:
        yield SqlTransactionRepository(engine, hot=direct)
    finally:
        await direct.close()


@pytest.fixture
def refund_records(engine: AsyncEngine) -> SqlRefundRepository:
    return SqlRefundRepository(engine)


def unique_user() -> str:
    return f"itest-{secrets.token_hex(6)}"


def make_transaction(
    *,
    user_id: str | None = None,
    status: Status = Status.CREATED,
    amount: int = 50_000,
    created_at: datetime | None = None,
    expires_in: timedelta = timedelta(minutes=30),
    metadata: dict[str, object] | None = None,
) -> Transaction:
    """A fresh transaction with a unique id, as the issue use case would build it."""
    now = created_at or datetime.now(UTC)
    return Transaction(
        transaction_id=new_transaction_id(now),
        user_id=user_id or unique_user(),
        product_type=ProductType.STUDY,
        product_id="study_123",
        order_name="Async study: Kotlin coroutines (8 weeks)",
        amount=amount,
        method=Method.CARD,
        status=status,
        created_at=now,
        updated_at=now,
        expires_at=now + expires_in,
        provider="TOSS",
        metadata=metadata if metadata is not None else {"cohort": 7},
    )


@pytest.fixture
def new_transaction() -> TransactionFactory:
    return make_transaction
