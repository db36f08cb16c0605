"""/api/payments/callback: where the PG sends the buyer's browser back. Always a redirect to the
frontend; while the database is unreachable the callback is queued and replayed later."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Redirect

from app.core.checkout import CallbackOutcome, Checkout
from app.core.domain import ErrorCode
from app.core.ports import ProvisioningQueue
from app.http.errors import request_language
from app.http.redirects import FrontendPages
from app.messages import TRANSACTION_NOT_FOUND
from app.metrics import DATABASE_UNAVAILABLE
from app.outages import database_unavailable

log = logging.getLogger("app.api")

# A Toss orderId (ours are transaction ids): anything else cannot be a transaction of ours.
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{6,64}")
_MAX_REPLAYED_VALUE = 600  # longer callback parameters are not Toss's: not kept for a replay


@dataclass(frozen=True, slots=True)
class CallbackPieces:
    """What the callbacks need, put in app.state by the composition root (not dependencies:
    Litestar resolves two or more through a task group per request)."""

    checkout: Checkout
    frontend_pages: FrontendPages
    queue: ProvisioningQueue


def _pieces(request: Request[Any, Any, Any]) -> tuple[Checkout, FrontendPages, ProvisioningQueue]:
    pieces: CallbackPieces = request.app.state.callbacks
    return pieces.checkout, pieces.frontend_pages, pieces.queue


class CallbackController(Controller):
    """Where Toss sends the buyer's browser: no token, everything is verified S2S instead."""

    path = "/api/payments/callback"
    tags = ["callbacks"]

    @get(
        "/success",
        status_code=302,
        summary="Toss success redirect (browser)",
        description="Verifies and confirms S2S, then redirects the browser to the frontend's success or fail page.",
        response_description=(
            "Redirect to {FRONTEND_BASE_URL}/payment/success?transactionId=…, or "
            "/payment/fail?transactionId=…&code=…&message=…&errorCode=… (see the fail callback)"
        ),
    )
    async def success_callback(
        self,
        request: Request[Any, Any, Any],
        payment_key: Annotated[str | None, Parameter(query="paymentKey", required=False)] = None,
        order_id: Annotated[str | None, Parameter(query="orderId", required=False)] = None,
        amount: Annotated[str | None, Parameter(query="amount", required=False)] = None,
        payment_type: Annotated[str | None, Parameter(query="paymentType", required=False)] = None,
    ) -> Redirect:
        checkout, frontend_pages, provisioning_queue = _pieces(request)
        try:
            outcome = await checkout.handle_success_callback(
                payment_key=payment_key, order_id=order_id, amount=amount
            )
        except Exception as error:
            if not database_unavailable(error):
                raise
            query = {"paymentKey": payment_key, "orderId": order_id, "amount": amount}
            outcome = await _answer_later(checkout, provisioning_queue, "success", query, order_id)
        # The fail page's message in the browser's language (Accept-Language).
        return Redirect(path=frontend_pages.url(outcome, request_language(request)), status_code=302)

    @get(
        "/fail",
        status_code=302,
        summary="Toss failure redirect (browser)",
        description=(
            "Fails a CREATED transaction unless the PG reports its payment going on, then redirects the "
            "browser to the frontend's fail page. `code` and `message` are the PG's, untrusted: a `code` "
            "that is not 1-64 of A-Z and _ is not kept."
        ),
        response_description=(
            "Redirect to {FRONTEND_BASE_URL}/payment/fail?transactionId=…&code=…&message=…&errorCode=…: "
            "`code` is the PG's code when it gave one (PAY_PROCESS_CANCELED for a buyer who cancelled, "
            "REJECT_CARD_COMPANY, …), else ours; `errorCode` is always ours (PAY_…); `message` is ours"
        ),
    )
    async def fail_callback(
        self,
        request: Request[Any, Any, Any],
        transaction_id: Annotated[str | None, Parameter(query="transactionId", required=False)] = None,
        order_id: Annotated[str | None, Parameter(query="orderId", required=False)] = None,
        code: Annotated[str | None, Parameter(query="code", required=False)] = None,
        message: Annotated[str | None, Parameter(query="message", required=False)] = None,
    ) -> Redirect:
        checkout, frontend_pages, provisioning_queue = _pieces(request)
        try:
            outcome = await checkout.handle_fail_callback(
                transaction_id=transaction_id, order_id=order_id, code=code, message=message
            )
        except Exception as error:
            if not database_unavailable(error):
                raise
            query = {"transactionId": transaction_id, "orderId": order_id, "code": code, "message": message}
            outcome = await _answer_later(
                checkout, provisioning_queue, "fail", query, transaction_id or order_id
            )
        # The fail page's message in the browser's language (Accept-Language).
        return Redirect(path=frontend_pages.url(outcome, request_language(request)), status_code=302)


async def _answer_later(
    checkout: Checkout,
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
        return CallbackOutcome.fail(None, ErrorCode.NOT_FOUND, TRANSACTION_NOT_FOUND.en)
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
    return checkout.window_failure_page(transaction_id, code=query["code"], message=query["message"])
