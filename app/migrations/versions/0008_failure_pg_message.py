"""a failure keeps the PG's own message beside ours

`failure_message` becomes our message for the buyer ("The payment was cancelled in the payment
window.") and the PG's words go to `failure_pg_message`, next to `failure_pg_code`. Transactions
that failed before keep what they had: the PG's words in `failure_message`, no `failure_pg_message`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("failure_pg_message", sa.String(510)))


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("failure_pg_message")
