"""Cash receipts (현금영수증): issued on their own (`POST /v1/cash-receipts`), cancelled fully or in
part, listed by request date; and those of transfers and virtual accounts paid with a receipt
request, which follow their payment (issued when it is paid, one CANCEL record per cancel).

Receipts are kept as records, one per issue (`transactionType: CONFIRM`) or cancel (`CANCEL`),
like the list API shows them; a receipt's records share its receiptKey.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mock_toss.card_charges import integer, invalid, object_body, require, text
from mock_toss.checkout import is_valid_order_id, is_valid_order_name
from mock_toss.errors import Language, TossError
from mock_toss.payments import KST, Method, Payment, toss_time

if TYPE_CHECKING:
    from mock_toss.service import MockToss

RECEIPT_TYPES = ("소득공제", "지출증빙")
NOT_ISSUED = "미발행"  # a payment's cashReceipt.type that asks for no receipt
RECEIPT_METHODS = (Method.TRANSFER, Method.VIRTUAL_ACCOUNT)
# The merchant's business number on every receipt (the mock's merchant is not a real business).
BUSINESS_NUMBER = "1234567890"
RECEIPT_URL = "https://dashboard-sandbox.tosspayments.com/receipt/redirection?transactionId={key}&ref=CR"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
_IDENTITY = re.compile(r"\d{10,30}")
_REQUEST_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ids = random.Random()
_ALPHANUMERIC = string.ascii_letters + string.digits


def new_receipt_key() -> str:
    return "".join(_ids.choices(_ALPHANUMERIC, k=28))


def new_issue_number() -> str:
    return f"{_ids.randrange(10**9):09d}"


def masked_identity(number: str) -> str:
    """`01012345678` → `010****5678`: the first three and the last four digits stay."""
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


@dataclass(frozen=True, slots=True)
class CashRecord:
    """One issue or cancel of a cash receipt, as Toss's CashReceipt object shows it."""

    receipt_key: str
    issue_number: str
    order_id: str
    order_name: str
    type: str
    transaction_type: str  # CONFIRM or CANCEL
    amount: int
    tax_free_amount: int
    customer_identity_number: str
    requested_at: datetime

    def to_toss(self, language: Language, now: datetime) -> dict[str, Any]:
        return {
            "receiptKey": self.receipt_key,
            "issueNumber": self.issue_number,
            "issueStatus": "COMPLETED",
            "amount": self.amount,
            "taxFreeAmount": self.tax_free_amount,
            "orderId": self.order_id,
            "orderName": self.order_name,
            "type": self.type,
            "transactionType": self.transaction_type,
            "businessNumber": BUSINESS_NUMBER,
            "customerIdentityNumber": masked_identity(self.customer_identity_number),
            "failure": None,
            "requestedAt": toss_time(self.requested_at),
            "receiptUrl": RECEIPT_URL.format(key=self.receipt_key),
        }


@dataclass(slots=True, eq=False)
class CashReceipt:
    """A receipt issued through the API: its records and what is left to cancel."""

    records: list[CashRecord]
    remaining: int
    remaining_tax_free: int

    @property
    def issued(self) -> CashRecord:
        return self.records[0]


@dataclass(slots=True)
class CashReceiptBook:
    """Receipts issued through the API (by receiptKey and orderId), their records in order, and the
    payments that asked for a receipt."""

    receipts: dict[str, CashReceipt] = field(default_factory=dict)
    by_order: dict[str, CashReceipt] = field(default_factory=dict)
    records: list[CashRecord] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)

    def clear(self) -> None:
        self.receipts.clear()
        self.by_order.clear()
        self.records.clear()
        self.payments.clear()


def receipt_book(mock: MockToss) -> CashReceiptBook:
    """The mock's cash receipts (created on first use, cleared by `/_mock/reset`)."""
    book = mock.features.get("cash-receipts")
    if not isinstance(book, CashReceiptBook):
        book = mock.features["cash-receipts"] = CashReceiptBook()
    return book


