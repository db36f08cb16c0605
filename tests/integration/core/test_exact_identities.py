"""User ids, transaction ids and the other identities compare byte for byte on MariaDB.

MariaDB's default collation (utf8mb4_general_ci) ignores case, accents and trailing spaces, and
even utf8mb4_bin ignores trailing spaces: a token whose `sub` only looks like another user's would
list that user's payments. Every identity column is utf8mb4_nopad_bin (migration 0007).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import String, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.domain import ProductType, RefundStatus, Status, Transaction, Transition, TransitionChange
from app.core.ports import RefundRecord, WebhookEvent
from app.core.sql.refunds import SqlRefundRepository
from app.core.sql.status_reader import MySqlStatusReader
from app.core.sql.transactions import SqlTransactionRepository
from app.core.sql.webhook_events import SqlWebhookEventRepository
from app.db import ExactString, metadata, refunds, transaction_history
from app.main import Services, build_services, create_app
from app.migrate import alembic_config, upgrade_database
from app.provisioning.handlers import GrantRequest, LedgerGrantHandler, list_entitlements
from app.settings import load_settings
from tests.conftest import MARIADB_ADMIN_URL, _create_database, _drop_database
from tests.support.fakes import FakeQueue

NewTransaction = Callable[..., Transaction]
EXACT_COLLATION = "utf8mb4_nopad_bin"

# Every column that holds a user id, a transaction id or another identity used in a WHERE.
IDENTITY_COLUMNS = {
    ("transactions", "transaction_id"),
    ("transactions", "user_id"),
    ("transactions", "payment_key"),
    ("transaction_history", "transaction_id"),
    ("refunds", "refund_id"),
    ("refunds", "transaction_id"),
    ("refunds", "actor"),
    ("refunds", "pg_transaction_key"),
    ("entitlements", "transaction_id"),
    ("entitlements", "user_id"),
    ("entitlement_revocations", "refund_id"),
    ("entitlement_revocations", "transaction_id"),
    ("webhook_events", "transmission_id"),
    ("webhook_events", "order_id"),
}


def the_real_user() -> str:
    return f"kim.minji.{secrets.token_hex(4)}@example.com"


# The three look-alikes of one user id.
USER_ID_LOOKALIKES = [
    pytest.param(str.upper, id="upper-case"),
    pytest.param(lambda user: user + " ", id="trailing-space"),
    pytest.param(lambda user: user.replace("i", "í"), id="accented"),
]
TRANSACTION_ID_LOOKALIKES = [
    pytest.param(str.upper, id="upper-case"),
    pytest.param(str.lower, id="lower-case"),
    pytest.param(lambda tid: tid + " ", id="trailing-space"),
]


async def _column_collations(engine: AsyncEngine) -> dict[tuple[str, str], str | None]:
    query = text(
        "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE()"
    )
    async with engine.connect() as conn:
        return {(r[0], r[1]): r[2] for r in (await conn.execute(query)).all()}


async def _grant(engine: AsyncEngine, transaction: Transaction) -> None:
    await LedgerGrantHandler(engine).grant(
        GrantRequest(
            transaction_id=transaction.transaction_id,
            user_id=transaction.user_id,
            product_type=ProductType.STUDY,
            product_id=transaction.product_id,
            amount=transaction.amount,
            study_id="kotlin-8w",
            credits=None,
            application_id=None,
        )
    )


# --- the schema ------------------------------------------------------------------------------------


async def test_identity_columns_compare_bytes_without_padding(engine: AsyncEngine) -> None:
    collations = await _column_collations(engine)

    wrong = {column: collations.get(column) for column in IDENTITY_COLUMNS}
    wrong = {column: collation for column, collation in wrong.items() if collation != EXACT_COLLATION}

    assert wrong == {}


async def test_the_table_definitions_match_the_migrated_schema(engine: AsyncEngine) -> None:
    """app/db.py says which columns compare exactly; the migrations must have made exactly those."""
    collations = await _column_collations(engine)
    declared, other_text = set(), set()
    for table in metadata.sorted_tables:
        for column in table.columns:
            assert (table.name, column.name) in collations, f"{table.name}.{column.name} is not migrated"
            if isinstance(column.type, ExactString):
                declared.add((table.name, column.name))
            elif isinstance(column.type, String):
                other_text.add((table.name, column.name))

    exact_in_database = {column for column, collation in collations.items() if collation == EXACT_COLLATION}
    assert declared == IDENTITY_COLUMNS
    assert exact_in_database == declared
    assert all(collations[column] != EXACT_COLLATION for column in other_text)


async def test_the_migrations_build_what_the_table_definitions_describe(engine: AsyncEngine) -> None:
    """Alembic's own comparison (tables, columns, types, indexes) finds nothing to change."""

    def differences(connection: Connection) -> list[Any]:
        return list(
            compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
        )

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


