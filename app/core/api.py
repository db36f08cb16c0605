"""Litestar controllers of Payment Core: parse → call a use case → serialize. Nothing else."""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Link, OpenAPI, OpenAPIResponse, Operation
from litestar.params import Body, Parameter
from litestar.response import Redirect

from app.client_address import request_source
from app.core.auth import Caller, TokenAuthority
from app.core.checkout import CallbackOutcome, Checkout, IssueCommand
from app.core.domain import ErrorCode, PaymentError, Status, ValidationFailed
from app.core.idempotency import request_fingerprint
from app.core.ports import IdempotencyStore, ProvisioningQueue, ServiceUnavailable, StoredResponse
from app.core.queries import PaymentQueries
from app.core.refunds import RefundService
from app.core.schemas import (
    ErrorBody,
    IssueRequest,
    IssueResponse,
    ProductListBody,
    RefundAccountBody,
    RefundRequest,
    StatusResponse,
    TransactionBody,
    TransactionDetailBody,
    TransactionListBody,
    product_body,
    status_response,
    transaction_body,
    transaction_detail_body,
)
from app.core.webhooks import WebhookService
from app.gateway.models import RefundAccount
from app.gateway.toss_webhooks import TossWebhooks
from app.http.redirects import FrontendPages
from app.metrics import DATABASE_UNAVAILABLE, STATUS_POLLS, WEBHOOK_DELIVERIES
from app.outages import database_unavailable
from app.ratelimit import RateLimited, RateLimiter

log = logging.getLogger("app.api")

JSON = "application/json"
# Bodies decoded with forbid_unknown_fields: the OpenAPI document marks them additionalProperties: false.
CLOSED_REQUEST_BODIES: tuple[type, ...] = (IssueRequest, RefundRequest, RefundAccountBody)
BEARER: list[dict[str, list[str]]] = [{"BearerToken": []}]
# Larger bodies get 413 before they are read whole: webhook_events.raw_body is a TEXT column
# (65,535 bytes), and an issue or refund body (metadata ≤ 4 KB) never comes near it.
MAX_BODY_BYTES = 65_535
_ERROR_DESCRIPTIONS = {
    400: "Malformed request (PAY_000), expired (PAY_002), verification failed (PAY_003) or wrong price (PAY_007)",
    401: "Missing, invalid or expired bearer token (AUTH_001)",
    403: "Not allowed (AUTH_002), e.g. a refund the policy refuses",
    404: "No such transaction or product (PAY_008)",
    409: "Not allowed in the current state (PAY_001) or Idempotency-Key in progress (PAY_010)",
    422: "Idempotency-Key reused with a different request (PAY_009)",
    413: "Body larger than 65,535 bytes (PAYLOAD_TOO_LARGE)",
    429: "Too many requests (RATE_LIMITED); see Retry-After",
    503: "The database or Redis is briefly unreachable (SERVICE_UNAVAILABLE); retry after Retry-After",
}


@dataclass(frozen=True, slots=True)
class StatusHotPath:
    """What the status endpoint needs, put in app.state by the composition root."""

    tokens: TokenAuthority
    queries: PaymentQueries


_POLLS_SETTLED = STATUS_POLLS.labels(settled="true")
_POLLS_PENDING = STATUS_POLLS.labels(settled="false")


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the SPEC's error envelope."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_ERROR_DESCRIPTIONS[code])
        for code in status_codes
    }


BodyT = TypeVar("BodyT")
TransactionIdPath = Annotated[str, Parameter(min_length=1, max_length=64, description="Our transaction id")]


async def run_idempotently(
    *,
    store: IdempotencyStore,
    caller: Caller,
    key: str | None,
    request: Request[Any, Any, Any],
    status_code: int,
    produce: Any,
) -> Response[bytes]:
    """Run `produce()` at most once per (user, endpoint, Idempotency-Key); replay its response."""
    if key is None:
        body = msgspec.json.encode(await produce())
        return Response(body, status_code=status_code, media_type=JSON)
    scope = f"{caller.user_id}:{request.method}:{request.url.path}"
    fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
    stored = await store.begin(scope, key, fingerprint)
    if stored is not None:
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type=JSON,
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        body = msgspec.json.encode(await produce())
    except BaseException:
        # Nothing was created: the key may be retried (Stripe does not save failed validations).
        # If the store is unreachable the claim expires on its own; the original error is answered.
        with contextlib.suppress(ServiceUnavailable):
            await store.abandon(scope, key)
        raise
    try:
        await store.finish(scope, key, fingerprint, StoredResponse(status_code=status_code, body=body))
    except ServiceUnavailable:
        # The work is done and committed: answer it. Only a replay of this key is lost.
        log.warning("Idempotency-Key response not stored; a retry with this key will not replay it")
    return Response(body, status_code=status_code, media_type=JSON)


