"""refunds and the local entitlements ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("refund_id", sa.String(64), nullable=False),
        sa.Column(
            "transaction_id",
            sa.String(64),
            sa.ForeignKey("transactions.transaction_id", name="fk_refunds_transaction"),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pg_transaction_key", sa.String(64)),
        sa.Column("pg_error_code", sa.String(64)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime),
        sa.UniqueConstraint("refund_id", name="uq_refunds_refund_id"),
        sa.UniqueConstraint("transaction_id", name="uq_refunds_transaction_id"),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "entitlements",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("product_type", sa.String(20), nullable=False),
        sa.Column("product_id", sa.String(50), nullable=False),
        sa.Column("granted_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("transaction_id", name="uq_entitlements_transaction_id"),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_entitlements_user_id_id", "entitlements", ["user_id", "id"])


def downgrade() -> None:
    op.drop_table("entitlements")
    op.drop_table("refunds")
