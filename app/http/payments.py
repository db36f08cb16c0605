"""/api/payments: issue, the status hot path, detail, list and refund. Thin: parse → call a use
case → serialize."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from app import messages as texts
from app.core.auth import Caller, TokenAuthority
from app.core.checkout import Checkout, IssueCommand
from app.core.domain import Problem, Status, ValidationFailed
from app.core.ports import IdempotencyStore
from app.core.queries import PaymentQueries
from app.core.refunds import RefundService
from app.core.schemas import (
    IssueRequest,
    IssueResponse,
    RefundRequest,
    StatusResponse,
    TransactionBody,
    TransactionDetailBody,
    TransactionListBody,
    status_response,
    transaction_body,
    transaction_detail_body,
)
from app.core.stream_tokens import StreamTokens
from app.gateway.models import RefundAccount
from app.http.errors import request_language
from app.http.idempotency import run_idempotently
from app.http.openapi import BEARER
from app.http.requests import MAX_BODY_BYTES, StrictBody
from app.messages import language_of
from app.metrics import STATUS_POLLS
from app.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class StatusHotPath:
    """What the status endpoint needs, put in app.state by the composition root."""

    tokens: TokenAuthority
    queries: PaymentQueries
    stream_tokens: StreamTokens  # each answer carries a streamToken (app.http.status_events)


_POLLS_SETTLED = STATUS_POLLS.labels(settled="true")
_POLLS_PENDING = STATUS_POLLS.labels(settled="false")

TransactionIdPath = Annotated[str, Parameter(min_length=1, max_length=64, description="Our transaction id")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Parameter(
        header="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=255,
        # No control characters (tab, DEL); bytes past ASCII pass: a UTF-8 key arrives as Latin-1.
        pattern=r"^[\x20-\x7E\x80-\xFF]+$",
    ),
]


def _parse_statuses(raw: str | None) -> list[Status] | None:
    if not raw:
        return None
    statuses = []
    for part in raw.split(","):
        token = part.strip()
        try:
            statuses.append(Status(int(token)) if token.isdigit() else Status[token.upper()])
        except (KeyError, ValueError):
            raise ValidationFailed(
                Problem("status", texts.STATUS_FILTER_INVALID.format(value=token[:40]), "query")
            ) from None
    return statuses


def authorized_within_limits(action: str) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """Bearer token, then the caller's per-minute limit, before the body is even read: an
    anonymous or over-the-limit request costs no decoding, and gets its 401 or 429 whatever it sent.

    A `before_request` hook, which Litestar runs before it parses the handler's arguments; not a
    guard, for which it copies the whole route handler on every request."""

    async def check(request: Request[Any, Any, Any]) -> None:
        pieces: RequestGuards = request.app.state["request_guards"]
        caller = pieces.tokens.verify(request.headers.get("authorization"))
        await pieces.rate_limiter.hit(caller.user_id, action)

    return check


@dataclass(frozen=True, slots=True)
class IssuePieces:
    """What the issue endpoint needs, put in app.state by the composition root."""

    tokens: TokenAuthority
    checkout: Checkout
    idempotency_store: IdempotencyStore
    stream_tokens: StreamTokens


@dataclass(frozen=True, slots=True)
class RequestGuards:
    """What the guards need, put in app.state by the composition root."""

    tokens: TokenAuthority
    rate_limiter: RateLimiter


class PaymentController(Controller):
    path = "/api/payments"
    tags = ["payments"]
    security = BEARER

    @post(
        "/issue",
        status_code=201,
        summary="Issue a transaction",
        description="Creates a CREATED transaction priced by the catalog. Honours Idempotency-Key.",
        response_description="The new transaction and the URLs the payment window needs",
        request_max_body_size=MAX_BODY_BYTES,
        dto=StrictBody[IssueRequest],
        before_request=authorized_within_limits("issue"),
    )
    async def issue(
        self,
        request: Request[Any, Any, Any],
        data: IssueRequest,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[IssueResponse]:
        # Its collaborators from app.state, not dependencies: Litestar resolves two or more
        # dependencies through a task group per request (~100 µs, loadtests/README.md).
        pieces: IssuePieces = request.app.state.issue
        caller = pieces.tokens.verify(request.headers.get("authorization"))  # the guard's, cached
        checkout, stream_tokens = pieces.checkout, pieces.stream_tokens

        async def produce() -> IssueResponse:
            issued = await checkout.issue(
                IssueCommand(
                    user_id=caller.user_id,
                    product_type=data.product_type,
                    product_id=data.product_id,
                    amount=data.amount,
                    order_name=data.order_name,
                    method=data.method,
                    metadata=data.metadata,
                )
            )
            t = issued.transaction
            return IssueResponse(
                transaction_id=t.transaction_id,
                status=t.status.name,
                status_code=int(t.status),
                amount=t.amount,
                order_name=t.order_name,
                product_type=t.product_type,
                product_id=t.product_id,
                method=t.method,
                success_url=issued.success_url,
                fail_url=issued.fail_url,
                expires_at=t.expires_at,
                client_key=issued.client_key,
                checkout_url=issued.checkout_url,
                stream_token=stream_tokens.mint(t.transaction_id, t.user_id),
            )

        return await run_idempotently(
            produce,
            store=pieces.idempotency_store,
            caller=caller,
            key=idempotency_key,
            request=request,
            status_code=201,
        )

    @get(
        "/{transaction_id:str}/status",
        summary="Poll a transaction's status (hot path)",
    )
    async def status(
        self,
        request: Request[Any, Any, Any],
        transaction_id: TransactionIdPath,
        attempt: Annotated[
            int | None,
            Parameter(
                query="attempt",
                required=False,
                le=10_000,
                description="How many polls the client made before this one (negative counts as 0); picks the schedule step",
            ),
        ] = None,
    ) -> StatusResponse:
        # The hot path resolves its two collaborators itself: Litestar resolves two or more
        # dependencies per request through a task group, which costs more than the poll's query.
        hot: StatusHotPath = request.app.state.status_hot_path
        headers = request.headers
        caller = hot.tokens.verify(headers.get("authorization"))
        lang = language_of(headers.get("accept-language"))  # remembered per header value
        report = await hot.queries.get_status(
            user_id=caller.user_id, transaction_id=transaction_id, attempt=attempt, lang=lang
        )
        (_POLLS_SETTLED if report.view.status.is_settled else _POLLS_PENDING).inc()
        stream_token = hot.stream_tokens.mint(transaction_id, caller.user_id)  # the same one all minute
        return status_response(
            report.view, report.message, report.retry_after_ms, lang, stream_token=stream_token
        )

    @post(
        "/{transaction_id:str}/refund",
        status_code=202,
        summary="Request a refund",
        description="Owner or admin; policy-checked; 40/50 → 90, then the PG cancel runs as a job. "
        "Honours Idempotency-Key.",
        request_max_body_size=MAX_BODY_BYTES,
        dto=StrictBody[RefundRequest],
        before_request=authorized_within_limits("refund"),
    )
    async def refund(
        self,
        request: Request[Any, Any, Any],
        transaction_id: TransactionIdPath,
        data: RefundRequest,
        caller: Caller,
        refund_service: RefundService,
        idempotency_store: IdempotencyStore,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TransactionBody]:

        async def produce() -> TransactionBody:
            transaction = await refund_service.request_refund(
                transaction_id=transaction_id,
                user_id=caller.user_id,
                is_admin=caller.is_admin,
                reason=data.reason,
                amount=data.amount,
                refund_account=(
                    RefundAccount(
                        bank=account.bank,
                        account_number=account.account_number,
                        holder_name=account.holder_name,
                    )
                    if (account := data.refund_receive_account)
                    else None
                ),
            )
            return transaction_body(transaction, request_language(request))

        return await run_idempotently(
            produce,
            store=idempotency_store,
            caller=caller,
            key=idempotency_key,
            request=request,
            status_code=202,
        )

    @get(
        "/{transaction_id:str}",
        summary="A transaction with its history",
    )
    async def detail(
        self,
        request: Request[Any, Any, Any],
        transaction_id: TransactionIdPath,
        caller: Caller,
        payment_queries: PaymentQueries,
        refund_service: RefundService,
    ) -> TransactionDetailBody:
        detail = await payment_queries.get_detail(
            user_id=caller.user_id, is_admin=caller.is_admin, transaction_id=transaction_id
        )
        refunds = await refund_service.list_refunds(transaction_id)
        return transaction_detail_body(
            detail.transaction, list(detail.history), refunds, request_language(request)
        )

    @get(
        "/",
        summary="The caller's transactions, newest first",
    )
    async def list_transactions(
        self,
        request: Request[Any, Any, Any],
        caller: Caller,
        payment_queries: PaymentQueries,
        status: Annotated[
            str | None,
            Parameter(query="status", required=False, description="names or codes, comma-separated"),
        ] = None,
        cursor: Annotated[str | None, Parameter(query="cursor", required=False, max_length=200)] = None,
        limit: Annotated[int, Parameter(query="limit", ge=1, le=100)] = 20,
    ) -> TransactionListBody:
        page = await payment_queries.list_transactions(
            user_id=caller.user_id, statuses=_parse_statuses(status), cursor=cursor, limit=limit
        )
        lang = request_language(request)
        return TransactionListBody(
            items=[transaction_body(t, lang) for t in page.items], next_cursor=page.next_cursor
        )