def strict_body(raw: bytes, kind: type[BodyT]) -> BodyT:
    """Decode a JSON body strictly: Litestar's own conversion would accept "50000" for an int."""
    try:
        return msgspec.json.decode(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in text else "body"
        raise ValidationFailed(text, details=[{"field": field, "reason": text}]) from None
    except msgspec.DecodeError:
        raise ValidationFailed("The body is not valid JSON.", details=[{"field": "body"}]) from None
    except RecursionError:
        raise _nested_too_deeply() from None


def _nested_too_deeply() -> ValidationFailed:
    return ValidationFailed(
        "The JSON body is nested too deeply.", details=[{"field": "body", "reason": "nested too deeply"}]
    )


class PaymentsRequest(Request[Any, Any, Any]):
    """Litestar's Request; a JSON body nested past the decoder's recursion limit is PAY_000, not a 500."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise _nested_too_deeply() from None


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
                f"unknown status '{token}'",
                details=[{"field": "status", "reason": "a status name or code, comma-separated"}],
            ) from None
    return statuses


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
        responses=error_responses(400, 401, 404, 409, 413, 422, 429, 503),
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def issue(
        self,
        request: Request[Any, Any, Any],
        data: IssueRequest,
        caller: Caller,
        checkout: Checkout,
        idempotency_store: IdempotencyStore,
        rate_limiter: RateLimiter,
        idempotency_key: Annotated[
            str | None, Parameter(header="Idempotency-Key", required=False, min_length=1, max_length=255)
        ] = None,
    ) -> Response[IssueResponse]:
        await rate_limiter.hit(caller.user_id, "issue")
        data = strict_body(await request.body(), IssueRequest)

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
            )

        response = await run_idempotently(
            store=idempotency_store,
            caller=caller,
            key=idempotency_key,
            request=request,
            status_code=201,
            produce=produce,
        )
        return response  # type: ignore[return-value]

    @get(
        "/{transaction_id:str}/status",
        summary="Poll a transaction's status (hot path)",
        responses=error_responses(400, 401, 404, 503),
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
        caller = hot.tokens.verify(request.headers.get("authorization"))
        report = await hot.queries.get_status(
            user_id=caller.user_id, transaction_id=transaction_id, attempt=attempt
        )
        (_POLLS_SETTLED if report.view.status.is_settled else _POLLS_PENDING).inc()
        return status_response(report.view, report.message, report.retry_after_ms)

    @post(
        "/{transaction_id:str}/refund",
        status_code=202,
        summary="Request a refund",
        description="Owner or admin; policy-checked; 40/50 → 90, then the PG cancel runs as a job. "
        "Honours Idempotency-Key.",
        responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def refund(
        self,
        request: Request[Any, Any, Any],
        transaction_id: TransactionIdPath,
        data: RefundRequest,
        caller: Caller,
        refund_service: RefundService,
        idempotency_store: IdempotencyStore,
        rate_limiter: RateLimiter,
        idempotency_key: Annotated[
            str | None, Parameter(header="Idempotency-Key", required=False, min_length=1, max_length=255)
        ] = None,
    ) -> Response[TransactionBody]:
        await rate_limiter.hit(caller.user_id, "refund")
        data = strict_body(await request.body(), RefundRequest)

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
            return transaction_body(transaction)

        response = await run_idempotently(
            store=idempotency_store,
            caller=caller,
            key=idempotency_key,
            request=request,
            status_code=202,
            produce=produce,
        )
        return response  # type: ignore[return-value]

    @get(
        "/{transaction_id:str}",
        summary="A transaction with its history",
        responses=error_responses(400, 401, 404, 503),
    )
    async def detail(
        self,
        transaction_id: TransactionIdPath,
        caller: Caller,
        payment_queries: PaymentQueries,
        refund_service: RefundService,
    ) -> TransactionDetailBody:
        detail = await payment_queries.get_detail(
            user_id=caller.user_id, is_admin=caller.is_admin, transaction_id=transaction_id
        )
        refunds = await refund_service.list_refunds(transaction_id)
        return transaction_detail_body(detail.transaction, list(detail.history), refunds)

    @get(
        "/",
        summary="The caller's transactions, newest first",
        responses=error_responses(400, 401, 503),
    )
    async def list_transactions(
        self,
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
        return TransactionListBody(
            items=[transaction_body(t) for t in page.items], next_cursor=page.next_cursor
        )


# A Toss orderId (ours are transaction ids): anything else cannot be a transaction of ours.
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{6,64}")
_MAX_REPLAYED_VALUE = 600  # longer callback parameters are not Toss's: not kept for a replay


class CallbackController(Controller):
    """Where Toss sends the buyer's browser: no token, everything is verified S2S instead."""

    path = "/api/payments/callback"
    tags = ["callbacks"]

    @get(
        "/success",
        status_code=302,
        summary="Toss success redirect (browser)",
        description="Verifies and confirms S2S, then redirects the browser to the frontend's success or fail page.",
        response_description="Redirect to {FRONTEND_BASE_URL}/payment/success or /payment/fail",
        responses=error_responses(400),
    )
    async def success_callback(
        self,
        checkout: Checkout,
        frontend_pages: FrontendPages,
        provisioning_queue: ProvisioningQueue,
        payment_key: Annotated[str | None, Parameter(query="paymentKey", required=False)] = None,
        order_id: Annotated[str | None, Parameter(query="orderId", required=False)] = None,
        amount: Annotated[str | None, Parameter(query="amount", required=False)] = None,
        payment_type: Annotated[str | None, Parameter(query="paymentType", required=False)] = None,
    ) -> Redirect:
        try:
            outcome = await checkout.handle_success_callback(
                payment_key=payment_key, order_id=order_id, amount=amount
            )
        except Exception as error:
            if not database_unavailable(error):
                raise
            query = {"paymentKey": payment_key, "orderId": order_id, "amount": amount}
            outcome = await _answer_later(provisioning_queue, "success", query, order_id)
        return Redirect(path=frontend_pages.url(outcome), status_code=302)

    @get(
        "/fail",
        status_code=302,
        summary="Toss failure redirect (browser)",
        response_description="Redirect to {FRONTEND_BASE_URL}/payment/fail",
        responses=error_responses(400),
    )
    async def fail_callback(
        self,
        checkout: Checkout,
        frontend_pages: FrontendPages,
        provisioning_queue: ProvisioningQueue,
        transaction_id: Annotated[str | None, Parameter(query="transactionId", required=False)] = None,
        order_id: Annotated[str | None, Parameter(query="orderId", required=False)] = None,
        code: Annotated[str | None, Parameter(query="code", required=False)] = None,
        message: Annotated[str | None, Parameter(query="message", required=False)] = None,
    ) -> Redirect:
        try:
            outcome = await checkout.handle_fail_callback(
                transaction_id=transaction_id, order_id=order_id, code=code, message=message
            )
        except Exception as error:
            if not database_unavailable(error):
                raise
            query = {"transactionId": transaction_id, "orderId": order_id, "code": code, "message": message}
            outcome = await _answer_later(provisioning_queue, "fail", query, transaction_id or order_id)
        return Redirect(path=frontend_pages.url(outcome), status_code=302)


async def _answer_later(
    queue: ProvisioningQueue,
    kind: str,
    query: dict[str, str | None],
    transaction_id: str | None,
) -> CallbackOutcome:
    """The database went away during a callback: the buyer goes to the frontend now (the success
    page says "confirming" and polls; a failed window's buyer sees the fail page) and a worker
    replays the callback once the database is back. Whatever had been written stays (a claimed
    30 is also reconciled), and the replay acts on the state it finds, so the PG's confirm still
    happens at most once."""
    if transaction_id is None or not _ORDER_ID.fullmatch(transaction_id):
        return CallbackOutcome.fail(None, ErrorCode.NOT_FOUND, "No such transaction.")
    given = {name: value for name, value in query.items() if value is not None}
    if all(len(value) <= _MAX_REPLAYED_VALUE for value in given.values()):
        try:
            await queue.enqueue_callback(kind, given)
            DATABASE_UNAVAILABLE.labels(component="callback").inc()
            log.warning(
                "database unreachable: callback answered now, replayed once it is back",
                extra={"transactionId": transaction_id, "callback": kind},
            )
        except Exception:
            log.exception(
                "database unreachable and the callback could not be queued for replay",
                extra={"transactionId": transaction_id, "callback": kind},
            )
    if kind == "success":
        return CallbackOutcome.success(transaction_id)
    return CallbackOutcome.fail(
        transaction_id, ErrorCode.VERIFICATION_FAILED, "The payment was not completed."
    )


class ProductController(Controller):
    path = "/api/products"
    tags = ["products"]

    @get("/", summary="The product catalog")
    async def list_products(self, payment_queries: PaymentQueries) -> ProductListBody:
        return ProductListBody(items=[product_body(p) for p in await payment_queries.list_products()])


class WebhookController(Controller):
    path = "/webhooks/payments"
    tags = ["webhooks"]

    @post(
        "/toss",
        status_code=200,
        summary="Toss webhooks (PAYMENT_STATUS_CHANGED, DEPOSIT_CALLBACK)",
        description="Public (Toss does not sign payment webhooks): limited per source address, "
        "429 with Retry-After above the limit, which Toss retries later.",
        responses=error_responses(400, 401, 413, 429, 503),
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def toss(
        self,
        request: Request[Any, Any, Any],
        webhook_service: WebhookService,
        rate_limiter: RateLimiter,
        data: Annotated[
            dict[str, Any],
            Body(description="Toss's body, as sent; only used to know which payment to re-fetch S2S"),
        ],
    ) -> dict[str, str]:
        try:
            await rate_limiter.hit(request_source(request), "webhook")
        except RateLimited:
            WEBHOOK_DELIVERIES.labels(outcome="RATE_LIMITED").inc()
            raise
        try:
            outcome = await webhook_service.receive(
                TossWebhooks.provider, await request.body(), request.headers
            )
        except PaymentError as error:
            WEBHOOK_DELIVERIES.labels(
                outcome="REJECTED" if error.code == ErrorCode.UNAUTHENTICATED else "MALFORMED"
            ).inc()
            raise
        if outcome in ("QUEUED", "IGNORED"):
            WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
        return {"outcome": outcome}


# --- OpenAPI links: which answer feeds the next call -------------------------------------------
# The walk a client makes, catalog → issue → callback → status → refund, stated in the document so
# that clients and the contract fuzzer's stateful phase can follow it. Keyed by the source
# (method, path, status); each link maps the target's parameters (or body fields) to runtime
# expressions on the source's request or answer.
@dataclass(frozen=True, slots=True)
class LinkTarget:
    method: str
    path: str
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: dict[str, str] | None = None


_FROM_BODY = "$response.body#/transactionId"
_STATUS_PATH = "/api/payments/{transaction_id}/status"
_DETAIL_PATH = "/api/payments/{transaction_id}"
_REFUND_PATH = "/api/payments/{transaction_id}/refund"


def _about(transaction_id: str) -> dict[str, LinkTarget]:
    """Links from an answer naming a transaction to the operations on that transaction."""
    on = {"path.transaction_id": transaction_id}
    return {
        "PollStatus": LinkTarget("GET", _STATUS_PATH, on),
        "GetDetail": LinkTarget("GET", _DETAIL_PATH, on),
        "RequestRefund": LinkTarget("POST", _REFUND_PATH, on),
    }


OPENAPI_LINKS: dict[tuple[str, str, str], dict[str, LinkTarget]] = {
    ("GET", "/api/products", "200"): {
        "IssueFirstProduct": LinkTarget(
            "POST",
            "/api/payments/issue",
            request_body={
                field: f"$response.body#/items/0/{field}" for field in ("productType", "productId", "amount")
            },
        )
    },
    ("POST", "/api/payments/issue", "201"): {
        # The PG sends the browser back with our transactionId as its orderId (and its own
        # paymentKey and amount, which no answer of ours carries).
        "SuccessCallback": LinkTarget("GET", "/api/payments/callback/success", {"query.orderId": _FROM_BODY}),
        "FailCallback": LinkTarget(
            "GET",
            "/api/payments/callback/fail",
            {"query.transactionId": _FROM_BODY, "query.orderId": _FROM_BODY},
        ),
        **_about(_FROM_BODY),
    },
    # No links out of the callbacks: their query is the browser's, not an id this service answered.
    ("GET", _STATUS_PATH, "200"): _about(_FROM_BODY),
    ("GET", _DETAIL_PATH, "200"): _about(_FROM_BODY),
    ("POST", _REFUND_PATH, "202"): _about(_FROM_BODY),
    ("GET", "/api/payments", "200"): _about("$response.body#/items/0/transactionId"),
}


def document_links(document: OpenAPI) -> None:
    """Add OPENAPI_LINKS to the generated document; targets are named by their operationId."""
    paths = document.paths or {}

    def operation(method: str, path: str) -> Operation:
        found: Operation | None = getattr(paths[path], method.lower())
        if found is None:
            raise KeyError(f"OPENAPI_LINKS names {method} {path}, which the document does not have")
        return found

    for (method, path, status), links in OPENAPI_LINKS.items():
        response = (operation(method, path).responses or {})[status]
        if not isinstance(response, OpenAPIResponse):
            raise TypeError(f"{method} {path} {status} is a reference, not a response")
        response.links = {
            name: Link(
                operation_id=operation(target.method, target.path).operation_id,
                parameters=target.parameters or None,
                request_body=target.request_body,
            )
            for name, target in links.items()
        }
