"""app.db_direct against the real MariaDB: the hot path's own connection handling.

What SQLAlchemy's engine did for these statements, DirectDatabase must do too: commit all or
nothing, replace a connection the server dropped without failing the request, raise the engine's
error kinds, and count the rows an UPDATE matched (the guarded transitions rely on it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.sql.transactions import SqlTransactionRepository
from app.db import transactions as tx_table
from app.db_direct import DirectDatabase
from app.outages import database_unavailable

from .conftest import make_transaction

_STATUS_OF = select(tx_table.c.status, tx_table.c.updated_at).where(
    tx_table.c.transaction_id == bindparam("transaction_id")
)
_TOUCH = (
    update(tx_table)
    .where(tx_table.c.transaction_id == bindparam("where_transaction_id"))
    .values(status=bindparam("status"))
)


@pytest.fixture
async def direct(engine: AsyncEngine, mysql_url: str) -> AsyncIterator[DirectDatabase]:
    database = DirectDatabase(mysql_url, pool_size=3, recycle_seconds=300, dialect=engine.dialect)
    try:
        yield database
    finally:
        await database.close()


async def test_a_failed_block_commits_nothing(engine: AsyncEngine, direct: DirectDatabase) -> None:
    transaction = make_transaction()
    repository = SqlTransactionRepository(engine, hot=direct)
    with pytest.raises(RuntimeError, match="after the insert"):
        async with direct.begin() as conn:
            await repository.add(transaction, "issued")  # its own transaction: committed
            await conn.execute(_TOUCH, {"where_transaction_id": transaction.transaction_id, "status": 30})
            raise RuntimeError("after the insert")

    async with direct.connect() as conn:
        row = (await conn.execute(_STATUS_OF, {"transaction_id": transaction.transaction_id})).first()
    assert row is not None and row[0] == 10  # the UPDATE of the failed block was rolled back


async def test_results_carry_the_engines_types(engine: AsyncEngine, direct: DirectDatabase) -> None:
    transaction = make_transaction(metadata={"cohort": 7, "tags": ["a", "ㄱ"]})
    await SqlTransactionRepository(engine, hot=direct).add(transaction, "issued")

    through_direct = await SqlTransactionRepository(engine, hot=direct).get(transaction.transaction_id)
    through_engine = await SqlTransactionRepository(engine).get(transaction.transaction_id)

    assert through_direct == through_engine
    assert through_direct is not None
    assert through_direct.created_at.tzinfo == UTC
    assert through_direct.metadata == {"cohort": 7, "tags": ["a", "ㄱ"]}
    async with direct.connect() as conn:
        row = (await conn.execute(_STATUS_OF, {"transaction_id": transaction.transaction_id})).one()
    assert row._mapping["status"] == 10 and isinstance(row._mapping["updated_at"], datetime)


async def test_an_update_counts_the_rows_it_matched_even_when_nothing_changes(
    engine: AsyncEngine, direct: DirectDatabase
) -> None:
    transaction = make_transaction()
    await SqlTransactionRepository(engine, hot=direct).add(transaction, "issued")
    async with direct.begin() as conn:
        same = await conn.execute(_TOUCH, {"where_transaction_id": transaction.transaction_id, "status": 10})
        missing = await conn.execute(_TOUCH, {"where_transaction_id": "TXN_none", "status": 10})
    assert (same.rowcount, missing.rowcount) == (1, 0)


async def test_a_duplicate_is_the_engines_integrity_error(
    engine: AsyncEngine, direct: DirectDatabase
) -> None:
    transaction = make_transaction()
    repository = SqlTransactionRepository(engine, hot=direct)
    await repository.add(transaction, "issued")
    with pytest.raises(IntegrityError):
        await repository.add(transaction, "issued again")


async def test_a_connection_the_server_dropped_is_replaced_without_an_error(
    engine: AsyncEngine, direct: DirectDatabase
) -> None:
    """What pool_pre_ping gave the engine: a restart or a KILL between requests costs no request."""
    repository = SqlTransactionRepository(engine, hot=direct)
    transaction = make_transaction()
    await repository.add(transaction, "issued")
    pool = await direct.pool()
    async with direct.connect() as conn:
        own_id = (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar_one_or_none()
    async with engine.begin() as admin:
        await admin.execute(text(f"KILL {int(own_id)}"))

    # The killed connection is the pooled one; the next transaction and read still work.
    assert pool.freesize >= 1
    assert await repository.get(transaction.transaction_id) is not None
    await repository.add(make_transaction(), "issued")


async def test_an_unreachable_database_is_an_outage_not_a_bug(engine: AsyncEngine) -> None:
    """Nothing listens on port 1: the error is one app.outages answers with 503."""
    nowhere = DirectDatabase(
        "mysql+asyncmy://root@127.0.0.1:1/none", pool_size=1, recycle_seconds=300, dialect=engine.dialect
    )
    with pytest.raises(OperationalError) as raised:
        async with nowhere.begin():
            pass
    assert database_unavailable(raised.value)
    await nowhere.close()