# --- user ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lookalike", USER_ID_LOOKALIKES)
async def test_a_lookalike_user_id_lists_nothing_of_the_real_users(
    repository: SqlTransactionRepository,
    engine: AsyncEngine,
    new_transaction: NewTransaction,
    lookalike: Callable[[str], str],
) -> None:
    user = the_real_user()
    transaction = new_transaction(user_id=user)
    await repository.add(transaction, "issued")
    await _grant(engine, transaction)
    other = lookalike(user)
    assert other != user

    page = await repository.list_for_user(other, statuses=None, cursor=None, limit=20)
    granted = await list_entitlements(engine, other)

    assert page.items == [] and page.next_cursor is None
    assert granted == []
    # ...while the real user still sees both.
    own = await repository.list_for_user(user, statuses=None, cursor=None, limit=20)
    assert [t.transaction_id for t in own.items] == [transaction.transaction_id]
    assert [g.transaction_id for g in await list_entitlements(engine, user)] == [transaction.transaction_id]


# --- transaction ids and other identities ----------------------------------------------------------


@pytest.mark.parametrize("lookalike", TRANSACTION_ID_LOOKALIKES)
async def test_a_lookalike_transaction_id_finds_nothing(
    mysql_url: str,
    engine: AsyncEngine,
    new_transaction: NewTransaction,
    lookalike: Callable[[str], str],
) -> None:
    # The production poll path reads through its own asyncmy pool: check that one too.
    reader = MySqlStatusReader(mysql_url, pool_size=2, recycle_seconds=60)
    repository = SqlTransactionRepository(engine, reader)
    refund_records = SqlRefundRepository(engine)
    try:
        transaction = new_transaction()
        await repository.add(transaction, "issued")
        tid = transaction.transaction_id
        refund_id = f"RF_{secrets.token_hex(8)}"
        async with engine.begin() as conn:
            await conn.execute(
                insert(refunds).values(
                    refund_id=refund_id,
                    transaction_id=tid,
                    amount=1000,
                    reason="test",
                    actor=transaction.user_id,
                    status=RefundStatus.REFUSED.value,
                    created_at=datetime.now(UTC),
                )
            )
        other = lookalike(tid)
        assert other != tid

        assert await repository.get(other) is None
        assert await repository.get_status_view(other) is None
        assert await repository.history(other) == []
        assert await refund_records.list_refunds(other) == []
        assert await refund_records.get_refund(lookalike(refund_id)) is None
        assert not await repository.apply(
            other,
            Transition(
                Status.CREATED,
                Status.PAYMENT_FAILED,
                "must not apply",
                change=TransitionChange(failure_code="PAY_003", failure_message="no"),
            ),
            now=datetime.now(UTC),
        )
        stored = await repository.get(tid)
        assert stored is not None and stored.status == Status.CREATED
    finally:
        await reader.close()


