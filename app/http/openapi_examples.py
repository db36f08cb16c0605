"""The examples of the OpenAPI document: one realistic checkout, told request by request.

Every value is what the service really answers (ids in our formats, the catalog's products and
prices, our messages, Toss's codes), so a frontend developer can read the document like a trace,
and Swagger UI's "Try it out" starts from a request that works. Messages are the English texts of
app.messages (what `Accept-Language: en` gets; Korean is the default). app.http.openapi puts the
examples in the document (OPERATIONS names them per operation);
tests/unit/http/test_openapi_document.py checks each against its schema.
"""

from __future__ import annotations

import json
from typing import Any

from litestar.openapi.spec import Example

from app import messages as texts

# One buyer, one study, one day: 2026-12-05 (KST), times in UTC as the API answers them.
TXN = "TXN_20261205_VUqbakjM8RgYIsTH6nmB7Q"
TXN_VA = "TXN_20261205_k2Rw9yTqLm4NpXz7aBcD3g"
TXN_OLDER = "TXN_20261128_p8HsYwq2ZtR5mLx3VbNe6A"
REFUND_ID = "RF_20261207_3f9c2a7b51e04d8c6a1b2e7f"
PAYMENT_KEY = "tviva20261205230412Kq7Xa"
PG_TRANSACTION_KEY = "B1C5E0F8A2D94C7E9A3F6B0D2E8C4A17"
CLIENT_KEY = "live_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
USER_ID = "user_42"
API = "https://pay.asyncsite.com"
FRONTEND = "https://asyncsite.com"
IDEMPOTENCY_KEY = "4f6b2c1e-9a3d-4e7b-8c5f-1d2a3b4c5e6f"
# Real tokens (app.core.stream_tokens) minted under a made-up secret at ISSUED_AT: st1.<payload>.<tag>.
STREAM_TOKEN = (
    "st1.WzE3OTY0ODMwNDIsIlRYTl8yMDI2MTIwNV9WVXFiYWtqTThSZ1lJc1RINm5tQjdRIiwidXNlcl80MiJd"
    ".LPTSJysd_svCw0oXcj6lFB16iMsVxNX3CAq8CoF7XfA"
)
STREAM_TOKEN_VA = (
    "st1.WzE3OTY0ODMwNDMsIlRYTl8yMDI2MTIwNV9rMlJ3OXlUcUxtNE5wWHo3YUJjRDNnIiwidXNlcl80MiJd"
    ".KXzAmIVBwwnDWKOoJDqlO4q045eV_62lDYZ4yKKrVtA"
)
NEXT_CURSOR = "djE6MTE4Nw"  # opaque to clients: pass it back as ?cursor=

ISSUED_AT = "2026-12-05T14:04:02.118204Z"
EXPIRES_AT = "2026-12-05T14:34:02.118204Z"
CONFIRMING_AT = "2026-12-05T14:04:12.530417Z"
PAID_AT = "2026-12-05T14:04:13.207114Z"
GRANTING_AT = "2026-12-05T14:04:13.241958Z"
GRANTED_AT = "2026-12-05T14:04:13.912306Z"
FAILED_AT = "2026-12-05T14:05:40.650021Z"

STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50000}
STUDY_NAME = "Async study: Kotlin coroutines (8 weeks)"
CREDITS = {"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9900}
CREDITS_NAME = "AI resume review: 10 credits"

CANCELED_FAILURE = {
    "code": "PAY_003",
    "message": texts.PAYMENT_CANCELED_IN_WINDOW.en,
    "pgCode": "PAY_PROCESS_CANCELED",
    "pgMessage": "사용자에 의해 결제가 취소되었습니다.",
}
VIRTUAL_ACCOUNT = {"bankCode": "20", "accountNumber": "X6505636518308", "dueDate": "2026-12-08T14:59:59Z"}


class JsonExample(Example):
    """An Example whose value is written as given: Litestar drops the None of dicts when it writes
    the document, and `"failure": null` is part of what a client must expect."""

    def to_schema(self) -> dict[str, Any]:
        written = {"summary": self.summary, "description": self.description}
        return {**{k: v for k, v in written.items() if v is not None}, "value": self.value}


def example(summary: str, value: Any, description: str | None = None) -> Example:
    return JsonExample(summary=summary, value=value, description=description)


# --- the checkout: issue ---------------------------------------------------------------------

ISSUE_REQUEST = {
    "card": example(
        "A study enrollment, paid by card",
        {**STUDY, "method": "CARD", "metadata": {"cohort": "2027-spring", "referrer": "newsletter"}},
    ),
    "virtualAccount": example(
        "AI-resume credits, paid by virtual account (deposit within days)",
        {**CREDITS, "orderName": CREDITS_NAME, "method": "VIRTUAL_ACCOUNT"},
    ),
}


def _issued(transaction_id: str, product: dict[str, Any], name: str, method: str) -> dict[str, Any]:
    return {
        "transactionId": transaction_id,
        "status": "CREATED",
        "statusCode": 10,
        "amount": product["amount"],
        "orderName": name,
        "productType": product["productType"],
        "productId": product["productId"],
        "method": method,
        "successUrl": f"{API}/api/payments/callback/success",
        "failUrl": f"{API}/api/payments/callback/fail?transactionId={transaction_id}",
        "expiresAt": EXPIRES_AT,
        "clientKey": CLIENT_KEY,
        "checkoutUrl": None,
        "streamToken": STREAM_TOKEN if transaction_id == TXN else STREAM_TOKEN_VA,
    }


ISSUE_RESPONSE = {
    "card": example(
        "Issued: open the payment window with these values",
        _issued(TXN, STUDY, STUDY_NAME, "CARD"),
        "Pass transactionId as the SDK's orderId, with amount, orderName, successUrl and failUrl. "
        "checkoutUrl is null in production (the Toss SDK opens the window); development points it "
        "at the mock Toss's hosted window.",
    ),
    "virtualAccount": example(
        "Issued for a virtual account", _issued(TXN_VA, CREDITS, CREDITS_NAME, "VIRTUAL_ACCOUNT")
    ),
}

# --- polling: status -------------------------------------------------------------------------


def _status(
    status: str,
    code: int,
    message: str,
    *,
    retry_after_ms: int | None,
    transaction_id: str = TXN,
    amount: int = 50000,
    completed_at: str | None = None,
    failure: dict[str, Any] | None = None,
    virtual_account: dict[str, Any] | None = None,
    refunded: int = 0,
    refundable: int = 0,
) -> dict[str, Any]:
    return {
        "transactionId": transaction_id,
        "status": status,
        "statusCode": code,
        "amount": amount,
        "completedAt": completed_at,
        "isSettled": code >= 40,
        "needsPolling": code < 40,
        "retryAfterMs": retry_after_ms,
        "message": message,
        "failure": failure,
        "virtualAccount": virtual_account,
        "refundedAmount": refunded,
        "refundableAmount": refundable,
        "streamToken": STREAM_TOKEN if transaction_id == TXN else STREAM_TOKEN_VA,
    }


def _says(code: int) -> str:
    return texts.STATUS_TEXTS[code].en


STATUS_RESPONSE = {
    "waiting": example(
        "10 CREATED: the buyer has not paid yet; poll again in 1 s",
        _status("CREATED", 10, _says(10), retry_after_ms=1000),
    ),
    "confirming": example(
        "30 PAYMENT_PENDING: we are confirming with Toss; poll again in 2 s",
        _status(
            "PAYMENT_PENDING",
            30,
            _says(30),
            retry_after_ms=2000,
        ),
    ),
    "awaitingDeposit": example(
        "30 PAYMENT_PENDING, virtual account: show the account; the wait grows to 60 s",
        _status(
            "PAYMENT_PENDING",
            30,
            texts.WAITING_FOR_DEPOSIT.en,
            retry_after_ms=20000,
            transaction_id=TXN_VA,
            amount=9900,
            virtual_account=VIRTUAL_ACCOUNT,
        ),
    ),
    "paid": example(
        "40 PAYMENT_SUCCESS: paid; the purchase is being prepared (keep polling for 50)",
        _status(
            "PAYMENT_SUCCESS",
            40,
            _says(40),
            retry_after_ms=None,
            completed_at=PAID_AT,
            refundable=50000,
        ),
    ),
    "ready": example(
        "50 PROVISION_SUCCESS: paid and granted; stop polling",
        _status(
            "PROVISION_SUCCESS",
            50,
            _says(50),
            retry_after_ms=None,
            completed_at=PAID_AT,
            refundable=50000,
        ),
    ),
    "failed": example(
        "41 PAYMENT_FAILED: the buyer closed the payment window; stop polling",
        _status(
            "PAYMENT_FAILED",
            41,
            CANCELED_FAILURE["message"],
            retry_after_ms=None,
            failure=CANCELED_FAILURE,
        ),
        "failure.code is ours (PAY_003 also covers a declined card); failure.pgCode is Toss's and "
        "tells them apart (PAY_PROCESS_CANCELED, REJECT_CARD_COMPANY, …).",
    ),
    "refunded": example(
        "95 REFUNDED: the money went back; stop polling",
        _status(
            "REFUNDED",
            95,
            _says(95),
            retry_after_ms=None,
            completed_at=PAID_AT,
            refunded=50000,
        ),
    ),
}

# --- detail, list, refund --------------------------------------------------------------------


def _transaction(
    status: str,
    code: int,
    *,
    updated_at: str,
    transaction_id: str = TXN,
    refunded: int = 0,
    refundable: int = 0,
    paid: bool = True,
    failure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "transactionId": transaction_id,
        "userId": USER_ID,
        "status": status,
        "statusCode": code,
        **{"productType": STUDY["productType"], "productId": STUDY["productId"]},
        "orderName": STUDY_NAME,
        "amount": STUDY["amount"],
        "refundedAmount": refunded,
        "refundableAmount": refundable,
        "method": "CARD",
        "provider": "TOSS",
        "paymentKey": PAYMENT_KEY if paid else None,
        "pgMethod": "CARD" if paid else None,
        "metadata": {"cohort": "2027-spring", "referrer": "newsletter"},
        "createdAt": ISSUED_AT,
        "updatedAt": updated_at,
        "expiresAt": EXPIRES_AT,
        "completedAt": PAID_AT if paid else None,
        "failure": failure,
        "virtualAccount": None,
    }


def _history(status: str, code: int, message: str, at: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"status": status, "statusCode": code, "message": message, "metadata": metadata, "createdAt": at}


PAID_HISTORY = [
    _history("CREATED", 10, "issued", ISSUED_AT, {}),
    _history("PAYMENT_PENDING", 30, "confirming with the payment provider", CONFIRMING_AT, {}),
    _history(
        "PAYMENT_SUCCESS",
        40,
        "payment confirmed by the payment provider",
        PAID_AT,
        {"pgStatus": "DONE", "paymentKey": PAYMENT_KEY, "secondsSinceIssue": 11.089},
    ),
    _history("PROVISION_PENDING", 45, "grant queued", GRANTING_AT, {}),
    _history("PROVISION_SUCCESS", 50, "purchase granted", GRANTED_AT, {"downstreamStatus": 200}),
]

DETAIL_RESPONSE = {
    "granted": example(
        "A paid and granted study enrollment, with its history",
        {
            **_transaction("PROVISION_SUCCESS", 50, updated_at=GRANTED_AT, refundable=50000),
            "history": PAID_HISTORY,
            "refunds": [],
        },
    ),
    "refunded": example(
        "Refunded in full: the refund and its history",
        {
            **_transaction("REFUNDED", 95, updated_at="2026-12-07T01:20:31.774052Z", refunded=50000),
            "history": [
                *PAID_HISTORY,
                _history(
                    "REFUND_REQUESTED",
                    90,
                    "refund of 50000 KRW requested",
                    "2026-12-07T01:20:30.118993Z",
                    {"refundId": REFUND_ID, "amount": 50000, "actor": USER_ID, "partial": False},
                ),
                _history(
                    "REFUND_REQUESTED",
                    90,
                    "grant taken back",
                    "2026-12-07T01:20:30.902417Z",
                    {"refundId": REFUND_ID, "revoke": "DONE"},
                ),
                _history(
                    "REFUNDED",
                    95,
                    "50000 KRW refunded by the payment provider",
                    "2026-12-07T01:20:31.774052Z",
                    {"refundId": REFUND_ID, "pgTransactionKey": PG_TRANSACTION_KEY, "amount": 50000},
                ),
            ],
            "refunds": [
                {
                    "refundId": REFUND_ID,
                    "amount": 50000,
                    "reason": "Schedule conflict: cannot attend the study",
                    "status": "DONE",
                    "requestedBy": USER_ID,
                    "createdAt": "2026-12-07T01:20:30.118993Z",
                    "completedAt": "2026-12-07T01:20:31.774052Z",
                    "pgTransactionKey": PG_TRANSACTION_KEY,
                    "revokeStatus": "DONE",
                }
            ],
        },
    ),
}

LIST_RESPONSE = {
    "page": example(
        "The caller's transactions, newest first; pass nextCursor as ?cursor= for the next page",
        {
            "items": [
                _transaction("PROVISION_SUCCESS", 50, updated_at=GRANTED_AT, refundable=50000),
                _transaction(
                    "PAYMENT_FAILED",
                    41,
                    transaction_id=TXN_OLDER,
                    updated_at=FAILED_AT,
                    paid=False,
                    failure=CANCELED_FAILURE,
                ),
            ],
            "nextCursor": NEXT_CURSOR,
        },
    ),
    "last": example("The last page", {"items": [], "nextCursor": None}),
}

REFUND_REQUEST = {
    "full": example("Refund everything", {"reason": "Schedule conflict: cannot attend the study"}),
    "partial": example(
        "Refund part of the amount", {"reason": "Partial refund agreed with support", "amount": 20000}
    ),
    "virtualAccount": example(
        "A deposited virtual-account payment: Toss needs the buyer's account",
        {
            "reason": "Bought the wrong credit pack",
            "refundReceiveAccount": {
                "bank": "우리",
                "accountNumber": "1002345678901",
                "holderName": "김하늘",
            },
        },
    ),
}

REFUND_RESPONSE = {
    "requested": example(
        "Accepted: 90 REFUND_REQUESTED; poll the status for 95",
        _transaction("REFUND_REQUESTED", 90, updated_at="2026-12-07T01:20:30.118993Z"),
        "The grant is taken back first, then Toss cancels the payment; the status reaches 95 REFUNDED.",
    ),
}

# --- the browser callbacks -------------------------------------------------------------------

SUCCESS_REDIRECTS = {
    "paid": example(
        "Confirmed (or still confirming): the success page polls the status",
        f"{FRONTEND}/payment/success?transactionId={TXN}",
    ),
    "declined": example(
        "Toss declined the confirm: the fail page",
        f"{FRONTEND}/payment/fail?transactionId={TXN}&code=REJECT_CARD_COMPANY"
        "&message=The+payment+was+declined.&errorCode=PAY_003",
    ),
}
FAIL_REDIRECTS = {
    "canceled": example(
        "The buyer closed the payment window",
        f"{FRONTEND}/payment/fail?transactionId={TXN}&code=PAY_PROCESS_CANCELED"
        "&message=The+payment+was+cancelled+in+the+payment+window.&errorCode=PAY_003",
    ),
}
CALLBACK_PARAMETERS: dict[str, dict[str, Example]] = {
    "paymentKey": {"paymentKey": example("Toss's key for the payment", PAYMENT_KEY)},
    "orderId": {"orderId": example("Our transactionId, as the SDK's orderId", TXN)},
    "amount": {"amount": example("The amount the buyer approved", "50000")},
    "paymentType": {"paymentType": example("Toss's payment type", "NORMAL")},
    "transactionId": {"transactionId": example("Ours, from the failUrl we issued", TXN)},
    "code": {"code": example("Toss's code: the buyer cancelled", "PAY_PROCESS_CANCELED")},
    "message": {
        "message": example(
            "Toss's message (untrusted, not shown as is)", "사용자에 의해 결제가 취소되었습니다."
        )
    },
}

# --- webhooks, catalog, grants, health -------------------------------------------------------

WEBHOOK_REQUEST = {
    "statusChanged": example(
        "PAYMENT_STATUS_CHANGED",
        {
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": "2026-12-05T23:04:13.512733",
            "data": {"orderId": TXN, "paymentKey": PAYMENT_KEY, "status": "DONE", "method": "카드"},
        },
    ),
    "deposit": example(
        "DEPOSIT_CALLBACK (a virtual account received the deposit)",
        {
            "createdAt": "2026-12-06T10:21:08.000000",
            "secret": "ps_Nq2Lm7Vx9Rb4Tz6Hc1Kw3Pd8Fy5G",
            "status": "DONE",
            "transactionKey": PG_TRANSACTION_KEY,
            "orderId": TXN_VA,
        },
    ),
}
WEBHOOK_RESPONSE = {
    "queued": example(
        "Recorded; a job re-fetches the payment from Toss and applies it", {"outcome": "QUEUED"}
    ),
    "ignored": example("A duplicate or an event we do not act on", {"outcome": "IGNORED"}),
}

PRODUCTS_RESPONSE = {
    "catalog": example(
        "The catalog (app/catalog.json)",
        {
            "items": [
                {
                    **STUDY,
                    "name": STUDY_NAME,
                    "studyId": "study_123",
                    "startsAt": "2027-03-02T19:00:00+09:00",
                    "endsAt": "2027-04-27T21:00:00+09:00",
                },
                {**CREDITS, "name": CREDITS_NAME, "credits": 10},
            ]
        },
    )
}

ENTITLEMENTS_RESPONSE = {
    "grants": example(
        "A study enrollment, and credits of which a refund took 4 back",
        {
            "items": [
                {
                    "transactionId": TXN,
                    "productType": "STUDY",
                    "productId": "study_123",
                    "grantedAt": GRANTED_AT,
                    "credits": None,
                    "revokedCredits": 0,
                    "revokedAt": None,
                },
                {
                    "transactionId": TXN_VA,
                    "productType": "AI_RESUME",
                    "productId": "resume_credit_10",
                    "grantedAt": "2026-12-06T10:21:09.433120Z",
                    "credits": 10,
                    "revokedCredits": 4,
                    "revokedAt": None,
                },
            ]
        },
    )
}

LIVE_RESPONSE = {"ok": example("The process is up", {"status": "ok"})}
READY_RESPONSE = {
    "ok": example("The database and Redis answer", {"status": "ok", "database": "ok", "redis": "ok"})
}

# --- parameters ------------------------------------------------------------------------------

TRANSACTION_ID_PARAMETER = {"transactionId": example("A transaction id from the issue answer", TXN)}
IDEMPOTENCY_KEY_PARAMETER = {
    "uuid": example("A fresh UUID per user action, reused only to retry that action", IDEMPOTENCY_KEY)
}
ATTEMPT_PARAMETER = {
    "first": example("The first poll", 0),
    "third": example("After two polls (the next wait is 3 s)", 2),
}
LIST_PARAMETERS: dict[str, dict[str, Example]] = {
    "status": {
        "paid": example("Paid, granted or refunded", "PAYMENT_SUCCESS,PROVISION_SUCCESS,REFUNDED"),
        "codes": example("The same by code", "40,50,95"),
    },
    "cursor": {"next": example("nextCursor of the previous page", NEXT_CURSOR)},
    "limit": {"ten": example("Ten per page", 10)},
}

# --- the status stream (SSE) --------------------------------------------------------------------


def _frame(sequence: int, status: Any) -> str:
    return f"event: status\nid: {sequence}\ndata: {json.dumps(status, ensure_ascii=False)}\n\n"


EVENTS_RESPONSE = {
    "paid": example(
        "From confirming to ready: close the EventSource at 50",
        "retry: 3000\n\n"
        + _frame(3, STATUS_RESPONSE["confirming"].value)
        + ": keep-alive\n\n"
        + _frame(4, STATUS_RESPONSE["paid"].value)
        + _frame(6, STATUS_RESPONSE["ready"].value),
        "Each `data:` is the status answer's JSON (with a fresh streamToken); `id:` is its sequence, "
        "which the browser sends back as Last-Event-ID when it reconnects.",
    ),
}
STREAM_TOKEN_PARAMETER = {"issued": example("The streamToken of the issue or status answer", STREAM_TOKEN)}
LAST_EVENT_ID_PARAMETER = {"resumed": example("The id of the last event received", "4")}

# --- errors: one example per code, the message as the service answers it ---------------------

_ERROR = texts.ERROR_MESSAGES
AMOUNT_NOT_INT = texts.WRONG_TYPE.format(field="amount", kind=texts.KINDS["int"]).en

ErrorExample = tuple[str, str, Any]  # summary, message, details
ERROR_EXAMPLES: dict[str, ErrorExample] = {
    # code: the example of every operation answering it, unless its OperationDoc has its own
    "PAY_000": (
        "Malformed request",
        AMOUNT_NOT_INT,
        [{"field": "amount", "in": "body", "reason": AMOUNT_NOT_INT}],
    ),
    "PAY_001": (
        "Not allowed in the transaction's state",
        texts.REFUND_NOT_PAID.format(status="CREATED").en,
        None,
    ),
    "PAY_002": ("Expired", _ERROR["PAY_002"].en, None),
    "PAY_003": ("Cancelled, declined or not verified", texts.PAYMENT_DECLINED.en, None),
    "PAY_004": ("Insufficient balance or limit", _ERROR["PAY_004"].en, None),
    "PAY_005": ("The payment provider failed", _ERROR["PAY_005"].en, None),
    "PAY_006": ("The purchase could not be granted", _ERROR["PAY_006"].en, None),
    "PAY_007": (
        "Not the catalog's price",
        texts.AMOUNT_DIFFERS.format(amount=45000, product="study_123", price=50000).en,
        {"expectedAmount": 50000},
    ),
    "PAY_008": ("No such transaction", _ERROR["PAY_008"].en, None),
    "PAY_009": ("Idempotency-Key reused with another body", _ERROR["PAY_009"].en, None),
    "PAY_010": ("Idempotency-Key still in progress", _ERROR["PAY_010"].en, None),
    "AUTH_001": ("No valid bearer token", texts.TOKEN_EXPIRED.en, None),
    "AUTH_002": ("Not allowed", _ERROR["AUTH_002"].en, None),
    "NOT_FOUND": ("No such route", _ERROR["NOT_FOUND"].en, None),
    "METHOD_NOT_ALLOWED": ("Not with this method", _ERROR["METHOD_NOT_ALLOWED"].en, None),
    "PAYLOAD_TOO_LARGE": ("Body over 65,535 bytes", _ERROR["PAYLOAD_TOO_LARGE"].en, None),
    "RATE_LIMITED": (
        "Over the per-minute limit",
        texts.RATE_LIMIT_EXCEEDED.format(action=texts.RATE_LIMITED_ACTIONS["issue"], limit=60, seconds=37).en,
        {"retryAfterSeconds": 37},
    ),
    "SERVICE_UNAVAILABLE": ("The database is briefly unreachable", texts.DATABASE_UNAVAILABLE.en, None),
    "NOT_READY": (
        "The database or Redis is unreachable",
        _ERROR["NOT_READY"].en,
        {"database": "ok", "redis": "error: ConnectionError"},
    ),
    "INTERNAL_ERROR": ("A bug, logged with the request id", _ERROR["INTERNAL_ERROR"].en, None),
}

# Where an operation answers a code for reasons of its own: its examples (OperationDoc.error_examples).
ISSUE_ERRORS: dict[str, ErrorExample] = {
    "PAY_008": ("No such product", texts.PRODUCT_NOT_FOUND.format(type="STUDY", id="study_999").en, None),
}
REFUND_ERRORS: dict[str, ErrorExample] = {
    "PAY_000": (
        "A virtual account's refund without the buyer's account",
        texts.REFUND_ACCOUNT_REQUIRED.en,
        None,
    ),
    "AUTH_002": ("The refund policy refuses it", texts.REFUND_WINDOW_PASSED.format(days=7).en, None),
    "RATE_LIMITED": (
        "Over the per-minute limit",
        texts.RATE_LIMIT_EXCEEDED.format(
            action=texts.RATE_LIMITED_ACTIONS["refund"], limit=10, seconds=21
        ).en,
        {"retryAfterSeconds": 21},
    ),
}
WEBHOOK_ERRORS: dict[str, ErrorExample] = {
    "PAY_000": (
        "Neither of Toss's shapes",
        texts.WEBHOOK_FIELD_REQUIRED.format(event="PAYMENT_STATUS_CHANGED", field="data.orderId").en,
        None,
    ),
    "AUTH_001": (
        "A forged delivery (with TOSS_WEBHOOK_SECRET set)",
        texts.WEBHOOK_SIGNATURE_INVALID.en,
        None,
    ),
    "RATE_LIMITED": (
        "Over the per-minute limit of its source address",
        texts.RATE_LIMIT_EXCEEDED.format(
            action=texts.RATE_LIMITED_ACTIONS["webhook"], limit=300, seconds=12
        ).en,
        {"retryAfterSeconds": 12},
    ),
}
EVENTS_ERRORS: dict[str, ErrorExample] = {
    "AUTH_001": ("An expired streamToken", texts.STREAM_TOKEN_EXPIRED.en, None),
    "AUTH_002": ("Another transaction's streamToken", texts.STREAM_TOKEN_OTHER_TRANSACTION.en, None),
    "RATE_LIMITED": (
        "Too many open streams",
        texts.STREAMS_PER_USER.format(limit=5).en,
        {"retryAfterSeconds": 10},
    ),
}
