"""identities compare byte for byte (no case, accent or trailing-space folding)

MariaDB's default collation made `KIM.MINJI@EXAMPLE.COM`, `kim.minji@example.com ` and
`kím.mínjí@example.com` the same user id. Every column that holds a user id, a transaction id or
another identity used in a WHERE moves to utf8mb4_nopad_bin (MySQL 8: utf8mb4_0900_bin); even
utf8mb4_bin would still ignore trailing spaces. SQLite compares bytes already: nothing to do there.

Values distinct before stay distinct, so no unique index can fail; the foreign keys on
transaction_id are dropped and created again, since both sides must share one collation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from app.db import exact_collation

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# table → (column, VARCHAR length, NOT NULL), exactly the ExactString columns of app/db.py.
IDENTITY_COLUMNS: dict[str, list[tuple[str, int, bool]]] = {
    "transactions": [("transaction_id", 64, True), ("user_id", 64, True), ("payment_key", 200, False)],
    "transaction_history": [("transaction_id", 64, True)],
    "refunds": [
        ("refund_id", 64, True),
        ("transaction_id", 64, True),
        ("actor", 64, True),
        ("pg_transaction_key", 64, False),
    ],
    "entitlements": [("transaction_id", 64, True), ("user_id", 64, True)],
    "entitlement_revocations": [("refund_id", 64, True), ("transaction_id", 64, True)],
    "webhook_events": [("transmission_id", 100, True), ("order_id", 64, False)],
}
# (name, child table): each references transactions.transaction_id.
FOREIGN_KEYS = [("fk_history_transaction", "transaction_history"), ("fk_refunds_transaction", "refunds")]


def _convert(collation: str | None) -> None:
    """One ALTER per table (one rebuild each); `None` goes back to the table's default collation."""
    for name, table in FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")
    collate = f" CHARACTER SET utf8mb4 COLLATE {collation}" if collation else ""
    for table, columns in IDENTITY_COLUMNS.items():
        changes = ", ".join(
            f"MODIFY `{column}` VARCHAR({length}){collate} {'NOT NULL' if not_null else 'NULL'}"
            for column, length, not_null in columns
        )
        op.execute(f"ALTER TABLE `{table}` {changes}")
    for name, table in FOREIGN_KEYS:
        op.create_foreign_key(name, table, "transactions", ["transaction_id"], ["transaction_id"])


def upgrade() -> None:
    dialect = op.get_bind().dialect
    if dialect.name not in ("mysql", "mariadb"):
        return
    _convert(exact_collation(dialect))


def downgrade() -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    _convert(None)
