"""Transactions and settlements: what Toss's reconciliation APIs report about the mock's payments.

Every approval and every cancel of a payment is a *transaction* (Toss's Transaction object, `GET
/v1/transactions`); the ones that move money also make a *settlement* row (Toss's Settlement
object, `GET /v1/settlements`): the amount, Toss's fee with its VAT, and what is paid out when.

The service records a transaction with `Reports.record_transaction(payment, at, cancel=None)`
right after a payment changed: approved (DONE), issued a virtual account (WAITING_FOR_DEPOSIT),
deposited (DONE) or cancelled (the Cancel object it appended). Everything else is derived here.

Times are the mock clock's, so a test moves the clock (`POST /_mock/clock`) to let a settlement
appear: a row is shown only once its soldDate has passed on the mock clock.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import msgspec

from mock_toss.errors import TossError
from mock_toss.payments import KST, MERCHANT_ID, Method, Payment, PaymentStatus, parse_method, toss_time

MAX_TRANSACTIONS = 400_000  # oldest forgotten beyond this, like the journal (a load test stays bounded)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_SIZE = 100
MAX_SIZE = 10_000
MAX_PAYOUT_DAYS = 365
MAX_FIXED_FEE = 1_000_000

# The mock's default fees, VAT included (fee = supplyAmount + vat), per transaction: near Toss's
# published standard rates, but nobody's contract. A QA suite sets its own with PUT.
DEFAULT_FEES: dict[str, tuple[str, int]] = {
    Method.CARD.name: ("3.4", 0),
    Method.EASY_PAY.name: ("3.4", 0),
    Method.TRANSFER.name: ("2.0", 0),
    Method.MOBILE_PHONE.name: ("3.4", 0),
    Method.VIRTUAL_ACCOUNT.name: ("0", 400),
}
DEFAULT_PAYOUT_DAYS = 2  # Toss's own example: soldDate + 2 days (sold 2022-01-01, paid out 2022-01-03)

_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?")


def _invalid(message_ko: str, message_en: str) -> TossError:
    return TossError("INVALID_REQUEST", message_ko, message_en)


def _half_up(value: Decimal) -> int:
    """Round half away from zero (Toss's VAT of a refunded fee −2250 is −205, of 1492 it is 136)."""
    rounded = abs(value).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(rounded) if value >= 0 else -int(rounded)


def vat_of_fee(fee: int) -> int:
    """The VAT inside a VAT-inclusive fee: round(fee / 11) — Toss's 860 → 78 (supplyAmount 782)."""
    return _half_up(Decimal(fee) / 11)


# ---------------------------------------------------------------------------------------------
# Settlement configuration (GET/PUT/DELETE /_mock/settlement-config)


@dataclass(frozen=True, slots=True)
class FeeRule:
    """A method's fee: `percent` of the amount plus `fixed` KRW, VAT included, at most the amount."""

    percent: Decimal
    fixed: int

    def fee(self, amount: int) -> int:
        """The fee of a transaction of `amount` (0 for nothing left)."""
        if amount <= 0:
            return 0
        return min(amount, _half_up(Decimal(amount) * self.percent / 100) + self.fixed)

    def to_json(self) -> dict[str, Any]:
        return {"percent": float(self.percent), "fixed": self.fixed}


class _FeeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    percent: float | int = 0
    fixed: int = 0


class _ConfigBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    fees: dict[str, _FeeBody] | None = None
    payout_days: int | None = None
    business_days_only: bool | None = None


def _default_rules() -> dict[str, FeeRule]:
    return {name: FeeRule(Decimal(percent), fixed) for name, (percent, fixed) in DEFAULT_FEES.items()}


@dataclass(slots=True)
class SettlementConfig:
    """Fee rules per method (Method names: CARD, EASY_PAY, …) and the payout cycle.

    paidOutDate = soldDate + `payout_days` calendar days, or business days (Saturdays and Sundays
    skipped; public holidays are not known to the mock) with `business_days_only`.
    """

    rules: dict[str, FeeRule] = field(default_factory=_default_rules)
    payout_days: int = DEFAULT_PAYOUT_DAYS
    business_days_only: bool = False

    def rule_for(self, method: Method) -> FeeRule:
        """The method's rule; no fee for a method without one."""
        return self.rules.get(method.name, FeeRule(Decimal(0), 0))

    def paid_out_date(self, sold: date) -> date:
        if not self.business_days_only:
            return sold + timedelta(days=self.payout_days)
        day, left = sold, self.payout_days
        while left > 0:
            day += timedelta(days=1)
            if day.weekday() < 5:
                left -= 1
        return day

    def update(self, raw: Any) -> None:
        """Apply a `PUT /_mock/settlement-config` body (only the fields given; fees per method);
        ValueError when it is invalid, and then nothing changes."""
        try:
            body = msgspec.convert(raw, _ConfigBody)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from exc
        rules = dict(self.rules)
        for name, setting in (body.fees or {}).items():
            method = parse_method(name)
            if method is None:
                raise ValueError(f"fees: unknown method {name!r}; use {', '.join(m.name for m in Method)}")
            percent = Decimal(str(setting.percent))
            if not 0 <= percent <= 100 or not 0 <= setting.fixed <= MAX_FIXED_FEE:
                raise ValueError(f"fees.{name}: percent must be 0–100 and fixed 0–{MAX_FIXED_FEE}")
            rules[method.name] = FeeRule(percent, setting.fixed)
        if body.payout_days is not None and not 0 <= body.payout_days <= MAX_PAYOUT_DAYS:
            raise ValueError(f"payoutDays must be 0–{MAX_PAYOUT_DAYS}")
        self.rules = rules
        if body.payout_days is not None:
            self.payout_days = body.payout_days
        if body.business_days_only is not None:
            self.business_days_only = body.business_days_only

    def to_json(self) -> dict[str, Any]:
        """The configuration as the test control shows it."""
        return {
            "fees": {name: rule.to_json() for name, rule in sorted(self.rules.items())},
            "payoutDays": self.payout_days,
            "businessDaysOnly": self.business_days_only,
        }


# ---------------------------------------------------------------------------------------------
# Transactions and settlement rows


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """The money side of a transaction: signed (a cancel is negative), fee VAT included."""

    amount: int
    fee: int
    approved_at: datetime
    sold_date: date
    paid_out_date: date


@dataclass(slots=True)
class TransactionRecord:
    """One approval or cancel, as it was when it happened."""

    sequence: int
    transaction_key: str
    payment: Payment
    status: str
    at: datetime
    amount: int
    cancel: dict[str, Any] | None
    settlement: SettlementLine | None

    def to_transaction(self) -> dict[str, Any]:
        """Toss's Transaction object."""
        payment = self.payment
        return {
            "mId": MERCHANT_ID,
            "transactionKey": self.transaction_key,
            "paymentKey": payment.payment_key,
            "orderId": payment.order_id,
            "method": payment.method.value,
            "customerKey": getattr(payment, "customer_key", None),
            "useEscrow": False,
            "receiptUrl": payment.receipt_url,
            "status": self.status,
            "transactionAt": toss_time(self.at),
            "currency": "KRW",
            "amount": self.amount,
        }

    def to_settlement(self) -> dict[str, Any]:
        """Toss's Settlement object (only for records with a settlement line)."""
        line = self.settlement
        assert line is not None
        payment = self.payment
        vat = vat_of_fee(line.fee)
        return {
            "mId": MERCHANT_ID,
            "paymentKey": payment.payment_key,
            "transactionKey": self.transaction_key,
            "orderId": payment.order_id,
            "currency": "KRW",
            "method": payment.method.value,
            "amount": line.amount,
            "interestFee": 0,
            "fees": [{"type": "BASE", "fee": line.fee}],
            "fee": line.fee,
            "supplyAmount": line.fee - vat,
            "vat": vat,
            "payOutAmount": line.amount - line.fee,
            "approvedAt": toss_time(line.approved_at),
            "soldDate": line.sold_date.isoformat(),
            "paidOutDate": line.paid_out_date.isoformat(),
            "card": dict(payment.card) if payment.card is not None else None,
            "easyPay": payment.easy_pay,
            "giftCertificate": None,
            "mobilePhone": payment.mobile_phone,
            "transfer": payment.transfer,
            "virtualAccount": dict(payment.virtual_account) if payment.virtual_account else None,
            "cancel": dict(self.cancel) if self.cancel is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Moment:
    """A query's date-time: the instant, and the precision it was given in (the end is inclusive
    of its whole last second, or millisecond: Toss's `endDate=…T23:59:59` covers the whole day)."""

    at: datetime
    precision: timedelta


def parse_moment(raw: str | None, name: str) -> Moment:
    """`2022-01-01`, `2022-01-01T00:00:00`, `…T00:00:00.000`, with or without an offset (KST when
    none); TossError INVALID_REQUEST when missing, INVALID_DATE when malformed."""
    if raw is None or not raw.strip():
        raise _invalid(f"{name}는 필수입니다.", f"{name} is required.")
    # An unencoded `+09:00` in a query string arrives as ` 09:00`.
    value = raw.strip().replace(" ", "+")
    if not _MOMENT.fullmatch(value):
        raise TossError("INVALID_DATE")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TossError("INVALID_DATE") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=KST)
    precision = timedelta(milliseconds=1) if "." in value else timedelta(seconds=1)
    return Moment(moment, precision)


def _whole_number(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise _invalid(
            f"{name}는 {low} 이상 {high} 이하의 정수여야 합니다.", f"{name} must be an integer {low}–{high}."
        )
    return int(raw)


DateType = Literal["soldDate", "paidOutDate"]


class Reports:
    """The mock's transactions, their settlement lines and the settlement configuration."""

    def __init__(self, max_records: int = MAX_TRANSACTIONS) -> None:
        self.config = SettlementConfig()
        self._max_records = max_records
        self._records: list[TransactionRecord] = []  # ordered by (at, sequence)
        self._by_key: dict[str, TransactionRecord] = {}
        # The fee rule in force when a payment was approved; its cancels refund with the same rule.
        self._rules: dict[str, FeeRule] = {}
        self._sequence = itertools.count()
        self.manual_settlements: list[str] = []  # paymentKeys of POST /v1/settlements

    # ------------------------------------------------------------------ recording

    def record_transaction(
        self, payment: Payment, at: datetime, cancel: dict[str, Any] | None = None
    ) -> None:
        """Record the transaction `payment` just went through, at mock time `at`.

        Call it right after the change: an approval (status DONE: payment window, key-in, billing,
        a deposit into a virtual account), a virtual account's issue (WAITING_FOR_DEPOSIT), or a
        cancel (pass the Cancel object just appended to `payment.cancels`). The transactionKey is
        `payment.last_transaction_key` (approvals) or `cancel["transactionKey"]`; approvals settle
        `payment.total_amount` approved at `payment.approved_at`, cancels refund their amount.
        """
        line: SettlementLine | None = None
        sold = at.astimezone(KST).date()
        if cancel is None:
            transaction_key = payment.last_transaction_key or ""
            amount = payment.total_amount
            if payment.status is PaymentStatus.DONE and payment.approved_at is not None:
                rule = self.config.rule_for(payment.method)
                self._rules[payment.payment_key] = rule
                line = SettlementLine(
                    amount, rule.fee(amount), payment.approved_at, sold, self.config.paid_out_date(sold)
                )
        else:
            transaction_key = str(cancel["transactionKey"])
            amount = int(cancel["cancelAmount"])
            rule_at_approval = self._rules.get(payment.payment_key)
            if rule_at_approval is not None and payment.approved_at is not None:
                # Refund the fee of what was cancelled, so a payment's fees add up to the fee of
                # what is left: fee(balance before) − fee(balance after).
                after = payment.balance_amount
                refunded = rule_at_approval.fee(after + amount) - rule_at_approval.fee(after)
                line = SettlementLine(
                    -amount, -refunded, payment.approved_at, sold, self.config.paid_out_date(sold)
                )
        record = TransactionRecord(
            sequence=next(self._sequence),
            transaction_key=transaction_key,
            payment=payment,
            status=payment.status.value,
            at=at,
            amount=amount,
            cancel=dict(cancel) if cancel is not None else None,
            settlement=line,
        )
        bisect.insort(self._records, record, key=lambda r: (r.at, r.sequence))
        self._by_key[transaction_key] = record
        if len(self._records) > self._max_records:
            self._forget_oldest(max(1, self._max_records // 10))

    def _forget_oldest(self, count: int) -> None:
        for record in self._records[:count]:
            if self._by_key.get(record.transaction_key) is record:
                del self._by_key[record.transaction_key]
        del self._records[:count]

    def clear(self) -> None:
        """Forget every transaction and restore the default configuration."""
        self.config = SettlementConfig()
        self._records.clear()
        self._by_key.clear()
        self._rules.clear()
        self.manual_settlements.clear()

    def __len__(self) -> int:
        return len(self._records)

    # ------------------------------------------------------------------ GET /v1/transactions

    def transactions(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """`startDate`, `endDate` (both required, inclusive), `startingAfter` (a transactionKey),
        `limit` (default 100, at most 10,000): Transaction objects, oldest first."""
        start = parse_moment(query.get("startDate"), "startDate")
        end = parse_moment(query.get("endDate"), "endDate")
        if end.at < start.at:
            raise TossError("INVALID_DATE")
        limit = _whole_number(query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        first = bisect.bisect_left(self._records, start.at, key=lambda r: r.at)
        after = query.get("startingAfter")
        if after:
            cursor = self._by_key.get(after)
            if cursor is None:
                raise TossError("INVALID_TRANSACTION_KEY")
            position = bisect.bisect_left(self._records, (cursor.at, cursor.sequence), key=_order)
            first = max(first, position + 1)
        end_before = end.at + end.precision
        found: list[dict[str, Any]] = []
        for record in itertools.islice(self._records, first, None):
            if record.at >= end_before or len(found) >= limit:
                break
            found.append(record.to_transaction())
        return found

    # ------------------------------------------------------------------ GET /v1/settlements

    def settlements(self, query: dict[str, str], now: datetime) -> list[dict[str, Any]]:
        """`startDate`, `endDate` (dates, inclusive), `dateType` (`soldDate`, the default, or
        `paidOutDate`), `page` (from 1), `size` (default 100, at most 10,000): Settlement objects of
        the rows whose soldDate has passed on the mock clock, ordered by that date, then time."""
        start = parse_moment(query.get("startDate"), "startDate").at.astimezone(KST).date()
        end = parse_moment(query.get("endDate"), "endDate").at.astimezone(KST).date()
        if end < start:
            raise TossError("INVALID_DATE")
        date_type = query.get("dateType") or "soldDate"
        if date_type not in ("soldDate", "paidOutDate"):
            raise _invalid(
                "dateType은 soldDate 또는 paidOutDate입니다.", "dateType must be soldDate or paidOutDate."
            )
        page = _whole_number(query.get("page"), "page", 1, 1, 10**9)
        size = _whole_number(query.get("size"), "size", DEFAULT_SIZE, 1, MAX_SIZE)
        today = now.astimezone(KST).date()
        rows: list[tuple[date, TransactionRecord]] = []
        for record in self._records:
            line = record.settlement
            if line is None or line.sold_date >= today:
                continue
            day = line.sold_date if date_type == "soldDate" else line.paid_out_date
            if start <= day <= end:
                rows.append((day, record))
        rows.sort(key=lambda row: (row[0], row[1].at, row[1].sequence))
        chosen = rows[(page - 1) * size : page * size]
        return [record.to_settlement() for _, record in chosen]

    # ------------------------------------------------------------------ POST /v1/settlements

    def request_manual_settlement(self, payment: Payment | None) -> None:
        """`POST /v1/settlements {paymentKey}`: ask the card company to acquire one card payment now
        (a contract option at Toss). The card's acquireStatus becomes REQUESTED."""
        if payment is None:
            raise TossError("NOT_FOUND_PAYMENT")
        if payment.card is None or payment.status not in (PaymentStatus.DONE, PaymentStatus.PARTIAL_CANCELED):
            raise _invalid(
                "승인된 카드 결제만 수동 정산을 요청할 수 있습니다.",
                "Only an approved card payment can be settled manually.",
            )
        if payment.card.get("acquireStatus") == "READY":
            payment.card["acquireStatus"] = "REQUESTED"
        self.manual_settlements.append(payment.payment_key)


def _order(record: TransactionRecord) -> tuple[datetime, int]:
    return (record.at, record.sequence)