async def test_ids_that_differ_only_in_case_are_different_rows(
    repository: SqlTransactionRepository, engine: AsyncEngine, new_transaction: NewTransaction
) -> None:
    first = new_transaction()
    second = dataclasses.replace(
        new_transaction(user_id=first.user_id), transaction_id=first.transaction_id.swapcase()
    )

    await repository.add(first, "issued")
    await repository.add(second, "issued")  # the unique index compares exactly too

    assert (await repository.get(first.transaction_id)) == first
    assert (await repository.get(second.transaction_id)) == second
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(transaction_history.c.transaction_id).where(
                transaction_history.c.transaction_id.in_([first.transaction_id, second.transaction_id])
            )
        )
        assert sorted(r[0] for r in rows) == sorted([first.transaction_id, second.transaction_id])


async def test_webhook_deliveries_whose_ids_differ_only_in_case_are_both_recorded(
    engine: AsyncEngine,
) -> None:
    events = SqlWebhookEventRepository(engine)
    transmission = f"wh_{secrets.token_hex(8)}Ab"

    def delivery(transmission_id: str) -> WebhookEvent:
        return WebhookEvent(
            provider="TOSS",
            transmission_id=transmission_id,
            event_type="PAYMENT_STATUS_CHANGED",
            order_id="TXN_x",
            payment_key=None,
            pg_status="DONE",
            secret=None,
            retried_count=0,
            raw_body="{}",
            received_at=datetime.now(UTC),
        )

    first_id, first = await events.record(delivery(transmission))
    second_id, second = await events.record(delivery(transmission.swapcase()))
    _, repeated = await events.record(delivery(transmission + " "))

    assert (first, second, repeated) == ("RECEIVED", "RECEIVED", "RECEIVED")
    assert first_id != second_id


async def test_a_pg_cancel_key_that_differs_only_in_case_is_another_cancel(
    repository: SqlTransactionRepository, refund_records: SqlRefundRepository, new_transaction: NewTransaction
) -> None:
    """Toss's transaction keys are case-sensitive: two cancels must never collide as "recorded"."""
    transaction = new_transaction(status=Status.PAYMENT_SUCCESS, amount=10_000)
    await repository.add(transaction, "paid")
    key = f"tk_{secrets.token_hex(6)}Ab"
    now = datetime.now(UTC)

    def cancel(pg_key: str) -> RefundRecord:
        return RefundRecord(
            refund_id=f"RF_{secrets.token_hex(8)}",
            transaction_id=transaction.transaction_id,
            amount=1000,
            reason="cancelled at the PG",
            actor="pg",
            status=RefundStatus.DONE,
            created_at=now,
            pg_transaction_key=pg_key,
            completed_at=now,
        )

    assert await refund_records.record_pg_refund(
        cancel(key), expected=Status.PAYMENT_SUCCESS, message="a", now=now
    )
    assert await refund_records.record_pg_refund(
        cancel(key.swapcase()), expected=Status.PAYMENT_SUCCESS, message="b", now=now
    )
    assert len(await refund_records.list_refunds(transaction.transaction_id)) == 2


# --- over HTTP: the list endpoints with a lookalike token --------------------------------------------


@dataclass
class Api:
    client: AsyncTestClient[Litestar]
    services: Services

    def headers(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.services.tokens.mint(user_id)}"}


@pytest.fixture(scope="module")
async def api(mysql_url: str) -> AsyncIterator[Api]:
    """The app in-process on the run's MariaDB. The test client runs it on an event loop of its own:
    tests write their rows through the `repository` and `engine` fixtures, never these services'."""
    settings = load_settings({}, database_url=mysql_url, environment="test")
    built = build_services(settings)
    # A FakeQueue: no embedded sweeper runs behind the tests' backs.
    services = dataclasses.replace(built, queue=FakeQueue())
    try:
        async with AsyncTestClient(app=create_app(services=services)) as client:
            yield Api(client, services)
    finally:
        await services.close()


