"""Grant handlers: one per product type, each able to grant and to take back (revoke).

What is granted comes from the product catalog, never from the buyer: a STUDY product names its
`studyId`, an AI_RESUME product its credit count. Buyer metadata may only carry context the
downstream checks itself (`applicationId`). Every path segment built from data is URL-quoted.

A handler is idempotent: running it twice grants (or revokes) once. The downstream service gets
our transactionId (grant) or refundId (revoke) as Idempotency-Key; the local ledger has a unique
row per transaction and per refund. It raises TransientGrantError for what a retry may fix
(timeouts, 5xx, 429, connection errors) and PermanentGrantError for what it will not (other 4xx).
A downstream answer body never reaches the buyer: it is logged (bounded), never returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from sqlalchemy import ColumnElement, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.domain import ProductType, RefundStatus, Transaction
from app.core.ports import Product, RefundRecord
from app.db import entitlement_revocations, entitlements
from app.db_direct import HotPathDatabase

log = logging.getLogger("app.provisioning")

MAX_LOGGED_BODY = 500  # characters of a downstream answer kept in the log line
MAX_APPLICATION_ID = 64


class TransientGrantError(Exception):
    """The grant (or revoke) may succeed if tried again later."""


class PermanentGrantError(Exception):
    """The downstream service refused for good. The message is ours, never the downstream's body."""


def _application_id(metadata: Mapping[str, Any]) -> str | None:
    """Context the study service verifies itself; anything but a short string is dropped."""
    value = metadata.get("applicationId")
    if isinstance(value, str) and 0 < len(value) <= MAX_APPLICATION_ID:
        return value
    return None


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """One purchase to grant: who, what (from the catalog), for how much, under which payment."""

    transaction_id: str
    user_id: str
    product_type: ProductType
    product_id: str
    amount: int
    study_id: str | None
    credits: int | None
    application_id: str | None

    @classmethod
    def of(cls, transaction: Transaction, product: Product) -> GrantRequest:
        return cls(
            transaction_id=transaction.transaction_id,
            user_id=transaction.user_id,
            product_type=transaction.product_type,
            product_id=transaction.product_id,
            amount=transaction.amount,
            study_id=product.study_id,
            credits=product.credits,
            application_id=_application_id(transaction.metadata),
        )


@dataclass(frozen=True, slots=True)
class RevokeRequest:
    """One refund's share of a grant to take back."""

    refund_id: str
    grant: GrantRequest
    refunded_amount: int  # this refund's amount
    refunded_before: int  # what earlier refunds of the same transaction took back

    @property
    def credits(self) -> int:
        """Credits to deduct for this refund (see credits_to_revoke)."""
        return credits_to_revoke(
            self.grant.credits or 0, self.grant.amount, self.refunded_before, self.refunded_amount
        )


def credits_to_revoke(credits: int, price: int, refunded_before: int, refund_amount: int) -> int:
    """The credits a refund takes back, in proportion to the money, rounded up.

    Counted on the running totals, so several partial refunds take back exactly `credits` once
    the whole price is refunded, and a buyer never keeps more credits than they paid for.
    """
    if price <= 0:
        return 0

    def share(refunded: int) -> int:
        return -(-credits * min(refunded, price) // price)  # ceiling division

    return share(refunded_before + refund_amount) - share(refunded_before)


def revoke_request(
    refund: RefundRecord, grant: GrantRequest, refunds: Sequence[RefundRecord]
) -> RevokeRequest:
    """The revoke of `refund`, given all of the transaction's refunds, oldest first."""
    before = 0
    for earlier in refunds:
        if earlier.refund_id == refund.refund_id:
            break
        if earlier.status != RefundStatus.REFUSED:
            before += earlier.amount
    return RevokeRequest(
        refund_id=refund.refund_id, grant=grant, refunded_amount=refund.amount, refunded_before=before
    )


class GrantHandler(Protocol):
    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        """Grant the purchase; returns details for the history. Idempotent per transaction."""
        ...

    async def revoke(self, request: RevokeRequest) -> dict[str, Any]:
        """Take back what a refund covers; returns details for the history. Idempotent per refund."""
        ...


async def _post(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], idempotency_key: str, what: str
) -> dict[str, Any]:
    """POST downstream: 2xx or 409 (already done) is success. Only the status code is returned."""
    try:
        response = await http.post(url, json=body, headers={"Idempotency-Key": idempotency_key})
    except httpx.TransportError as exc:  # timeouts and connection errors
        raise TransientGrantError(f"{what}: {type(exc).__name__}") from exc
    if response.status_code == 409 or response.is_success:
        return {"downstreamStatus": response.status_code}
    log.warning(
        "downstream refused",
        extra={
            "what": what,
            "url": url,
            "downstreamStatus": response.status_code,
            "body": response.text[:MAX_LOGGED_BODY],
        },
    )
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientGrantError(f"{what}: the downstream service answered {response.status_code}")
    raise PermanentGrantError(f"{what}: the downstream service refused with {response.status_code}")


def _study_url(base_url: str, study_id: str | None, action: str) -> str:
    if not study_id:
        raise PermanentGrantError("the catalog names no study for this product")
    return f"{base_url}/api/studies/{quote(study_id, safe='')}/{action}"


