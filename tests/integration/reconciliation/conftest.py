"""A MariaDB database of this package's own, so claims see only the rows these tests put there.

The run's shared database (`mysql_url`) may hold pending transactions of other tests, and other
tests' worker processes may sweep it; a claim test must see exactly its own rows, so this package
creates, migrates and drops a database of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.domain import Method, ProductType, Status, Transaction, new_transaction_id
from app.core.sql.transactions import SqlTransactionRepository
from app.core.sql.webhook_events import SqlWebhookEventRepository

MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306")


async def _admin(statement: str) -> None:
    engine = create_async_engine(f"{MARIADB_ADMIN_URL}/mysql")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="package")
def reconciliation_db_url(mysql_url: str) -> Iterator[str]:
    """A fresh, migrated database for this package (mysql_url first: it checks MariaDB is up)."""
    from app.migrate import upgrade_database

    name = f"payments_recon_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    url = f"{MARIADB_ADMIN_URL}/{name}"
    try:
        upgrade_database(url)
        yield url
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture
async def engine(reconciliation_db_url: str) -> AsyncIterator[AsyncEngine]:
    """Room for 25 concurrent connections: every concurrent caller gets its own."""
    created = create_async_engine(reconciliation_db_url, pool_size=25, max_overflow=5, pool_pre_ping=True)
    yield created
    await created.dispose()


@pytest.fixture
async def clean_tables(engine: AsyncEngine) -> None:
    """Nothing pending and no webhook events left by an earlier test of this package."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE transactions SET next_reconcile_at = NULL"))
        await conn.execute(text("DELETE FROM webhook_events"))


@pytest.fixture
def repository(engine: AsyncEngine, clean_tables: None) -> SqlTransactionRepository:
    return SqlTransactionRepository(engine)


@pytest.fixture
def webhook_events(engine: AsyncEngine, clean_tables: None) -> SqlWebhookEventRepository:
    return SqlWebhookEventRepository(engine)


def pending_transaction(now: datetime) -> Transaction:
    """A transaction as the success callback leaves it: PAYMENT_PENDING (30) with a paymentKey."""
    return Transaction(
        transaction_id=new_transaction_id(now),
        user_id=f"itest-recon-{secrets.token_hex(5)}",
        product_type=ProductType.STUDY,
        product_id="study_123",
        order_name="Async study",
        amount=50_000,
        method=Method.CARD,
        status=Status.PAYMENT_PENDING,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(minutes=30),
        provider="TOSS",
        payment_key=f"pk_{secrets.token_hex(8)}",
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
