"""The Payment object as Toss shows it: state, identifiers, money rules and the wire shape."""

from __future__ import annotations

import enum
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from mock_toss import TOSS_API_VERSION
from mock_toss.errors import Language, error_message

KST = timezone(timedelta(hours=9), "KST")
MERCHANT_ID = "tosspayments"
RECEIPT_URL = "https://dashboard-sandbox.tosspayments.com/receipt/redirection?transactionId={key}&ref=PX"
CHECKOUT_URL = "https://api.tosspayments.com/v1/payments/{key}/checkout"

# Ids only need to look like Toss's and not collide; nothing depends on them being unguessable.
_ids = random.Random()
_ALPHANUMERIC = string.ascii_letters + string.digits


class PaymentStatus(enum.StrEnum):
    """Toss's payment statuses."""

    READY = "READY"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING_FOR_DEPOSIT = "WAITING_FOR_DEPOSIT"
    DONE = "DONE"
    CANCELED = "CANCELED"
    PARTIAL_CANCELED = "PARTIAL_CANCELED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"


class Method(enum.Enum):
    """Payment methods: our English names, valued by the Korean name Toss answers with."""

    CARD = "카드"
    VIRTUAL_ACCOUNT = "가상계좌"
    EASY_PAY = "간편결제"
    TRANSFER = "계좌이체"
    MOBILE_PHONE = "휴대폰"


def parse_method(value: str) -> Method | None:
    """`CARD` or `카드` → Method.CARD; None when unknown."""
    cleaned = value.strip()
    for method in Method:
        if cleaned.upper() == method.name or cleaned == method.value:
            return method
    return None


# Bank codes from Toss's code table (2022-11-16 answers use the numeric code).
BANKS: dict[str, str] = {
    "02": "산업",
    "03": "기업",
    "06": "국민",
    "07": "수협",
    "11": "농협",
    "12": "단위농협",
    "20": "우리",
    "23": "SC제일",
    "27": "씨티",
    "31": "대구",
    "32": "부산",
    "34": "광주",
    "35": "제주",
    "37": "전북",
    "39": "경남",
    "45": "새마을",
    "48": "신협",
    "50": "저축",
    "54": "홍콩상하이",
    "64": "산림",
    "71": "우체국",
    "81": "하나",
    "88": "신한",
    "89": "케이",
    "90": "카카오",
    "92": "토스",
}
_BANK_ALIASES: dict[str, str] = {
    "KB국민": "06",
    "IBK기업": "03",
    "NH농협": "11",
    "iM뱅크": "31",
    "새마을금고": "45",
    "Sh수협": "07",
    "카카오뱅크": "90",
    "케이뱅크": "89",
    "토스뱅크": "92",
    "KDB산업": "02",
}
# Banks that can issue virtual accounts (Toss's virtual-account guide).
VIRTUAL_ACCOUNT_BANKS = frozenset(
    {"39", "34", "06", "03", "11", "31", "32", "45", "07", "88", "20", "71", "81"}
)


def bank_code_of(value: str) -> str | None:
    """A bank given as code (`"88"`) or Korean name (`"신한"`) → its code; None when unknown."""
    cleaned = value.strip()
    if cleaned in BANKS:
        return cleaned
    for code, name in BANKS.items():
        if cleaned == name:
            return code
    return _BANK_ALIASES.get(cleaned)


def vat_of(amount: int, tax_free_amount: int = 0) -> int:
    """Toss's VAT: round((amount − taxFree) / 11), in integer arithmetic (an eleventh is never a half)."""
    taxable = amount - tax_free_amount
    return (taxable * 2 + 11) // 22


def toss_time(moment: datetime) -> str:
    """API time format: `2024-02-13T12:17:57+09:00` (KST, no fractional seconds)."""
    return moment.astimezone(KST).strftime("%Y-%m-%dT%H:%M:%S+09:00")


def webhook_time(moment: datetime) -> str:
    """Webhook `createdAt` format: `2023-07-20T16:35:47.729718` (KST, microseconds, no offset)."""
    return moment.astimezone(KST).strftime("%Y-%m-%dT%H:%M:%S.%f")


def new_payment_key(moment: datetime) -> str:
    """`tviva` + yyyyMMddHHmmss + 5 random characters, like Toss's test paymentKeys."""
    stamp = moment.astimezone(KST).strftime("%Y%m%d%H%M%S")
    return "tviva" + stamp + "".join(_ids.choices(_ALPHANUMERIC, k=5))


def new_transaction_key() -> str:
    """32 uppercase hex characters."""
    return f"{_ids.getrandbits(128):032X}"


def new_secret() -> str:
    """A virtual account's webhook secret: `ps_` + 28 characters (31 in all, as observed)."""
    return "ps_" + "".join(_ids.choices(_ALPHANUMERIC, k=28))


def new_account_number() -> str:
    """Toss's test virtual accounts start with X (they cannot receive real money)."""
    return "X" + "".join(_ids.choices(string.digits, k=13))


def masked_card_number(card_number: str) -> str:
    """`4330000000000005` → `43300000****000*`, Toss's masking."""
    return card_number[:8] + "****" + card_number[12:15] + "*" * max(len(card_number) - 15, 0)