def _check_identity(value: Any) -> str:
    if not isinstance(value, str) or not _IDENTITY.fullmatch(value):
        raise TossError("INVALID_CASH_RECEIPT_INFO")
    return value


# ------------------------------------------------------------------ receipts issued through the API


def issue_receipt(mock: MockToss, body: Any) -> CashRecord:
    """`POST /v1/cash-receipts {amount, orderId, orderName, customerIdentityNumber, type,
    taxFreeAmount?}` → CashReceipt (CONFIRM, COMPLETED).

    Missing fields → INVALID_REQUEST; amount ≤ 0 → BELOW_ZERO_AMOUNT; INVALID_ORDER_ID,
    INVALID_ORDER_NAME; type other than 소득공제/지출증빙 or customerIdentityNumber not 10–30 digits →
    INVALID_CASH_RECEIPT_INFO; an orderId that already has a receipt → DUPLICATED_CASH_RECEIPT.
    """
    request = object_body(body)
    require(request, "amount", "orderId", "orderName", "customerIdentityNumber", "type")
    amount = integer(request, "amount") or 0
    if amount <= 0:
        raise TossError("BELOW_ZERO_AMOUNT")
    order_id = request.get("orderId")
    if not is_valid_order_id(order_id):
        raise TossError("INVALID_ORDER_ID")
    order_name = request.get("orderName")
    if not is_valid_order_name(order_name):
        raise TossError("INVALID_ORDER_NAME")
    receipt_type = text(request, "type")
    if receipt_type not in RECEIPT_TYPES:
        raise TossError("INVALID_CASH_RECEIPT_INFO")
    identity = _check_identity(request.get("customerIdentityNumber"))
    tax_free = integer(request, "taxFreeAmount") or 0
    if not 0 <= tax_free <= amount:
        raise invalid("taxFreeAmount가 올바르지 않습니다.", "taxFreeAmount must be between 0 and amount.")
    book = receipt_book(mock)
    payment = mock.store.get_by_order(str(order_id))
    if str(order_id) in book.by_order or (payment is not None and payment.cash_receipt_type is not None):
        raise TossError("DUPLICATED_CASH_RECEIPT")
    record = CashRecord(
        receipt_key=new_receipt_key(),
        issue_number=new_issue_number(),
        order_id=str(order_id),
        order_name=str(order_name),
        type=receipt_type,
        transaction_type="CONFIRM",
        amount=amount,
        tax_free_amount=tax_free,
        customer_identity_number=identity,
        requested_at=mock.clock.now(),
    )
    receipt = CashReceipt(records=[record], remaining=amount, remaining_tax_free=tax_free)
    book.receipts[record.receipt_key] = receipt
    book.by_order[record.order_id] = receipt
    book.records.append(record)
    return record


def cancel_receipt(mock: MockToss, receipt_key: str, body: Any) -> CashRecord:
    """`POST /v1/cash-receipts/{receiptKey}/cancel {amount?}` → the CANCEL record (the whole rest
    when amount is absent). Unknown receiptKey → 404 NOT_FOUND; nothing left → 400 INVALID_REQUEST;
    more than what is left → 403 NOT_CANCELABLE_AMOUNT."""
    request = object_body(body) if body is not None else {}
    amount = integer(request, "amount")
    receipt = receipt_book(mock).receipts.get(receipt_key)
    if receipt is None:
        raise TossError("NOT_FOUND")
    if receipt.remaining == 0:
        raise invalid("이미 전액 취소된 현금영수증입니다.", "The cash receipt is already fully canceled.")
    if amount is None:
        amount = receipt.remaining
    if amount <= 0:
        raise invalid("amount는 0보다 커야 합니다.", "amount must be greater than 0.")
    if amount > receipt.remaining:
        raise TossError("NOT_CANCELABLE_AMOUNT")
    # The tax-free part is cancelled last: only what exceeds the taxable rest.
    tax_free = max(0, amount - (receipt.remaining - receipt.remaining_tax_free))
    issued = receipt.issued
    record = CashRecord(
        receipt_key=issued.receipt_key,
        issue_number=new_issue_number(),
        order_id=issued.order_id,
        order_name=issued.order_name,
        type=issued.type,
        transaction_type="CANCEL",
        amount=amount,
        tax_free_amount=tax_free,
        customer_identity_number=issued.customer_identity_number,
        requested_at=mock.clock.now(),
    )
    receipt.remaining -= amount
    receipt.remaining_tax_free -= tax_free
    receipt.records.append(record)
    receipt_book(mock).records.append(record)
    return record


