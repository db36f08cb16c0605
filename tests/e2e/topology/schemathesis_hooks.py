"""Schemathesis hooks for the contract fuzzing runs (loaded through SCHEMATHESIS_HOOKS=<this file>).

Used by `make test` (test_openapi_fuzz.py) and `make fuzz` (scripts/fuzz.py):

- `error_envelope`, a check: every error response is the API's envelope `{code, message, details?}`
  served as JSON. Redirects (the PG callbacks' 302s) are not errors and are left alone.
- Catalog prices: half of the schema-valid issue bodies get a catalog product and its price, so
  transactions are really created (a random amount is PAY_007) and the stateful phase can follow
  the document's links from them: callback, status, detail, refund.
- The PG's redirect: the first success callback naming a transaction this run issued (the
  document links issue's transactionId to its orderId), with no amount or the issued one, is preceded by the buyer paying in the mock
  Toss (`POST /_mock/checkout`, env FUZZ_MOCK_TOSS_URL) and carries the paymentKey and amount the
  PG would send, so confirms, grants and refunds happen, not only PAY_003.
- A request journal (env FUZZ_JOURNAL): one JSON line per request sent to the API, written after
  its answer (phase, operation, status, envelope problem; the request and the answer for a 5xx or
  a broken envelope). `make fuzz` counts requests from it rather than trusting its configuration.
"""

from __future__ import annotations

import json
import os
import threading
from itertools import cycle
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st

ENVELOPE_KEYS = frozenset({"code", "message", "details"})
ISSUE = "POST /api/payments/issue"
SUCCESS_CALLBACK = "GET /api/payments/callback/success"
# From app/catalog.json (the stack's default catalog): product type, id, price.
CATALOG: tuple[tuple[str, str, int], ...] = (
    ("STUDY", "study_123", 50_000),
    ("STUDY", "study_algo_7", 35_000),
    ("AI_RESUME", "resume_credit_10", 9_900),
    ("AI_RESUME", "resume_credit_30", 24_900),
)
# Cards the buyer pays with, in turn (mock Toss test cards): mostly approved, some declined.
CARDS = cycle(["4330000000000005", "4330000000000005", "4330000000000005", "4330000000000013"])

MOCK_TOSS_URL = os.environ.get("FUZZ_MOCK_TOSS_URL", "").rstrip("/")
JOURNAL_PATH = os.environ.get("FUZZ_JOURNAL", "")

_lock = threading.Lock()
_issued: dict[str, dict[str, Any]] = {}  # transactionId → issue answer, until its window is opened
_journal = open(JOURNAL_PATH, "a", buffering=1, encoding="utf-8") if JOURNAL_PATH else None  # noqa: SIM115


def envelope_problem(response: schemathesis.Response) -> str | None:
    """What is wrong with a 4xx/5xx answer's envelope, or None (also for non-errors)."""
    if response.status_code < 400:
        return None
    content_type = ";".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/json"):
        return f"error {response.status_code} is not JSON (content-type {content_type!r})"
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        return f"error {response.status_code} body is not valid JSON: {exc}"
    if not isinstance(body, dict):
        return f"error {response.status_code} body is not an object: {body!r}"
    extra = set(body) - ENVELOPE_KEYS
    if extra:
        return f"error envelope has keys beyond code/message/details: {sorted(extra)}"
    if not isinstance(body.get("code"), str) or not body["code"]:
        return f"error envelope without a string `code`: {body!r}"
    if not isinstance(body.get("message"), str) or not body["message"]:
        return f"error envelope without a string `message`: {body!r}"
    return None


@schemathesis.check
def error_envelope(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """4xx/5xx answers are `{"code": str, "message": str, "details"?: any}` with a JSON content type."""
    problem = envelope_problem(response)
    if problem is not None:
        raise AssertionError(problem)
    return None


def _is_positive(case: schemathesis.Case) -> bool:
    return case.meta is None or case.meta.generation.mode == schemathesis.GenerationMode.POSITIVE


def _priced(
    case: schemathesis.Case, body: dict[str, Any], product: tuple[str, str, int]
) -> schemathesis.Case:
    product_type, product_id, amount = product
    case.body = {**body, "productType": product_type, "productId": product_id, "amount": amount}
    return case


@schemathesis.hook
def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy:
    """Schema-valid issue bodies: as generated, or with a catalog product at its price."""
    body = case.body
    if case.operation.label != ISSUE or not _is_positive(case) or not isinstance(body, dict):
        return st.just(case)
    return st.one_of(
        st.just(case), st.sampled_from(CATALOG).map(lambda product: _priced(case, body, product))
    )


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """The PG's redirect: the buyer pays in the mock's window, then the callback carries the payment.

    The first success callback naming a transaction this run issued, with no amount or the issued
    one, is the PG's: it gets the window's paymentKey and the amount, as Toss sends them. A
    different amount is a tampered callback and goes through unpaid (the service refuses it), as
    do later callbacks on the same transaction (replays, which must not confirm twice).
    """
    query = case.query
    if not MOCK_TOSS_URL or case.operation.label != SUCCESS_CALLBACK or not _is_positive(case):
        return
    if not isinstance(query, dict):
        return
    order_id, amount = str(query.get("orderId")), query.get("amount")
    with _lock:
        issued = _issued.get(order_id)
        if issued is None or (amount is not None and str(amount) != str(issued["amount"])):
            return
        del _issued[order_id]
        card = next(CARDS)
    answer = httpx.post(
        f"{MOCK_TOSS_URL}/_mock/checkout",
        json={
            "clientKey": issued["clientKey"],
            "orderId": issued["transactionId"],
            "amount": issued["amount"],
            "orderName": issued["orderName"],
            "method": issued.get("method") or "CARD",
            "successUrl": issued["successUrl"],
            "failUrl": issued["failUrl"],
            "cardNumber": card,
        },
        timeout=10.0,
    )
    payment_key = answer.json().get("paymentKey") if answer.status_code == 200 else None
    if payment_key:
        query["paymentKey"] = payment_key
        query["amount"] = str(issued["amount"])


def _phase(case: schemathesis.Case) -> str:
    return case.meta.phase.name.value if case.meta is not None else "unknown"


def _write(entry: dict[str, Any]) -> None:
    if _journal is not None:
        with _lock:
            _journal.write(json.dumps(entry, default=str) + "\n")


@schemathesis.hook
def after_call(
    context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response
) -> None:
    """Remember issued transactions (for the window) and journal the request."""
    if case.operation.label == ISSUE and response.status_code == 201:
        try:
            issued = json.loads(response.content)
        except ValueError:
            issued = None
        if isinstance(issued, dict) and isinstance(issued.get("transactionId"), str):
            with _lock:
                _issued[issued["transactionId"]] = issued
    if _journal is None:
        return
    problem = envelope_problem(response)
    entry: dict[str, Any] = {
        "phase": _phase(case),
        "operation": case.operation.label,
        "status": response.status_code,
        "envelope": problem,
    }
    if problem is not None or response.status_code >= 500:
        entry["request"] = case.as_curl_command()
        entry["response"] = response.content[:2000].decode("utf-8", "replace")
    _write(entry)


@schemathesis.hook
def after_network_error(context: schemathesis.HookContext, case: schemathesis.Case, request: Any) -> None:
    """A request that got no answer (timeout, reset) still counts, as status 0."""
    _write(
        {
            "phase": _phase(case),
            "operation": case.operation.label,
            "status": 0,
            "envelope": None,
            "request": case.as_curl_command(),
        }
    )
