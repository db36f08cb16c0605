"""The history row every status change (or note) leaves, shared by the transaction and refund writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.domain import Status
from app.core.sql.stored_text import fit, printable_notes
from app.db import transaction_history as history_table
from app.db_direct import HotPathConnection

# Built once and given its values at execution: SQLAlchemy compiles it once and caches it, where a
# statement built per call with .values(...) costs more CPU to build than the INSERT takes to run.
INSERT_HISTORY = insert(history_table)


async def append_history(
    conn: AsyncConnection | HotPathConnection,
    transaction_id: str,
    status: Status,
    message: str,
    metadata: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    """Every status change (or note) leaves a row, written in the caller's database transaction."""
    await conn.execute(
        INSERT_HISTORY,
        {
            "transaction_id": transaction_id,
            "status": int(status),
            "message": fit(history_table.c.message, message),
            "metadata": printable_notes(dict(metadata or {})),
            "created_at": now,
        },
    )
