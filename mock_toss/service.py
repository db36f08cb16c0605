"""What the mock Toss does: payment sessions, confirm, lookups, cancels, virtual accounts, expiry."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from mock_toss.checkout import (
    CheckoutOrder,
    check_amount,
    fail_redirect,
    is_valid_order_id,
    is_valid_order_name,
    success_redirect,
)
from mock_toss.config import MockConfig
from mock_toss.errors import Language, TossError
from mock_toss.idempotency import IdempotencyStore
from mock_toss.journal import RequestJournal
from mock_toss.payments import (
    KST,
    RECEIPT_URL,
    VIRTUAL_ACCOUNT_BANKS,
    Method,
    Payment,
    PaymentStatus,
    bank_code_of,
    masked_card_number,
    new_account_number,
    new_payment_key,
    new_secret,
    new_transaction_key,
    toss_time,
    webhook_time,
)
from mock_toss.reports import Reports
from mock_toss.scenarios import CardOutcome, Chaos, card_outcome, normalize_card_number
from mock_toss.store import MockClock, PaymentStore
from mock_toss.webhooks import WebhookDispatcher

READY_LIFETIME = timedelta(minutes=30)
CONFIRM_DEADLINE = timedelta(minutes=10)
DEFAULT_VALID_HOURS = 168
MAX_VALID_HOURS = 2160
MAX_DUE_DATE = timedelta(days=90)
REFUND_DELAY = timedelta(days=2)
MAX_CANCEL_REASON_LENGTH = 200
MAX_PAYMENT_KEY_LENGTH = 200
WINDOW_VIRTUAL_ACCOUNT_BANK = "20"
CANCELABLE = frozenset(
    {PaymentStatus.DONE, PaymentStatus.PARTIAL_CANCELED, PaymentStatus.WAITING_FOR_DEPOSIT}
)
_DUE_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2})?")


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Where the payment window sends the browser; paymentKey only when authentication succeeded."""

    payment_key: str | None
    redirect_url: str


def _invalid(message_ko: str, message_en: str) -> TossError:
    return TossError("INVALID_REQUEST", message_ko, message_en)


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid("요청 본문은 JSON 객체여야 합니다.", "The request body must be a JSON object.")
    return body


def _integer(body: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f"{name}는 필수입니다.", f"{name} is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name}는 정수여야 합니다.", f"{name} must be an integer.")
    return value


def _text(body: dict[str, Any], name: str, *, required: bool, max_length: int) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f"{name}는 필수입니다.", f"{name} is required.")
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_length:
        raise _invalid(
            f"{name}는 {max_length}자 이하의 문자열이어야 합니다.",
            f"{name} must be a string of at most {max_length} characters.",
        )
    return value


@dataclass(frozen=True, slots=True)
class RefundAccount:
    bank_code: str
    account_number: str
    holder_name: str


def parse_refund_account(value: Any) -> RefundAccount:
    """`refundReceiveAccount {bank, accountNumber (digits ≤ 20), holderName (≤ 60)}`."""
    if value is None:
        raise _invalid(
            "입금 완료된 가상계좌 결제를 취소하려면 refundReceiveAccount가 필요합니다.",
            "refundReceiveAccount is required to cancel a deposited virtual account payment.",
        )
    if not isinstance(value, dict) or not all(
        isinstance(value.get(name), str) for name in ("bank", "accountNumber", "holderName")
    ):
        raise _invalid(
            "refundReceiveAccount에는 bank, accountNumber, holderName이 필요합니다.",
            "refundReceiveAccount needs bank, accountNumber and holderName.",
        )
    bank_code = bank_code_of(value["bank"])
    account_number: str = value["accountNumber"]
    holder_name: str = value["holderName"]
    valid_number = account_number.isascii() and account_number.isdigit() and len(account_number) <= 20
    valid_holder = 0 < len(holder_name.strip()) <= 60
    if bank_code is None or not valid_number or not valid_holder:
        raise TossError("INVALID_REFUND_ACCOUNT_INFO")
    return RefundAccount(bank_code, account_number, holder_name)


def parse_due_date(value: str) -> datetime:
    """`yyyy-MM-dd'T'HH:mm:ss` (KST) or the same with an offset; TossError INVALID_DATE otherwise."""
    if not _DUE_DATE_PATTERN.fullmatch(value):
        raise TossError("INVALID_DATE")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TossError("INVALID_DATE") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=KST)


