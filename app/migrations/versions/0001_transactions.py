"""transactions and their history

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "transactions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("product_type", sa.String(20), nullable=False),
        sa.Column("product_id", sa.String(50), nullable=False),
        sa.Column("order_name", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("payment_key", sa.String(200)),
        sa.Column("pg_method", sa.String(20)),
        sa.Column("metadata", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime),
        sa.Column("failure_code", sa.String(20)),
        sa.Column("failure_pg_code", sa.String(64)),
        sa.Column("failure_message", sa.String(510)),
        sa.Column("va_bank_code", sa.String(10)),
        sa.Column("va_account_number", sa.String(20)),
        sa.Column("va_due_date", UTCDateTime),
        sa.Column("va_secret", sa.String(64)),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.UniqueConstraint("transaction_id", name="uq_transactions_transaction_id"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_transactions_user_id_id", "transactions", ["user_id", "id"])
    op.create_index("ix_transactions_status_expires_at", "transactions", ["status", "expires_at"])
    op.create_index("ix_transactions_status_updated_at", "transactions", ["status", "updated_at"])
    op.create_index("ix_transactions_created_at", "transactions", ["created_at"])
    op.create_table(
        "transaction_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "transaction_id",
            sa.String(64),
            sa.ForeignKey("transactions.transaction_id", name="fk_history_transaction"),
            nullable=False,
        ),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("message", sa.String(255), nullable=False),
        sa.Column("metadata", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
        **TABLE_OPTIONS,
    )
    op.create_index(
        "ix_transaction_history_transaction_id_id", "transaction_history", ["transaction_id", "id"]
    )


def downgrade() -> None:
    op.drop_table("transaction_history")
    op.drop_table("transactions")
