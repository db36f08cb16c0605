"""several refunds per transaction, and taking back what was granted

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db import BigId, UTCDateTime

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(
            sa.Column("refund_reserved_amount", sa.BigInteger, nullable=False, server_default="0")
        )
    # What existing refunds already hold: requested or done ones.
    op.execute(
        "UPDATE transactions SET refund_reserved_amount = (SELECT COALESCE(SUM(r.amount), 0) "
        "FROM refunds r WHERE r.transaction_id = transactions.transaction_id "
        "AND r.status IN ('REQUESTED', 'DONE'))"
    )
    # The foreign key needs an index on transaction_id before the unique one can go.
    op.create_index("ix_refunds_transaction_id_id", "refunds", ["transaction_id", "id"])
    with op.batch_alter_table("refunds") as batch:
        batch.drop_constraint("uq_refunds_transaction_id", type_="unique")
        batch.add_column(
            sa.Column("revoke_status", sa.String(20), nullable=False, server_default="NOT_REQUIRED")
        )
        batch.add_column(sa.Column("revoke_detail", sa.String(255)))
        batch.create_unique_constraint("uq_refunds_pg_transaction_key", ["pg_transaction_key"])
        batch.create_index("ix_refunds_status_created_at", ["status", "created_at"])
    with op.batch_alter_table("entitlements") as batch:
        batch.add_column(sa.Column("study_id", sa.String(50)))
        batch.add_column(sa.Column("credits", sa.Integer))
        batch.add_column(sa.Column("revoked_credits", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("revoked_at", UTCDateTime))
    op.create_table(
        "entitlement_revocations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("refund_id", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("credits", sa.Integer, nullable=False, server_default="0"),
        sa.Column("revoked_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("refund_id", name="uq_entitlement_revocations_refund_id"),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("entitlement_revocations")
    with op.batch_alter_table("entitlements") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("revoked_credits")
        batch.drop_column("credits")
        batch.drop_column("study_id")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_index("ix_refunds_status_created_at")
        batch.drop_constraint("uq_refunds_pg_transaction_key", type_="unique")
        batch.drop_column("revoke_detail")
        batch.drop_column("revoke_status")
        batch.create_unique_constraint("uq_refunds_transaction_id", ["transaction_id"])
    op.drop_index("ix_refunds_transaction_id_id", "refunds")
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("refund_reserved_amount")