class StudyEnrollmentHandler:
    """STUDY: `POST {STUDY_SERVICE_URL}/api/studies/{studyId}/confirm-payment`, and on refund
    `POST …/cancel-payment`; the studyId is the catalog's."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        body = {
            "applicationId": request.application_id,
            "paymentId": request.transaction_id,
            "userId": request.user_id,
            "productId": request.product_id,
            "amount": request.amount,
        }
        url = _study_url(self._base_url, request.study_id, "confirm-payment")
        return await _post(self._http, url, body, request.transaction_id, "study enrollment")

    async def revoke(self, request: RevokeRequest) -> dict[str, Any]:
        grant = request.grant
        body = {
            "applicationId": grant.application_id,
            "paymentId": grant.transaction_id,
            "userId": grant.user_id,
            "refundedAmount": request.refunded_amount,
        }
        url = _study_url(self._base_url, grant.study_id, "cancel-payment")
        return await _post(self._http, url, body, request.refund_id, "study cancellation")


class CreditTopUpHandler:
    """AI_RESUME: `POST {CREDIT_SERVICE_URL}/api/credits/grants`, and on refund
    `POST …/api/credits/revocations`; the credit count is the catalog's."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        body = {
            "userId": request.user_id,
            "productId": request.product_id,
            "paymentId": request.transaction_id,
            "amount": request.amount,
            "credits": request.credits,
        }
        url = f"{self._base_url}/api/credits/grants"
        return await _post(self._http, url, body, request.transaction_id, "credit grant")

    async def revoke(self, request: RevokeRequest) -> dict[str, Any]:
        grant = request.grant
        body = {
            "userId": grant.user_id,
            "productId": grant.product_id,
            "paymentId": grant.transaction_id,
            "refundId": request.refund_id,
            "refundedAmount": request.refunded_amount,
            "credits": request.credits,
        }
        url = f"{self._base_url}/api/credits/revocations"
        return await _post(self._http, url, body, request.refund_id, "credit revocation")


_INSERT_GRANT = insert(entitlements)  # built once, given its values at execution (compiled once)


class LedgerGrantHandler:
    """No downstream URL configured: grants and revocations in the local `entitlements` ledger."""

    def __init__(self, engine: AsyncEngine, hot: HotPathDatabase | None = None) -> None:
        self._engine = engine
        self._hot = hot if hot is not None else engine  # the grant's INSERT (app.db_direct)

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        try:
            async with self._hot.begin() as conn:
                await conn.execute(
                    _INSERT_GRANT,
                    {
                        "transaction_id": request.transaction_id,
                        "user_id": request.user_id,
                        "product_type": request.product_type.value,
                        "product_id": request.product_id,
                        "study_id": request.study_id,
                        "credits": request.credits,
                        "granted_at": datetime.now(UTC),
                    },
                )
        except IntegrityError:
            # Already granted by an earlier run of this job: success, granted once.
            return {"ledger": "already granted"}
        except Exception as exc:  # database trouble is worth a retry
            raise TransientGrantError(f"ledger write failed: {type(exc).__name__}") from exc
        return {"ledger": "granted"}

    async def revoke(self, request: RevokeRequest) -> dict[str, Any]:
        grant = request.grant
        credits = request.credits
        now = datetime.now(UTC)
        # A study is taken back whole; credits once none are left.
        whole: ColumnElement[bool] = (
            true()
            if grant.product_type == ProductType.STUDY
            else entitlements.c.revoked_credits >= entitlements.c.credits
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(entitlement_revocations).values(
                        refund_id=request.refund_id,
                        transaction_id=grant.transaction_id,
                        credits=credits,
                        revoked_at=now,
                    )
                )
                await conn.execute(
                    update(entitlements)
                    .where(entitlements.c.transaction_id == grant.transaction_id)
                    .values(revoked_credits=entitlements.c.revoked_credits + credits)
                )
                await conn.execute(
                    update(entitlements)
                    .where(
                        entitlements.c.transaction_id == grant.transaction_id,
                        entitlements.c.revoked_at.is_(None),
                        whole,
                    )
                    .values(revoked_at=now)
                )
        except IntegrityError:
            return {"ledger": "already revoked"}  # this refund's revocation ran before
        except Exception as exc:
            raise TransientGrantError(f"ledger write failed: {type(exc).__name__}") from exc
        return {"ledger": "revoked", "credits": credits}


@dataclass(frozen=True, slots=True)
class Entitlement:
    transaction_id: str
    product_type: str
    product_id: str
    granted_at: datetime
    credits: int | None = None
    revoked_credits: int = 0
    revoked_at: datetime | None = None


async def list_entitlements(engine: AsyncEngine, user_id: str, limit: int = 100) -> list[Entitlement]:
    query = (
        select(entitlements.c.transaction_id, entitlements.c.product_type)
        .add_columns(
            entitlements.c.product_id,
            entitlements.c.granted_at,
            entitlements.c.credits,
            entitlements.c.revoked_credits,
            entitlements.c.revoked_at,
        )
        .where(entitlements.c.user_id == user_id)
        .order_by(entitlements.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Entitlement(r[0], r[1], r[2], r[3], r[4], int(r[5] or 0), r[6]) for r in rows]


def build_handlers(
    *,
    engine: AsyncEngine,
    hot: HotPathDatabase | None = None,
    http: httpx.AsyncClient,
    study_service_url: str | None,
    credit_service_url: str | None,
) -> dict[ProductType, GrantHandler]:
    ledger = LedgerGrantHandler(engine, hot)
    return {
        ProductType.STUDY: StudyEnrollmentHandler(http, study_service_url) if study_service_url else ledger,
        ProductType.AI_RESUME: CreditTopUpHandler(http, credit_service_url) if credit_service_url else ledger,
    }
