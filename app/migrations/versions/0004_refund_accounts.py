"""where a paid virtual account is refunded to

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("refund_bank", sa.String(20)))
        batch.add_column(sa.Column("refund_account_number", sa.String(20)))
        batch.add_column(sa.Column("refund_holder_name", sa.String(60)))


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("refund_holder_name")
        batch.drop_column("refund_account_number")
        batch.drop_column("refund_bank")