@dataclass(slots=True, eq=False)
class Payment:
    """One payment in the mock, from the payment window to its last cancel."""

    payment_key: str
    order_id: str
    order_name: str
    method: Method
    total_amount: int
    requested_at: datetime
    status: PaymentStatus = PaymentStatus.READY
    balance_amount: int = 0
    tax_free_amount: int = 0
    approved_at: datetime | None = None
    last_transaction_key: str | None = None
    success_url: str = ""
    fail_url: str = ""
    customer_name: str | None = None
    client_key: str | None = None  # the key pair whose window opened it (None: issued server-side)
    card_number: str | None = None
    card: dict[str, Any] | None = None
    easy_pay: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    mobile_phone: dict[str, Any] | None = None
    virtual_account: dict[str, Any] | None = None
    secret: str | None = None
    receipt_url: str | None = None
    failure_code: str | None = None
    cancels: list[dict[str, Any]] = field(default_factory=list)
    # The mock clock's time at which this payment changes on its own (session expiry, due date).
    deadline: datetime | None = None
    # A confirm is being processed right now (the slow test card).
    confirming: bool = False
    # Confirms that failed on purpose so far (the fail-once test card).
    confirm_failures: int = 0
    refund_completes_at: datetime | None = None
    # NORMAL (payment window, key-in) or BILLING (a billing key's charge, with its customerKey).
    payment_type: str = "NORMAL"
    customer_key: str | None = None
    # The buyer asked for a cash receipt (transfers, virtual accounts): 소득공제 or 지출증빙, and the
    # number it is issued to; cash_receipts.py derives the receipts from the payment's history.
    cash_receipt_type: str | None = None
    cash_receipt_number: str | None = None

    def __post_init__(self) -> None:
        if self.balance_amount == 0:
            self.balance_amount = self.total_amount

    @property
    def vat(self) -> int:
        """VAT of what is left (balance minus its tax-free part)."""
        return vat_of(self.balance_amount, self.tax_free_amount)

    @property
    def supplied_amount(self) -> int:
        """Supply value of what is left: taxable balance minus VAT."""
        return self.balance_amount - self.tax_free_amount - self.vat

    def to_toss(self, language: Language, now: datetime) -> dict[str, Any]:
        """The Payment object exactly as Toss serializes it: every key present, nulls included."""
        failure = None
        if self.failure_code is not None:
            failure = {"code": self.failure_code, "message": error_message(self.failure_code, language)}
        virtual_account = None
        if self.virtual_account is not None:
            virtual_account = dict(self.virtual_account)
            if self.refund_completes_at is not None:
                virtual_account["refundStatus"] = (
                    "COMPLETED" if now >= self.refund_completes_at else "PENDING"
                )
        cash_receipt: dict[str, Any] | None = None
        cash_receipts: list[dict[str, Any]] | None = None
        if self.cash_receipt_type is not None and self.approved_at is not None:
            from mock_toss.cash_receipts import payment_receipts  # it builds on this module

            cash_receipt, cash_receipts = payment_receipts(self)
        return {
            "mId": MERCHANT_ID,
            "lastTransactionKey": self.last_transaction_key,
            "paymentKey": self.payment_key,
            "orderId": self.order_id,
            "orderName": self.order_name,
            "taxExemptionAmount": 0,
            "status": self.status.value,
            "requestedAt": toss_time(self.requested_at),
            "approvedAt": toss_time(self.approved_at) if self.approved_at else None,
            "useEscrow": False,
            "cultureExpense": False,
            "card": dict(self.card) if self.card is not None else None,
            "virtualAccount": virtual_account,
            "transfer": self.transfer,
            "mobilePhone": self.mobile_phone,
            "giftCertificate": None,
            "cashReceipt": cash_receipt,
            "cashReceipts": cash_receipts,
            "discount": None,
            "cancels": [dict(cancel) for cancel in self.cancels] if self.cancels else None,
            "secret": self.secret,
            "type": self.payment_type,
            "easyPay": self.easy_pay,
            "easyPayAmount": None,
            "easyPayDiscountAmount": None,
            "country": "KR",
            "failure": failure,
            "isPartialCancelable": True,
            "receipt": {"url": self.receipt_url} if self.receipt_url else None,
            "checkout": {"url": CHECKOUT_URL.format(key=self.payment_key)},
            "currency": "KRW",
            "totalAmount": self.total_amount,
            "balanceAmount": self.balance_amount,
            "suppliedAmount": self.supplied_amount,
            "vat": self.vat,
            "taxFreeAmount": self.tax_free_amount,
            "metadata": None,
            "method": self.method.value,
            "version": TOSS_API_VERSION,
            "transactionKey": self.last_transaction_key,
        }


# Every key of the Payment object, in the order the mock writes them (tests check completeness).
PAYMENT_KEYS = (
    "mId",
    "lastTransactionKey",
    "paymentKey",
    "orderId",
    "orderName",
    "taxExemptionAmount",
    "status",
    "requestedAt",
    "approvedAt",
    "useEscrow",
    "cultureExpense",
    "card",
    "virtualAccount",
    "transfer",
    "mobilePhone",
    "giftCertificate",
    "cashReceipt",
    "cashReceipts",
    "discount",
    "cancels",
    "secret",
    "type",
    "easyPay",
    "easyPayAmount",
    "easyPayDiscountAmount",
    "country",
    "failure",
    "isPartialCancelable",
    "receipt",
    "checkout",
    "currency",
    "totalAmount",
    "balanceAmount",
    "suppliedAmount",
    "vat",
    "taxFreeAmount",
    "metadata",
    "method",
    "version",
    "transactionKey",
)
