"""Grant handlers: one per product type, behind one small interface.

A handler is idempotent: running it twice for one transaction grants once (the downstream
service gets our transactionId as Idempotency-Key; the local ledger has a unique row per
transaction). It raises TransientGrantError for what a retry may fix (timeouts, 5xx, connection
errors) and PermanentGrantError for what it will not (4xx other than "already done").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.domain import ProductType, Transaction
from app.db import entitlements

log = logging.getLogger("app.provisioning")


class TransientGrantError(Exception):
    """The grant may succeed if tried again later."""


class PermanentGrantError(Exception):
    """The downstream service refused the grant for good."""


@dataclass(frozen=True, slots=True)
class GrantRequest:
    transaction_id: str
    user_id: str
    product_type: ProductType
    product_id: str
    amount: int
    metadata: Mapping[str, Any]

    @classmethod
    def of(cls, transaction: Transaction) -> GrantRequest:
        return cls(
            transaction_id=transaction.transaction_id,
            user_id=transaction.user_id,
            product_type=transaction.product_type,
            product_id=transaction.product_id,
            amount=transaction.amount,
            metadata=transaction.metadata,
        )


class GrantHandler(Protocol):
    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        """Grant the purchase; returns details for the history. Idempotent per transaction."""
        ...


async def _post_grant(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], transaction_id: str
) -> dict[str, Any]:
    """POST a grant downstream: 2xx or 409 (already granted) is success."""
    try:
        response = await http.post(url, json=body, headers={"Idempotency-Key": transaction_id})
    except httpx.TransportError as exc:  # timeouts and connection errors
        raise TransientGrantError(f"{type(exc).__name__} calling {url}") from exc
    if response.status_code == 409 or response.is_success:
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            answer = {}
        return {
            "downstreamStatus": response.status_code,
            "answer": answer if isinstance(answer, dict) else {},
        }
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientGrantError(f"{url} answered {response.status_code}")
    raise PermanentGrantError(f"{url} refused the grant with {response.status_code}: {response.text[:200]}")


class StudyEnrollmentHandler:
    """STUDY: `POST {STUDY_SERVICE_URL}/api/studies/{studyId}/confirm-payment`."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        study_id = str(request.metadata.get("studyId") or request.product_id)
        body = {
            "applicationId": request.metadata.get("applicationId"),
            "paymentId": request.transaction_id,
            "checkoutId": request.metadata.get("checkoutId") or request.transaction_id,
        }
        url = f"{self._base_url}/api/studies/{study_id}/confirm-payment"
        return await _post_grant(self._http, url, body, request.transaction_id)


class CreditTopUpHandler:
    """AI_RESUME: `POST {CREDIT_SERVICE_URL}/api/credits/grants`, same rules as the study service."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        body = {
            "userId": request.user_id,
            "productId": request.product_id,
            "paymentId": request.transaction_id,
            "amount": request.amount,
        }
        return await _post_grant(
            self._http, f"{self._base_url}/api/credits/grants", body, request.transaction_id
        )


class LedgerGrantHandler:
    """No downstream URL configured: record the grant in the local `entitlements` ledger."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(entitlements).values(
                        transaction_id=request.transaction_id,
                        user_id=request.user_id,
                        product_type=request.product_type.value,
                        product_id=request.product_id,
                        granted_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            # Already granted by an earlier run of this job: success, granted once.
            return {"ledger": "already granted"}
        except Exception as exc:  # database trouble is worth a retry
            raise TransientGrantError(f"ledger write failed: {type(exc).__name__}") from exc
        return {"ledger": "granted"}


@dataclass(frozen=True, slots=True)
class Entitlement:
    transaction_id: str
    product_type: str
    product_id: str
    granted_at: datetime


async def list_entitlements(engine: AsyncEngine, user_id: str, limit: int = 100) -> list[Entitlement]:
    query = (
        select(entitlements.c.transaction_id, entitlements.c.product_type)
        .add_columns(entitlements.c.product_id, entitlements.c.granted_at)
        .where(entitlements.c.user_id == user_id)
        .order_by(entitlements.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Entitlement(r[0], r[1], r[2], r[3]) for r in rows]


def build_handlers(
    *,
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    study_service_url: str | None,
    credit_service_url: str | None,
) -> dict[ProductType, GrantHandler]:
    ledger = LedgerGrantHandler(engine)
    return {
        ProductType.STUDY: StudyEnrollmentHandler(http, study_service_url) if study_service_url else ledger,
        ProductType.AI_RESUME: CreditTopUpHandler(http, credit_service_url) if credit_service_url else ledger,
    }
