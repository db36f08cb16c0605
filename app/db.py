"""Database engine, tables and the SQLite/MySQL differences, in one place.

Tables are SQLAlchemy Core tables (no ORM): the repository reads and writes plain rows, which
keeps the hot status read a single indexed SELECT of the columns it needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import Settings


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, naive UTC with microseconds in the database."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class ExactString(TypeDecorator[str]):
    """A VARCHAR compared byte for byte: user ids, transaction ids and the other identities.

    MariaDB's default collation ignores case, accents and trailing spaces (and even utf8mb4_bin
    ignores trailing spaces), so `KIM@EXAMPLE.COM ` would match `kim@example.com`. MariaDB gets
    utf8mb4_nopad_bin, MySQL 8 its equivalent utf8mb4_0900_bin; SQLite compares bytes already.
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARCHAR(self.length, collation=exact_collation(dialect)))
        return dialect.type_descriptor(String(self.length))


def exact_collation(dialect: Dialect) -> str:
    """The byte-for-byte, no-pad collation of this MySQL or MariaDB server."""
    return "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


# BIGINT primary keys on MySQL; SQLite autoincrements only INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

transactions = Table(
    "transactions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transaction_id", ExactString(64), nullable=False),
    Column("user_id", ExactString(64), nullable=False),
    Column("product_type", String(20), nullable=False),
    Column("product_id", String(50), nullable=False),
    Column("order_name", String(100), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("method", String(20), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("provider", String(20), nullable=False),
    Column("payment_key", ExactString(200)),
    Column("pg_method", String(20)),
    Column("metadata", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("failure_code", String(20)),
    Column("failure_pg_code", String(64)),
    Column("failure_message", String(510)),
    Column("failure_pg_message", String(510)),  # the PG's own words; failure_message is ours
    Column("va_bank_code", String(10)),
    Column("va_account_number", String(20)),
    Column("va_due_date", UTCDateTime),
    Column("va_secret", String(64)),
    Column("refunded_amount", BigInteger, nullable=False, server_default="0"),
    # Refunds requested, under way or done: a new refund fits only in amount - this (guarded).
    Column("refund_reserved_amount", BigInteger, nullable=False, server_default="0"),
    Column("reconcile_attempts", Integer, nullable=False, server_default="0"),
    Column("next_reconcile_at", UTCDateTime),
    UniqueConstraint("transaction_id", name="uq_transactions_transaction_id"),
    Index("ix_transactions_user_id_id", "user_id", "id"),
    Index("ix_transactions_status_expires_at", "status", "expires_at"),
    Index("ix_transactions_status_updated_at", "status", "updated_at"),
    Index("ix_transactions_created_at", "created_at"),
    Index("ix_transactions_status_next_reconcile_at", "status", "next_reconcile_at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

transaction_history = Table(
    "transaction_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "transaction_id",
        ExactString(64),
        ForeignKey("transactions.transaction_id", name="fk_history_transaction"),
        nullable=False,
    ),
    Column("status", SmallInteger, nullable=False),
    Column("message", String(255), nullable=False),
    Column("metadata", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_transaction_history_transaction_id_id", "transaction_id", "id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)


refunds = Table(
    "refunds",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("refund_id", ExactString(64), nullable=False),
    Column(
        "transaction_id",
        ExactString(64),
        ForeignKey("transactions.transaction_id", name="fk_refunds_transaction"),
        nullable=False,
    ),
    Column("amount", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("actor", ExactString(64), nullable=False),  # a user id, "system" or "pg"
    Column("status", String(20), nullable=False),  # REQUESTED | DONE | REFUSED | NEEDS_REVIEW
    Column("pg_transaction_key", ExactString(64)),
    Column("pg_error_code", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("refund_bank", String(20)),
    Column("refund_account_number", String(20)),
    Column("refund_holder_name", String(60)),
    # Taking back the grant comes before the PG cancel: NOT_REQUIRED | PENDING | DONE | FAILED
    Column("revoke_status", String(20), nullable=False, server_default="NOT_REQUIRED"),
    Column("revoke_detail", String(255)),
    UniqueConstraint("refund_id", name="uq_refunds_refund_id"),
    # A PG cancel is recorded once, whether we asked for it or an operator did in the PG's console.
    UniqueConstraint("pg_transaction_key", name="uq_refunds_pg_transaction_key"),
    Index("ix_refunds_transaction_id_id", "transaction_id", "id"),
    Index("ix_refunds_status_created_at", "status", "created_at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

entitlements = Table(
    "entitlements",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transaction_id", ExactString(64), nullable=False),
    Column("user_id", ExactString(64), nullable=False),
    Column("product_type", String(20), nullable=False),
    Column("product_id", String(50), nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("study_id", String(50)),
    Column("credits", Integer),  # AI_RESUME: credits granted
    Column("revoked_credits", Integer, nullable=False, server_default="0"),
    Column("revoked_at", UTCDateTime),  # set once the grant is taken back entirely
    # A grant is recorded at most once per transaction, however often the job runs.
    UniqueConstraint("transaction_id", name="uq_entitlements_transaction_id"),
    Index("ix_entitlements_user_id_id", "user_id", "id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# What each refund took back from the local ledger: at most once per refund, however often it runs.
entitlement_revocations = Table(
    "entitlement_revocations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("refund_id", ExactString(64), nullable=False),
    Column("transaction_id", ExactString(64), nullable=False),
    Column("credits", Integer, nullable=False, server_default="0"),
    Column("revoked_at", UTCDateTime, nullable=False),
    UniqueConstraint("refund_id", name="uq_entitlement_revocations_refund_id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)


webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("provider", String(20), nullable=False),
    # Toss's transmission id; retries of one delivery repeat it, so it deduplicates deliveries.
    Column("transmission_id", ExactString(100), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("order_id", ExactString(64)),
    Column("pg_status", String(30)),
    Column("retried_count", Integer, nullable=False, server_default="0"),
    Column("raw_body", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    Column("outcome", String(30), nullable=False),  # RECEIVED | APPLIED | NO_CHANGE | IGNORED | REJECTED
    Column("detail", String(255)),
    UniqueConstraint("provider", "transmission_id", name="uq_webhook_events_transmission"),
    Index("ix_webhook_events_order_id", "order_id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)


def create_engine(settings: Settings) -> AsyncEngine:
    """One engine per process; a pool sized by settings for MySQL, a file for SQLite."""
    if settings.database.uses_sqlite:
        path = settings.database.url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            settings.database.url, echo=settings.database.echo, connect_args={"timeout": 30}
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(
        settings.database.url,
        echo=settings.database.echo,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        pool_recycle=settings.database.pool_recycle_seconds,
        pool_pre_ping=True,
    )
