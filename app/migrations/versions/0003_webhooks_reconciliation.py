"""webhook events and the reconciliation schedule

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("reconcile_attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_reconcile_at", UTCDateTime))
        batch.create_index("ix_transactions_status_next_reconcile_at", ["status", "next_reconcile_at"])
    op.create_table(
        "webhook_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("transmission_id", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.Column("pg_status", sa.String(30)),
        sa.Column("retried_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("raw_body", sa.Text, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("processed_at", UTCDateTime),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("detail", sa.String(255)),
        sa.UniqueConstraint("provider", "transmission_id", name="uq_webhook_events_transmission"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_webhook_events_order_id", "webhook_events", ["order_id"])


def downgrade() -> None:
    op.drop_table("webhook_events")
    with op.batch_alter_table("transactions") as batch:
        batch.drop_index("ix_transactions_status_next_reconcile_at")
        batch.drop_column("next_reconcile_at")
        batch.drop_column("reconcile_attempts")
