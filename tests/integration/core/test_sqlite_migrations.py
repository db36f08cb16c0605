"""The migrations (and the repository) also work on the embedded SQLite default."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from app.core.domain import Status, Transaction, Transition
from app.core.sql.transactions import SqlTransactionRepository
from app.db import create_engine
from app.migrate import upgrade_database
from app.settings import load_settings

NewTransaction = Callable[..., Transaction]


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


async def test_migrations_upgrade_a_fresh_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "payments.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"

    # upgrade_database runs its own event loop: call it from a thread, as the CLI would from none.
    await asyncio.to_thread(upgrade_database, url)

    assert path.exists()
    tables = _tables(path)
    assert {"transactions", "transaction_history", "alembic_version"} <= tables
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        columns = {row[1] for row in conn.execute("PRAGMA table_info(transactions)")}
    assert version
    assert {"transaction_id", "user_id", "status", "amount", "expires_at", "payment_key"} <= columns


async def test_migrations_are_idempotent_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)
    before = _tables(tmp_path / "twice.sqlite3")

    await asyncio.to_thread(upgrade_database, url)  # already at head: a no-op, no error

    assert _tables(tmp_path / "twice.sqlite3") == before


async def test_repository_guards_transitions_on_sqlite(
    tmp_path: Path, new_transaction: NewTransaction
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'repo.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(load_settings({}, database_url=url))
    try:
        repository = SqlTransactionRepository(engine)
        transaction = new_transaction()
        await repository.add(transaction, "issued")
        assert await repository.get(transaction.transaction_id) == transaction

        now = datetime.now(UTC)
        results = await asyncio.gather(
            *(
                repository.apply(
                    transaction.transaction_id,
                    Transition(Status.CREATED, Status.PAYMENT_PENDING, f"claim {i}"),
                    now=now,
                )
                for i in range(5)
            )
        )

        assert results.count(True) == 1
        history = await repository.history(transaction.transaction_id)
        assert [h.status for h in history] == [Status.CREATED, Status.PAYMENT_PENDING]
    finally:
        await engine.dispose()
