"""The OpenAPI document's `info.description`: how a frontend uses this API, start to finish.

Rendered as Markdown by Swagger UI at /schema/swagger; the tables of statuses and error codes are
made from the enums, so they cannot drift from what the service answers.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.core.domain import Status

_GUIDE = """\
Payments for AsyncSite: a frontend issues a transaction, hands the buyer to Toss Payments' window,
and learns the outcome from this API. Every `/api/payments` call but the browser callbacks needs a
bearer token (`Authorization: Bearer <JWT>`, button **Authorize**).

## A checkout, step by step

1. **Issue** — `POST /api/payments/issue` with `{{productType, productId, amount}}` (the catalog's
   price, `GET /api/products`) and an `Idempotency-Key`. The answer (201) carries `transactionId`,
   `amount`, `orderName`, `successUrl`, `failUrl`, Toss's `clientKey`{stream_token_issue}.
2. **Pay** — open Toss's window with its SDK: `requestPayment({{orderId: transactionId, amount,
   orderName, successUrl, failUrl}})` with that `clientKey`. The money is not taken yet.
3. **Callback** — Toss sends the browser to `successUrl` (`GET /api/payments/callback/success`):
   we check the amount, confirm the payment with Toss server to server, and redirect the browser
   to `{{FRONTEND}}/payment/success?transactionId=…`. A cancelled or failed window goes to `failUrl`
   and on to `{{FRONTEND}}/payment/fail?transactionId=…&code=…&message=…&errorCode=…` (`code` is
   Toss's when it gave one, e.g. `PAY_PROCESS_CANCELED`; `errorCode` is always ours).
4. **Wait for the outcome** — on the success page, poll `GET /api/payments/{{transactionId}}/status`
   (rules below){stream_step}
5. **Refund** (later) — `POST /api/payments/{{transactionId}}/refund` with `{{reason, amount?}}`
   answers 202 with status 90; the status reaches 95 once Toss gave the money back.

A buyer who cancels and a declined card share our code `PAY_003`; Toss's `pgCode` in `failure`
tells them apart.

## Statuses

`status` (name) and `statusCode` (number) always go together:

{statuses}

Terminal for a checkout page: **41**, **50** and **95** (stop polling and show the result).
`isSettled` is true from 40 on (the payment's outcome is known); 51 is followed by an automatic
refund (90 → 95).

## Polling the status

- Wait `retryAfterMs` before the next poll: the schedule is 0 → 1 → 2 → 3 → 5 s (then every 5 s).
  Send `?attempt=N` (how many polls you made before this one) to get the schedule's next step.
- A virtual account waiting for its deposit (30 with `virtualAccount`) backs off to 60 s.
- `retryAfterMs` is `null` once the outcome is known (40 and above). A page that shows "your
  purchase is ready" keeps polling on the same schedule until **50** (or 41/95), then stops.

{stream_section}\
## Idempotency

`POST /api/payments/issue` and `POST /api/payments/{{transactionId}}/refund` take an
`Idempotency-Key` header (1–255 characters; a UUID per user action). Keys are kept 24 h per user and
endpoint: the same key with the same body replays the first answer with `Idempotent-Replayed: true`;
with another body it is 422 `PAY_009`; while the first request runs it is 409 `PAY_010`. A request
refused as malformed stores nothing. Retry a timed-out issue or refund with the **same** key.

## Errors

Every error answer is `{{"code", "message", "details"}}`; `message` is for people, `code` is for code.
Each operation below lists the codes it can answer, with an example each. 429 and 503 carry
`Retry-After` (seconds). Messages (`message`, and a status's `message` and `failure.message`) are
Korean unless the request's `Accept-Language` prefers English; the examples show the English ones.

{errors}
"""

_STREAM_ISSUE = " and a `streamToken`\n   for the event stream"
_STREAM_STEP = """, or open the
   event stream `GET /api/payments/{transactionId}/events?streamToken=…` (below), until the status
   is terminal."""
_POLL_STEP = ", until the status is terminal."
_STREAM_SECTION = """\
## The event stream (SSE)

`GET /api/payments/{transactionId}/events?streamToken=…` is a `text/event-stream` for browsers'
`EventSource`, which cannot send an `Authorization` header: the `streamToken` of the issue answer
(and of every status answer and event) stands in for the bearer token, for this one transaction
and at most an hour. Each `event: status` carries the status answer's JSON as `data:` (the current
state first, then each change) and its sequence as `id:`; `: keep-alive` comments come in between.
Close the `EventSource` on 41, 50 or 95 (the server ends the stream there, and answers a reconnect
with `Last-Event-ID` 204). A user may keep a few streams open (429 `RATE_LIMITED` above). When the
stream fails (a proxy that buffers it, an expired token), fall back to polling the status: it is
always the truth.

"""


def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# What each status means to a client (the buyer's own words are the status answer's `message`).
STATUS_MEANINGS: dict[Status, str] = {
    Status.CREATED: "Issued; the buyer has not paid yet.",
    Status.PAYMENT_PENDING: "Confirming with the payment provider, or a virtual account awaiting its deposit.",
    Status.PAYMENT_SUCCESS: "Paid; the purchase is about to be granted.",
    Status.PAYMENT_FAILED: "The payment failed (final): see `failure`.",
    Status.PROVISION_PENDING: "Paid; the purchase is being granted.",
    Status.PROVISION_SUCCESS: "Paid and granted: the purchase is ready.",
    Status.PROVISION_FAILED: "Paid, but the grant failed for good; an automatic refund follows (90, 95).",
    Status.REFUND_REQUESTED: "A refund is under way.",
    Status.REFUNDED: "Refunded in full (final).",
}


def status_table() -> str:
    return _table(
        ("statusCode", "status", "meaning"),
        ((str(int(s)), f"`{s.name}`", STATUS_MEANINGS[s]) for s in Status),
    )


def api_description(errors: Iterable[tuple[str, int, str]], *, has_event_stream: bool) -> str:
    """The guide, with `errors` as (code, HTTP status, meaning) rows."""
    return _GUIDE.format(
        statuses=status_table(),
        errors=_table(("code", "HTTP", "meaning"), ((f"`{c}`", str(h), m) for c, h, m in errors)),
        stream_token_issue=_STREAM_ISSUE if has_event_stream else "",
        stream_step=_STREAM_STEP if has_event_stream else _POLL_STEP,
        stream_section=_STREAM_SECTION if has_event_stream else "",
    )
