"""GET /api/entitlements: what the caller has been granted (the local ledger)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.auth import Caller
from app.http.openapi import BEARER
from app.provisioning.handlers import list_entitlements


class EntitlementBody(msgspec.Struct, rename="camel"):
    transaction_id: str
    product_type: str
    product_id: str
    granted_at: datetime
    credits: int | None = None
    revoked_credits: int = 0
    revoked_at: datetime | None = None  # set once a refund took the grant back entirely


class EntitlementListBody(msgspec.Struct, rename="camel"):
    items: list[EntitlementBody]


class EntitlementController(Controller):
    path = "/api/entitlements"
    tags = ["provisioning"]
    security = BEARER

    @get("/", summary="The caller's grants recorded in the local ledger")
    async def list_grants(self, caller: Caller, engine: AsyncEngine) -> EntitlementListBody:
        grants = await list_entitlements(engine, caller.user_id)
        return EntitlementListBody(
            items=[
                EntitlementBody(
                    g.transaction_id,
                    g.product_type,
                    g.product_id,
                    g.granted_at,
                    g.credits,
                    g.revoked_credits,
                    g.revoked_at,
                )
                for g in grants
            ]
        )