@pytest.mark.parametrize("lookalike", USER_ID_LOOKALIKES)
async def test_a_lookalike_token_sees_none_of_the_real_users_payments(
    api: Api,
    repository: SqlTransactionRepository,
    engine: AsyncEngine,
    new_transaction: NewTransaction,
    lookalike: Callable[[str], str],
) -> None:
    user = the_real_user()
    transaction = new_transaction(user_id=user)
    await repository.add(transaction, "issued")
    await _grant(engine, transaction)
    tid = transaction.transaction_id
    impostor = api.headers(lookalike(user))

    listed = await api.client.get("/api/payments", headers=impostor)
    granted = await api.client.get("/api/entitlements", headers=impostor)
    detail = await api.client.get(f"/api/payments/{tid}", headers=impostor)
    status = await api.client.get(f"/api/payments/{tid}/status", headers=impostor)

    assert (listed.status_code, listed.json()["items"]) == (200, [])
    assert (granted.status_code, granted.json()["items"]) == (200, [])
    assert detail.status_code == 404 and detail.json()["code"] == "PAY_008"
    assert status.status_code == 404 and status.json()["code"] == "PAY_008"
    owner = await api.client.get("/api/payments", headers=api.headers(user))
    assert [t["transactionId"] for t in owner.json()["items"]] == [tid]


@pytest.mark.parametrize("lookalike", TRANSACTION_ID_LOOKALIKES)
async def test_the_owner_asking_for_a_lookalike_transaction_id_gets_404(
    api: Api,
    repository: SqlTransactionRepository,
    new_transaction: NewTransaction,
    lookalike: Callable[[str], str],
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    owner = api.headers(transaction.user_id)
    other = lookalike(transaction.transaction_id).replace(" ", "%20")

    detail = await api.client.get(f"/api/payments/{other}", headers=owner)
    status = await api.client.get(f"/api/payments/{other}/status", headers=owner)

    assert detail.status_code == 404 and detail.json()["code"] == "PAY_008"
    assert status.status_code == 404 and status.json()["code"] == "PAY_008"


# --- the migration itself ----------------------------------------------------------------------------


async def test_migration_0007_keeps_existing_rows_and_downgrades() -> None:
    """On a database at 0006 with rows (and its foreign keys), 0007 converts, and undoes cleanly."""
    name = f"payments_m7_{secrets.token_hex(4)}"
    await _create_database(name)
    url = f"{MARIADB_ADMIN_URL}/{name}"
    engine = create_async_engine(url)
    try:
        await asyncio.to_thread(upgrade_database, url, "0006")
        now = datetime(2026, 12, 1, tzinfo=UTC).replace(tzinfo=None)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO transactions (transaction_id, user_id, product_type, product_id, order_name, "
                    "amount, method, status, provider, created_at, updated_at, expires_at) VALUES "
                    "('TXN_20261201_abcDEF', 'kim.minji@example.com', 'STUDY', 'study_123', 'Kotlin', "
                    "50000, 'CARD', 10, 'TOSS', :now, :now, :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO transaction_history (transaction_id, status, message, created_at) "
                    "VALUES ('TXN_20261201_abcDEF', 10, 'issued', :now)"
                ),
                {"now": now},
            )

        await asyncio.to_thread(upgrade_database, url)

        collations = await _column_collations(engine)
        assert {c for c, collation in collations.items() if collation == EXACT_COLLATION} == IDENTITY_COLUMNS
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT COUNT(*) FROM transactions WHERE user_id = 'KIM.MINJI@EXAMPLE.COM'")
            )
            assert found.scalar_one() == 0
            foreign_keys = await conn.execute(
                text(
                    "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY CONSTRAINT_NAME"
                )
            )
            assert [r[0] for r in foreign_keys] == ["fk_history_transaction", "fk_refunds_transaction"]

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0006")

        collations = await _column_collations(engine)
        assert not {c for c, collation in collations.items() if collation == EXACT_COLLATION}
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT COUNT(*) FROM transaction_history"))
            assert rows.scalar_one() == 1
    finally:
        await engine.dispose()
        await _drop_database(name)