@dataclass(frozen=True, slots=True)
class ReceiptPage:
    """`GET /v1/cash-receipts`'s answer."""

    records: list[CashRecord]
    has_next: bool
    last_cursor: int | None

    def to_toss(self, language: Language, now: datetime) -> dict[str, Any]:
        return {
            "hasNext": self.has_next,
            "lastCursor": self.last_cursor,
            "data": [record.to_toss(language, now) for record in self.records],
        }


def _query_integer(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(r"\d{1,9}", value):
        if name == "cursor":
            raise TossError("INVALID_PAGING_KEY")
        raise invalid(f"{name}는 정수여야 합니다.", f"{name} must be an integer.")
    return int(value)


def list_receipts(mock: MockToss, query: dict[str, str]) -> ReceiptPage:
    """`GET /v1/cash-receipts?requestDate=YYYY-MM-DD&cursor&limit`: the records requested that day
    (KST), oldest first, `limit` (default 100, max 10,000) after `cursor` (a previous `lastCursor`).

    No requestDate → INVALID_REQUEST; not a date → INVALID_DATE; limit over 10,000 →
    EXCEED_MAX_QUERY_LIMIT; a cursor that is not a number → INVALID_PAGING_KEY.
    """
    raw_date = query.get("requestDate")
    if not raw_date:
        raise invalid("requestDate는 필수입니다.", "requestDate is required.")
    if not _REQUEST_DATE.fullmatch(raw_date):
        raise TossError("INVALID_DATE")
    try:
        day = date.fromisoformat(raw_date)
    except ValueError:
        raise TossError("INVALID_DATE") from None
    cursor = _query_integer(query.get("cursor"), "cursor") or 0
    limit = _query_integer(query.get("limit"), "limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise TossError("EXCEED_MAX_QUERY_LIMIT")
    if limit <= 0:
        raise invalid("limit는 1 이상이어야 합니다.", "limit must be at least 1.")
    records = _records_of_day(mock, day)
    page = records[cursor : cursor + limit]
    return ReceiptPage(
        records=page,
        has_next=cursor + limit < len(records),
        last_cursor=cursor + len(page) if page else None,
    )


def _records_of_day(mock: MockToss, day: date) -> list[CashRecord]:
    """Every record requested on `day` (KST), in request order; a record's position (1-based) is
    its cursor, stable because records arrive at the end (but for records of the same second)."""
    book = receipt_book(mock)
    records = [record for record in book.records if record.requested_at.astimezone(KST).date() == day]
    for payment in book.payments:
        if payment.cash_receipt_type is not None and payment.approved_at is not None:
            records.extend(
                record
                for record in _payment_records(payment)
                if record.requested_at.astimezone(KST).date() == day
            )
    # Toss's times have whole seconds (a cancel's canceledAt too): order by them; the sort is stable,
    # so within a second the API's receipts come first, then each payment's in its own order.
    records.sort(key=lambda record: record.requested_at.replace(microsecond=0))
    return records


# ------------------------------------------------------------------ receipts of payments


@dataclass(frozen=True, slots=True)
class ReceiptRequest:
    """A payment's cash receipt request: `cashReceipt: {type, registrationNumber}`."""

    type: str
    registration_number: str


def parse_receipt_request(value: Any, method: Method | None = None) -> ReceiptRequest | None:
    """`cashReceipt {type: 소득공제|지출증빙|미발행, registrationNumber}` (None, or 미발행: no receipt).

    Not an object or another type → INVALID_REQUEST; a registrationNumber not 10–30 digits →
    INVALID_CASH_RECEIPT_INFO; a method other than transfer or virtual account → INVALID_REQUEST.
    """
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in (*RECEIPT_TYPES, NOT_ISSUED):
        raise invalid(
            "cashReceipt.type은 소득공제, 지출증빙, 미발행 중 하나여야 합니다.",
            "cashReceipt.type must be 소득공제, 지출증빙 or 미발행.",
        )
    if value["type"] == NOT_ISSUED:
        return None
    if method is not None and method not in RECEIPT_METHODS:
        raise invalid(
            "현금영수증은 계좌이체와 가상계좌 결제에만 발급됩니다.",
            "Cash receipts are issued for transfers and virtual accounts only.",
        )
    number = _check_identity(value.get("registrationNumber"))
    return ReceiptRequest(type=value["type"], registration_number=number)


def attach_receipt_request(mock: MockToss, payment: Payment, request: ReceiptRequest | None) -> None:
    """Remember that the buyer asked for a receipt; it is issued when the payment is paid."""
    if request is None or payment.cash_receipt_type is not None:
        return
    payment.cash_receipt_type = request.type
    payment.cash_receipt_number = request.registration_number
    receipt_book(mock).payments.append(payment)


def _payment_receipt_key(payment: Payment) -> str:
    digest = hashlib.sha256(f"receipt:{payment.payment_key}".encode()).digest()
    return "".join(_ALPHANUMERIC[byte % len(_ALPHANUMERIC)] for byte in digest[:28])


def _payment_issue_number(payment: Payment, index: int) -> str:
    digest = hashlib.sha256(f"issue:{payment.payment_key}:{index}".encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**9:09d}"


def _payment_records(payment: Payment) -> list[CashRecord]:
    """The payment's receipt: CONFIRM when paid (approvedAt), one CANCEL per cancel."""
    if payment.approved_at is None or payment.cash_receipt_type is None:
        return []
    receipt_key = _payment_receipt_key(payment)
    canceled_tax_free = sum(int(cancel["taxFreeAmount"]) for cancel in payment.cancels)

    def record(index: int, kind: str, amount: int, tax_free: int, at: datetime) -> CashRecord:
        return CashRecord(
            receipt_key=receipt_key,
            issue_number=_payment_issue_number(payment, index),
            order_id=payment.order_id,
            order_name=payment.order_name,
            type=payment.cash_receipt_type or "",
            transaction_type=kind,
            amount=amount,
            tax_free_amount=tax_free,
            customer_identity_number=payment.cash_receipt_number or "",
            requested_at=at,
        )

    records = [
        record(
            0,
            "CONFIRM",
            payment.total_amount,
            payment.tax_free_amount + canceled_tax_free,
            payment.approved_at,
        )
    ]
    for index, cancel in enumerate(payment.cancels, start=1):
        canceled_at = datetime.fromisoformat(cancel["canceledAt"])
        records.append(
            record(index, "CANCEL", int(cancel["cancelAmount"]), int(cancel["taxFreeAmount"]), canceled_at)
        )
    return records


def payment_receipts(payment: Payment) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The Payment object's `cashReceipt` (what the receipt covers now) and `cashReceipts` (every
    issue and cancel); (None, None) until the payment is paid."""
    records = _payment_records(payment)
    if not records:
        return None, None
    issued = records[0]
    summary = {
        "type": issued.type,
        "receiptKey": issued.receipt_key,
        "issueNumber": issued.issue_number,
        "receiptUrl": RECEIPT_URL.format(key=issued.receipt_key),
        "amount": payment.balance_amount,
        "taxFreeAmount": payment.tax_free_amount,
    }
    now = payment.approved_at or issued.requested_at
    return summary, [record.to_toss("ko", now) for record in records]
