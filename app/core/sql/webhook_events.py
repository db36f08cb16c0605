"""SQLAlchemy adapter of WebhookEventRepository: every delivery once per transmission id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.ports import WebhookEvent, WebhookOutcome
from app.core.sql.stored_text import fit
from app.db import webhook_events as webhook_table
from app.db_direct import HotPathDatabase

# Built once, given their values at execution (compiled once; see app/core/sql/transactions.py)
_INSERT_EVENT = insert(webhook_table)
_SELECT_EVENT = select(webhook_table).where(webhook_table.c.id == bindparam("event_id"))
_FINISH_EVENT = (
    update(webhook_table)
    .where(webhook_table.c.id == bindparam("event_id"))
    .values(outcome=bindparam("outcome"), detail=bindparam("detail"), processed_at=bindparam("processed_at"))
)


class SqlWebhookEventRepository:
    """Every delivery is recorded once per transmission id, with its raw body and outcome."""

    def __init__(self, engine: AsyncEngine, hot: HotPathDatabase | None = None) -> None:
        self._engine = engine
        self._hot = hot if hot is not None else engine  # each delivery's statements (app.db_direct)

    async def record(self, event: WebhookEvent) -> tuple[int, str]:
        try:
            async with self._hot.begin() as conn:
                result = await conn.execute(
                    _INSERT_EVENT,
                    {
                        "provider": event.provider,
                        "transmission_id": event.transmission_id,
                        "event_type": fit(webhook_table.c.event_type, event.event_type),
                        "order_id": event.order_id,
                        "pg_status": fit(webhook_table.c.pg_status, event.pg_status),
                        "retried_count": event.retried_count,
                        "raw_body": event.raw_body,
                        "received_at": event.received_at,
                        "outcome": WebhookOutcome.RECEIVED,
                    },
                )
                key = result.inserted_primary_key
                assert key is not None
                return int(key[0]), WebhookOutcome.RECEIVED
        except IntegrityError:
            query = select(webhook_table.c.id, webhook_table.c.outcome).where(
                webhook_table.c.provider == event.provider,
                webhook_table.c.transmission_id == event.transmission_id,
            )
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).one()
            return int(row[0]), str(row[1])

    async def get(self, event_id: int) -> WebhookEvent | None:
        async with self._hot.connect() as conn:
            row = (await conn.execute(_SELECT_EVENT, {"event_id": event_id})).first()
        if row is None:
            return None
        m = row._mapping
        return WebhookEvent(
            provider=m["provider"],
            transmission_id=m["transmission_id"],
            event_type=m["event_type"],
            order_id=m["order_id"],
            payment_key=None,
            pg_status=m["pg_status"],
            secret=None,
            retried_count=int(m["retried_count"]),
            raw_body=m["raw_body"],
            received_at=m["received_at"],
        )

    async def finish(self, event_id: int, *, outcome: str, detail: str, now: datetime) -> None:
        async with self._hot.begin() as conn:
            await conn.execute(
                _FINISH_EVENT,
                {
                    "event_id": event_id,
                    "outcome": outcome,
                    "detail": fit(webhook_table.c.detail, detail),
                    "processed_at": now,
                },
            )