class MockToss:
    """The mock's state and behaviour; HTTP handlers in app.py are thin wrappers around it."""

    def __init__(
        self, config: MockConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.clock = MockClock()
        self.store = PaymentStore()
        self.idempotency = IdempotencyStore(self.clock)
        self.journal = RequestJournal()
        self.chaos = Chaos()
        # Transactions and settlements: record every approval and cancel with reports.record_transaction.
        self.reports = Reports()
        self.webhooks = WebhookDispatcher(
            config.webhook_urls,
            self.clock,
            time_scale=config.time_scale,
            secret=config.webhook_secret,
            transport=webhook_transport,
        )
        # Slow confirms run as tasks of their own so they finish even when the client hangs up.
        self._slow_confirms: set[asyncio.Task[None]] = set()
        # State of the features kept in modules of their own (billing keys, cash receipts, …), by
        # name; each has clear(), called by reset().
        self.features: dict[str, Any] = {}

    # ------------------------------------------------------------------ payment window

    def open_session(self, order: CheckoutOrder) -> Payment:
        """The READY payment behind a payment window; a READY one for the same orderId is reused.

        Raises TossError DUPLICATED_ORDER_ID when the orderId already went further than READY.
        """
        self.expire_due()
        now = self.clock.now()
        payment = self.store.get_by_order(order.order_id)
        if payment is not None:
            if payment.status is not PaymentStatus.READY:
                raise TossError("DUPLICATED_ORDER_ID")
            payment.order_name = order.order_name
            payment.method = order.method
            payment.total_amount = payment.balance_amount = order.amount
            payment.success_url = order.success_url
            payment.fail_url = order.fail_url
            payment.customer_name = order.customer_name
            payment.client_key = order.client_key
        else:
            payment = Payment(
                payment_key=self._new_payment_key(now),
                order_id=order.order_id,
                order_name=order.order_name,
                method=order.method,
                total_amount=order.amount,
                requested_at=now,
                success_url=order.success_url,
                fail_url=order.fail_url,
                customer_name=order.customer_name,
                client_key=order.client_key,
            )
            self.store.add(payment)
        self.store.schedule(payment, now + READY_LIFETIME)
        return payment

    def finish_window(
        self, payment: Payment, *, approve: bool, card_number: str | None, language: Language
    ) -> WindowResult:
        """The buyer pressed approve or cancel: READY → IN_PROGRESS and Toss's redirect."""
        self.expire_due()
        if not approve:
            # Closing the window changes nothing at Toss and sends no webhook.
            return WindowResult(None, fail_redirect(payment.fail_url, "PAY_PROCESS_CANCELED", language, None))
        if payment.status is PaymentStatus.IN_PROGRESS:
            return WindowResult(payment.payment_key, success_redirect(payment))  # a double submit
        if payment.status is not PaymentStatus.READY:
            code = "PAY_PROCESS_ABORTED" if payment.status is PaymentStatus.EXPIRED else "DUPLICATED_ORDER_ID"
            return WindowResult(None, fail_redirect(payment.fail_url, code, language, payment.order_id))
        if payment.method is Method.CARD:
            number = normalize_card_number(card_number)
            if number is None:
                return self._window_failed(payment, "INVALID_CARD_NUMBER", language)
            if card_outcome(number) is CardOutcome.WINDOW_REJECT:
                return self._window_failed(payment, "REJECT_CARD_COMPANY", language)
            payment.card_number = number
        payment.status = PaymentStatus.IN_PROGRESS
        self.store.schedule(payment, self.clock.now() + CONFIRM_DEADLINE)
        return WindowResult(payment.payment_key, success_redirect(payment))

    def _window_failed(self, payment: Payment, code: str, language: Language) -> WindowResult:
        # The buyer may retry in the same window, so the payment stays READY.
        return WindowResult(None, fail_redirect(payment.fail_url, code, language, payment.order_id))

    # ------------------------------------------------------------------ Toss API

    async def confirm(self, body: Any, secret_key: str | None = None) -> Payment:
        """`POST /v1/payments/confirm`: approve an authenticated (IN_PROGRESS) payment.

        `secret_key` is the caller's: a payment whose window was opened with one key pair's client
        key is confirmed with that pair's secret key only (Toss: 400 INVALID_API_KEY otherwise).
        """
        request = _object_body(body)
        payment_key = _text(request, "paymentKey", required=True, max_length=MAX_PAYMENT_KEY_LENGTH)
        order_id = _text(request, "orderId", required=True, max_length=64)
        amount = _integer(request, "amount", required=True)
        self.expire_due()
        payment = self.store.get(payment_key or "")
        if payment is None or payment.status in (PaymentStatus.READY, PaymentStatus.EXPIRED):
            raise TossError("NOT_FOUND_PAYMENT_SESSION")
        opened_with = payment.client_key
        if secret_key is not None and opened_with and self.config.secret_key_for(opened_with) != secret_key:
            raise TossError("INVALID_API_KEY")
        if payment.status is not PaymentStatus.IN_PROGRESS or payment.confirming:
            raise TossError("ALREADY_PROCESSED_PAYMENT")
        if order_id != payment.order_id:
            raise _invalid(
                "orderId가 결제 요청 시의 orderId와 다릅니다.",
                "orderId differs from the orderId of the authenticated payment.",
            )
        if amount != payment.total_amount:
            raise _invalid(
                f"amount가 결제 요청 금액({payment.total_amount})과 다릅니다.",
                f"amount differs from the authenticated amount ({payment.total_amount}).",
            )
        outcome = card_outcome(payment.card_number) if payment.card_number else CardOutcome.APPROVE
        if outcome is CardOutcome.REJECT_BALANCE:
            self._abort(payment, "REJECT_CARD_PAYMENT")
            raise TossError("REJECT_CARD_PAYMENT")
        if outcome is CardOutcome.EXPIRED_CARD:
            self._abort(payment, "INVALID_CARD_EXPIRATION")
            raise TossError("INVALID_CARD_EXPIRATION")
        if outcome is CardOutcome.PROVIDER_ERROR:
            raise TossError("PROVIDER_ERROR")
        if outcome is CardOutcome.FAIL_ONCE and payment.confirm_failures == 0:
            payment.confirm_failures += 1
            raise TossError("FAILED_INTERNAL_SYSTEM_PROCESSING")
        if outcome is CardOutcome.SLOW_CONFIRM:
            payment.confirming = True
            task = asyncio.get_running_loop().create_task(self._approve_later(payment))
            self._slow_confirms.add(task)
            task.add_done_callback(self._slow_confirms.discard)
            await asyncio.shield(task)
            return payment
        self._approve(payment)
        return payment

    def get_payment(self, payment_key: str) -> Payment:
        """`GET /v1/payments/{paymentKey}`: any status; 404 NOT_FOUND_PAYMENT when unknown."""
        self.expire_due()
        payment = self.store.get(payment_key)
        if payment is None:
            raise TossError("NOT_FOUND_PAYMENT")
        return payment

    def get_payment_by_order(self, order_id: str) -> Payment:
        """`GET /v1/payments/orders/{orderId}`."""
        self.expire_due()
        payment = self.store.get_by_order(order_id)
        if payment is None:
            raise TossError("NOT_FOUND_PAYMENT")
        return payment

    def cancel(self, payment_key: str, body: Any) -> Payment:
        """`POST /v1/payments/{paymentKey}/cancel`: full or partial, card or virtual account."""
        request = _object_body(body)
        reason = _text(request, "cancelReason", required=True, max_length=MAX_CANCEL_REASON_LENGTH)
        cancel_amount = _integer(request, "cancelAmount", required=False)
        tax_free_amount = _integer(request, "taxFreeAmount", required=False) or 0
        refundable_amount = _integer(request, "refundableAmount", required=False)
        currency = request.get("currency")
        if cancel_amount is not None and cancel_amount <= 0:
            raise _invalid("cancelAmount는 0보다 커야 합니다.", "cancelAmount must be greater than 0.")
        if tax_free_amount < 0:
            raise _invalid("taxFreeAmount는 0 이상이어야 합니다.", "taxFreeAmount must not be negative.")
        if currency is not None and currency != "KRW":
            raise TossError("INVALID_CURRENCY")
        self.expire_due()
        payment = self.store.get(payment_key)
        if payment is None:
            raise TossError("NOT_FOUND_PAYMENT")
        if payment.status is PaymentStatus.CANCELED:
            raise TossError("ALREADY_CANCELED_PAYMENT")
        if payment.status not in CANCELABLE:
            raise TossError("NOT_CANCELABLE_PAYMENT")
        if refundable_amount is not None and refundable_amount != payment.balance_amount:
            raise TossError("NOT_MATCHES_REFUNDABLE_AMOUNT")
        amount = payment.balance_amount if cancel_amount is None else cancel_amount
        if amount > payment.balance_amount:
            raise TossError("NOT_CANCELABLE_AMOUNT")
        waiting_for_deposit = payment.status is PaymentStatus.WAITING_FOR_DEPOSIT
        if waiting_for_deposit and amount < payment.balance_amount:
            raise TossError("NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT")
        if tax_free_amount > amount or tax_free_amount > payment.tax_free_amount:
            raise _invalid(
                "taxFreeAmount가 취소 가능한 면세 금액보다 큽니다.",
                "taxFreeAmount exceeds the cancelable tax-free amount.",
            )
        refund_account = None
        if payment.method is Method.VIRTUAL_ACCOUNT and not waiting_for_deposit:
            refund_account = parse_refund_account(request.get("refundReceiveAccount"))

        now = self.clock.now()
        transaction_key = new_transaction_key()
        payment.balance_amount -= amount
        payment.tax_free_amount -= tax_free_amount
        payment.cancels.append(
            {
                "cancelAmount": amount,
                "cancelReason": reason,
                "taxFreeAmount": tax_free_amount,
                "taxExemptionAmount": 0,
                "refundableAmount": payment.balance_amount,
                "cardDiscountAmount": 0,
                "transferDiscountAmount": 0,
                "easyPayDiscountAmount": 0,
                "canceledAt": toss_time(now),
                "transactionKey": transaction_key,
                "receiptKey": None,
                "cancelStatus": "DONE",
                "cancelRequestId": None,
            }
        )
        payment.last_transaction_key = transaction_key
        payment.status = (
            PaymentStatus.CANCELED if payment.balance_amount == 0 else PaymentStatus.PARTIAL_CANCELED
        )
        if payment.card is not None and payment.status is PaymentStatus.CANCELED:
            payment.card["acquireStatus"] = "CANCELED"
        if refund_account is not None and payment.virtual_account is not None:
            payment.virtual_account["refundReceiveAccount"] = {
                "bankCode": refund_account.bank_code,
                "accountNumber": refund_account.account_number,
                "holderName": refund_account.holder_name,
            }
            # Toss refunds to the buyer's account about two days after the request.
            payment.refund_completes_at = now + REFUND_DELAY
        if waiting_for_deposit:
            self.store.schedule(payment, None)
        self.reports.record_transaction(payment, now, payment.cancels[-1])
        self._publish_status_changed(payment)
        if payment.method is Method.VIRTUAL_ACCOUNT:
            self._publish_deposit_callback(payment)
        return payment

    def issue_virtual_account(self, body: Any) -> Payment:
        """`POST /v1/virtual-accounts`: a virtual account issued server-side, WAITING_FOR_DEPOSIT."""
        request = _object_body(body)
        amount = _integer(request, "amount", required=True) or 0
        check_amount(Method.VIRTUAL_ACCOUNT, amount)
        if not is_valid_order_id(request.get("orderId")):
            raise TossError("INVALID_ORDER_ID")
        order_id: str = request["orderId"]
        if not is_valid_order_name(request.get("orderName")):
            raise TossError("INVALID_ORDER_NAME")
        order_name: str = request["orderName"]
        customer_name = _text(request, "customerName", required=True, max_length=100) or ""
        raw_bank = request.get("bank")
        bank_code = bank_code_of(raw_bank) if isinstance(raw_bank, str) else None
        if bank_code is None or bank_code not in VIRTUAL_ACCOUNT_BANKS:
            raise TossError("INVALID_BANK")
        tax_free_amount = _integer(request, "taxFreeAmount", required=False) or 0
        if not 0 <= tax_free_amount <= amount:
            raise _invalid(
                "taxFreeAmount가 올바르지 않습니다.", "taxFreeAmount must be between 0 and amount."
            )
        _text(request, "customerEmail", required=False, max_length=100)
        phone = _text(request, "customerMobilePhone", required=False, max_length=15)
        if phone is not None and not (phone.isascii() and phone.isdigit() and len(phone) >= 8):
            raise _invalid(
                "customerMobilePhone은 숫자 8~15자리입니다.", "customerMobilePhone must be 8–15 digits."
            )
        account_key = _text(request, "accountKey", required=False, max_length=13)
        now = self.clock.now()
        valid_hours = _integer(request, "validHours", required=False)
        raw_due_date = request.get("dueDate")
        if valid_hours is not None and raw_due_date is not None:
            raise TossError("INVALID_VALID_HOURS_WITH_DUE_DATE_AND_SINGLE")
        if raw_due_date is not None:
            if not isinstance(raw_due_date, str):
                raise TossError("INVALID_DATE")
            due_at = parse_due_date(raw_due_date)
            if due_at <= now:
                raise TossError("INVALID_DATE")
            if due_at > now + MAX_DUE_DATE:
                raise TossError("EXCEED_MAX_DUE_DATE")
        else:
            hours = DEFAULT_VALID_HOURS if valid_hours is None else valid_hours
            if hours <= 0:
                raise _invalid("validHours는 1 이상이어야 합니다.", "validHours must be at least 1.")
            if hours > MAX_VALID_HOURS:
                raise TossError("EXCEED_MAX_VALID_HOURS")
            due_at = now + timedelta(hours=hours)
        self.expire_due()
        if self.store.get_by_order(order_id) is not None:
            raise TossError("DUPLICATED_ORDER_ID")
        payment = Payment(
            payment_key=self._new_payment_key(now),
            order_id=order_id,
            order_name=order_name,
            method=Method.VIRTUAL_ACCOUNT,
            total_amount=amount,
            requested_at=now,
            tax_free_amount=tax_free_amount,
            customer_name=customer_name,
        )
        self.store.add(payment)
        self._issue_account(payment, bank_code, due_at, fixed=account_key is not None)
        return payment

    # ------------------------------------------------------------------ test controls

    def deposit(self, order_id: str, body: Any) -> Payment:
        """The buyer pays into the virtual account: WAITING_FOR_DEPOSIT → DONE, plus webhooks."""
        self.expire_due()
        payment = self.store.get_by_order(order_id)
        if payment is None:
            raise TossError("NOT_FOUND_PAYMENT")
        account = payment.virtual_account
        if account is None or payment.status is not PaymentStatus.WAITING_FOR_DEPOSIT:
            raise TossError("NOT_WAITING_FOR_DEPOSIT")
        if account["expired"]:
            raise TossError("EXPIRED_VIRTUAL_ACCOUNT")
        depositor = body.get("depositorName") if isinstance(body, dict) else None
        now = self.clock.now()
        payment.status = PaymentStatus.DONE
        payment.approved_at = now
        payment.last_transaction_key = new_transaction_key()
        account["settlementStatus"] = "COMPLETED"
        account["depositorName"] = (
            depositor if isinstance(depositor, str) and depositor else payment.customer_name
        )
        self.store.schedule(payment, None)
        self.reports.record_transaction(payment, now)
        self._publish_status_changed(payment)
        self._publish_deposit_callback(payment)
        return payment

    def advance_clock(self, seconds: float) -> None:
        """Move the mock clock forward and apply every expiry that is now due."""
        self.clock.advance(seconds)
        self.expire_due()

    def expire_due(self) -> None:
        """Apply session expiry and due dates whose time has come (cheap when none has)."""
        for payment in self.store.pop_due(self.clock.now()):
            self._expire(payment)

    def reset(self) -> None:
        """Forget everything: payments, idempotency keys, journal, webhooks, chaos, clock."""
        self.store.clear()
        self.idempotency.clear()
        self.journal.clear()
        self.webhooks.reset()
        self.chaos.clear()
        self.reports.clear()
        self.clock.reset()
        for feature in self.features.values():
            feature.clear()

    async def sweep_forever(self, interval_seconds: float = 1.0) -> None:
        """Expire sessions even when no request arrives (their EXPIRED webhooks must still go out)."""
        while True:
            await asyncio.sleep(interval_seconds)
            self.expire_due()

    # ------------------------------------------------------------------ state changes

    def _new_payment_key(self, now: datetime) -> str:
        while True:
            payment_key = new_payment_key(now)
            if self.store.get(payment_key) is None:
                return payment_key

    async def _approve_later(self, payment: Payment) -> None:
        await asyncio.sleep(self.config.slow_confirm_seconds)
        # A reset during the wait forgot this payment: do not resurrect it.
        if self.store.get(payment.payment_key) is payment and payment.status is PaymentStatus.IN_PROGRESS:
            self._approve(payment)
        payment.confirming = False

    def _approve(self, payment: Payment) -> None:
        now = self.clock.now()
        payment.confirming = False
        payment.last_transaction_key = new_transaction_key()
        payment.receipt_url = RECEIPT_URL.format(key=payment.payment_key)
        if payment.method is Method.VIRTUAL_ACCOUNT:
            due_at = now + timedelta(hours=DEFAULT_VALID_HOURS)
            self._issue_account(payment, WINDOW_VIRTUAL_ACCOUNT_BANK, due_at, fixed=False)
            return
        if payment.method is Method.CARD and payment.card is None:  # key-in and billing set their own
            payment.card = {
                "issuerCode": "11",
                "acquirerCode": "11",
                "number": masked_card_number(payment.card_number or ""),
                "installmentPlanMonths": 0,
                "isInterestFree": False,
                "interestPayer": None,
                "approveNo": "00000000",
                "useCardPoint": False,
                "cardType": "신용",
                "ownerType": "개인",
                "acquireStatus": "READY",
                "amount": payment.total_amount,
            }
        elif payment.method is Method.EASY_PAY:
            payment.easy_pay = {"provider": "토스페이", "amount": payment.total_amount, "discountAmount": 0}
        elif payment.method is Method.TRANSFER:
            payment.transfer = {"bankCode": "88", "settlementStatus": "COMPLETED"}
        elif payment.method is Method.MOBILE_PHONE:
            payment.mobile_phone = {
                "customerMobilePhone": "01000000000",
                "settlementStatus": "COMPLETED",
                "receiptUrl": payment.receipt_url,
            }
        payment.status = PaymentStatus.DONE
        payment.approved_at = now
        self.store.schedule(payment, None)
        self.reports.record_transaction(payment, now)
        self._publish_status_changed(payment)

    def _issue_account(self, payment: Payment, bank_code: str, due_at: datetime, *, fixed: bool) -> None:
        payment.status = PaymentStatus.WAITING_FOR_DEPOSIT
        payment.secret = new_secret()
        payment.last_transaction_key = payment.last_transaction_key or new_transaction_key()
        payment.receipt_url = RECEIPT_URL.format(key=payment.payment_key)
        payment.virtual_account = {
            "accountType": "고정" if fixed else "일반",
            "accountNumber": new_account_number(),
            "bankCode": bank_code,
            "customerName": payment.customer_name or "구매자",
            "depositorName": None,
            "dueDate": toss_time(due_at),
            "refundStatus": "NONE",
            "expired": False,
            "settlementStatus": "INCOMPLETED",
            "refundReceiveAccount": None,
        }
        self.store.schedule(payment, due_at)
        self.reports.record_transaction(payment, self.clock.now())
        self._publish_status_changed(payment)
        self._publish_deposit_callback(payment)

    def _abort(self, payment: Payment, failure_code: str) -> None:
        payment.status = PaymentStatus.ABORTED
        payment.failure_code = failure_code
        self.store.schedule(payment, None)
        self._publish_status_changed(payment)

    def _expire(self, payment: Payment) -> None:
        if payment.status is PaymentStatus.READY or (
            payment.status is PaymentStatus.IN_PROGRESS and not payment.confirming
        ):
            payment.status = PaymentStatus.EXPIRED
            payment.failure_code = "EXPIRED_PAYMENT"
            self._publish_status_changed(payment)
        elif payment.status is PaymentStatus.WAITING_FOR_DEPOSIT and payment.virtual_account is not None:
            # Toss sends no webhook when a due date passes: the account just stops accepting money.
            payment.virtual_account["expired"] = True

    def _publish_status_changed(self, payment: Payment) -> None:
        if not self.webhooks.urls:
            return
        now = self.clock.now()
        payload = {
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": webhook_time(now),
            "data": payment.to_toss("ko", now),
        }
        self.webhooks.publish("PAYMENT_STATUS_CHANGED", payment.order_id, payment.payment_key, payload)

    def _publish_deposit_callback(self, payment: Payment) -> None:
        if not self.webhooks.urls:
            return
        payload = {
            "createdAt": webhook_time(self.clock.now()),
            "secret": payment.secret,
            "status": payment.status.value,
            "transactionKey": payment.last_transaction_key,
            "orderId": payment.order_id,
        }
        self.webhooks.publish("DEPOSIT_CALLBACK", payment.order_id, payment.payment_key, payload)
