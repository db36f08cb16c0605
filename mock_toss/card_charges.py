"""Card payments a merchant's server makes without a payment window: key-in (card number) and
billing charges (billing key). The request checks they share, and the approval by test card.

The test cards of scenarios.py apply: reject and expired cards decline (payment ABORTED), the
window-reject card is declined by the card company (REJECT_CARD_COMPANY, ABORTED), the provider
error card answers PROVIDER_ERROR (nothing kept), the slow card answers late, the fail-once card
answers 500 the first time an orderId is charged with it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mock_toss.checkout import check_amount, is_valid_order_id, is_valid_order_name
from mock_toss.errors import TossError
from mock_toss.payments import KST, Method, Payment, PaymentStatus, masked_card_number
from mock_toss.scenarios import CardOutcome, card_outcome, normalize_card_number

if TYPE_CHECKING:
    from mock_toss.service import MockToss

# Toss's card company code for the mock's cards (11 = KB국민, as the window's payments show).
ISSUER_CODE = "11"
CARD_COMPANY = "국민"
# Installments: 2–12 months, only from 50,000 KRW (Toss's cardInstallmentPlan description).
MAX_INSTALLMENT_MONTHS = 12
INSTALLMENT_MINIMUM_AMOUNT = 50_000
MAX_CUSTOMER_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 100
# Toss's pattern for customerKey in the core API (2–300 of A-Za-z0-9 and - _ = . , @).
CUSTOMER_KEY_PATTERN = re.compile(r"[A-Za-z0-9\-_=.,@]{2,300}")
_EMAIL_PATTERN = re.compile(r"[A-Za-z0-9_.+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+")
_TWO_DIGITS = re.compile(r"\d{2}")


def invalid(message_ko: str, message_en: str) -> TossError:
    """400 INVALID_REQUEST with a message naming what is wrong."""
    return TossError("INVALID_REQUEST", message_ko, message_en)


def object_body(body: Any) -> dict[str, Any]:
    """The request body as a JSON object; 400 INVALID_REQUEST otherwise."""
    if not isinstance(body, dict):
        raise invalid("요청 본문은 JSON 객체여야 합니다.", "The request body must be a JSON object.")
    return body


def require(request: dict[str, Any], *names: str) -> None:
    """Every named field present (not null); 400 INVALID_REQUEST naming the first missing one."""
    for name in names:
        if request.get(name) is None:
            raise invalid(f"{name}는 필수입니다.", f"{name} is required.")


def integer(request: dict[str, Any], name: str) -> int | None:
    """An integer field (None when absent); 400 INVALID_REQUEST when it is not an integer."""
    value = request.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name}는 정수여야 합니다.", f"{name} must be an integer.")
    return value


def text(request: dict[str, Any], name: str) -> str | None:
    """A string field (None when absent); 400 INVALID_REQUEST when it is not a string."""
    value = request.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{name}는 문자열이어야 합니다.", f"{name} must be a string.")
    return value


def check_customer_key(value: Any) -> str:
    """A customerKey as the core API accepts it; 400 INVALID_CUSTOMER_KEY otherwise."""
    if not isinstance(value, str) or not CUSTOMER_KEY_PATTERN.fullmatch(value):
        raise TossError("INVALID_CUSTOMER_KEY")
    return value


def check_order(request: dict[str, Any]) -> tuple[int, str, str]:
    """(amount, orderId, orderName) of a card payment: BELOW_ZERO_AMOUNT, BELOW_MINIMUM_AMOUNT
    (card < 100), INVALID_ORDER_ID, INVALID_ORDER_NAME."""
    amount = integer(request, "amount") or 0
    check_amount(Method.CARD, amount)
    order_id = request.get("orderId")
    if not is_valid_order_id(order_id):
        raise TossError("INVALID_ORDER_ID")
    order_name = request.get("orderName")
    if not is_valid_order_name(order_name):
        raise TossError("INVALID_ORDER_NAME")
    return amount, str(order_id), str(order_name)


def check_customer(request: dict[str, Any]) -> tuple[str | None, str | None]:
    """(customerName, customerEmail), both optional: INVALID_REQUEST (name too long), INVALID_EMAIL."""
    name = text(request, "customerName")
    if name is not None and len(name) > MAX_CUSTOMER_NAME_LENGTH:
        raise invalid("customerName은 100자 이하여야 합니다.", "customerName is too long.")
    email = text(request, "customerEmail")
    if email is not None and (len(email) > MAX_EMAIL_LENGTH or not _EMAIL_PATTERN.fullmatch(email)):
        raise TossError("INVALID_EMAIL")
    return name or None, email or None


def check_tax_free(request: dict[str, Any], amount: int) -> int:
    """taxFreeAmount, 0 by default, between 0 and amount; 400 INVALID_REQUEST otherwise."""
    tax_free = integer(request, "taxFreeAmount") or 0
    if not 0 <= tax_free <= amount:
        raise invalid("taxFreeAmount가 올바르지 않습니다.", "taxFreeAmount must be between 0 and amount.")
    return tax_free


@dataclass(frozen=True, slots=True)
class Installments:
    """How a card charge is split: 0 months = lump sum."""

    months: int = 0
    interest_free: bool = False


def check_installments(request: dict[str, Any], amount: int) -> Installments:
    """cardInstallmentPlan (0 or 2–12) and useFreeInstallmentPlan: INVALID_CARD_INSTALLMENT_PLAN,
    NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN_BELOW_AMOUNT (installments under 50,000 KRW)."""
    raw = request.get("cardInstallmentPlan")
    if raw is None:
        months = 0
    elif (
        isinstance(raw, bool)
        or not isinstance(raw, int)
        or raw == 1
        or not 0 <= raw <= MAX_INSTALLMENT_MONTHS
    ):
        raise TossError("INVALID_CARD_INSTALLMENT_PLAN")
    else:
        months = raw
    interest_free = request.get("useFreeInstallmentPlan")
    if interest_free is not None and not isinstance(interest_free, bool):
        raise invalid(
            "useFreeInstallmentPlan은 불리언이어야 합니다.", "useFreeInstallmentPlan must be a boolean."
        )
    if months and amount < INSTALLMENT_MINIMUM_AMOUNT:
        raise TossError("NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN_BELOW_AMOUNT")
    return Installments(months, bool(interest_free) and months > 0)


@dataclass(frozen=True, slots=True)
class CardData:
    """A card as the merchant's server sends it (key-in, billing key by card)."""

    number: str
    owner_type: str  # 개인 (birth date given) or 법인 (business number given)


def check_card_data(request: dict[str, Any], now: datetime) -> CardData:
    """cardNumber, cardExpirationYear (YY), cardExpirationMonth (MM), customerIdentityNumber and the
    optional cardPassword (first two digits): INVALID_CARD_NUMBER, INVALID_CARD_EXPIRATION (malformed
    or past, by the mock clock in KST), INVALID_BIRTH_DAY_FORMAT, INVALID_CARD_PASSWORD."""
    raw_number = text(request, "cardNumber")
    number = normalize_card_number(raw_number) if raw_number and raw_number.strip() else None
    if number is None:
        raise TossError("INVALID_CARD_NUMBER")
    year = text(request, "cardExpirationYear")
    month = text(request, "cardExpirationMonth")
    if not (year and month and _TWO_DIGITS.fullmatch(year) and _TWO_DIGITS.fullmatch(month)):
        raise TossError("INVALID_CARD_EXPIRATION")
    today = now.astimezone(KST)
    expires = (2000 + int(year), int(month))
    if not 1 <= expires[1] <= 12 or expires < (today.year, today.month):
        raise TossError("INVALID_CARD_EXPIRATION")
    identity = text(request, "customerIdentityNumber") or ""
    if not (identity.isascii() and identity.isdigit()):
        raise TossError("INVALID_BIRTH_DAY_FORMAT")
    if len(identity) == 6:
        try:
            datetime.strptime(identity, "%y%m%d")
        except ValueError:
            raise TossError("INVALID_BIRTH_DAY_FORMAT") from None
    elif len(identity) != 10:
        raise TossError("INVALID_BIRTH_DAY_FORMAT")
    password = request.get("cardPassword")
    if password is not None and not (isinstance(password, str) and _TWO_DIGITS.fullmatch(password)):
        raise TossError("INVALID_CARD_PASSWORD")
    return CardData(number=number, owner_type="법인" if len(identity) == 10 else "개인")


def card_summary(card: CardData) -> dict[str, Any]:
    """The card as a Billing object shows it."""
    return {
        "issuerCode": ISSUER_CODE,
        "acquirerCode": ISSUER_CODE,
        "number": masked_card_number(card.number),
        "cardType": "신용",
        "ownerType": card.owner_type,
    }


@dataclass(frozen=True, slots=True)
class CardCharge:
    """A server-side card payment, checked and ready to run."""

    order_id: str
    order_name: str
    amount: int
    card: CardData
    payment_type: str  # NORMAL (key-in) or BILLING
    installments: Installments = Installments()
    tax_free_amount: int = 0
    customer_name: str | None = None
    customer_key: str | None = None  # a billing charge's


@dataclass(slots=True)
class CardChargeState:
    """orderIds the fail-once card already failed, and slow charges still running."""

    failed_once: set[str] = field(default_factory=set)
    slow: set[asyncio.Task[None]] = field(default_factory=set)

    def clear(self) -> None:
        self.failed_once.clear()


def _state(mock: MockToss) -> CardChargeState:
    state = mock.features.get("card-charges")
    if not isinstance(state, CardChargeState):
        state = mock.features["card-charges"] = CardChargeState()
    return state


async def charge_card(mock: MockToss, charge: CardCharge) -> Payment:
    """Run a server-side card payment: DONE, or a decline by test card; DUPLICATED_ORDER_ID for a
    used orderId. The payment (DONE or ABORTED) appears in lookups, cancels and webhooks."""
    mock.expire_due()
    if mock.store.get_by_order(charge.order_id) is not None:
        raise TossError("DUPLICATED_ORDER_ID")
    state = _state(mock)
    outcome = card_outcome(charge.card.number)
    if outcome is CardOutcome.PROVIDER_ERROR:
        raise TossError("PROVIDER_ERROR")  # nothing happened: the orderId stays free
    if outcome is CardOutcome.FAIL_ONCE and charge.order_id not in state.failed_once:
        state.failed_once.add(charge.order_id)
        raise TossError("FAILED_INTERNAL_SYSTEM_PROCESSING")
    now = mock.clock.now()
    payment = Payment(
        # MockToss's helpers are shared with the payment window's flow on purpose: the same ids,
        # the same state changes, the same webhooks (and whatever else records an approval).
        payment_key=mock._new_payment_key(now),
        order_id=charge.order_id,
        order_name=charge.order_name,
        method=Method.CARD,
        total_amount=charge.amount,
        requested_at=now,
        status=PaymentStatus.IN_PROGRESS,
        tax_free_amount=charge.tax_free_amount,
        customer_name=charge.customer_name,
        card_number=charge.card.number,
        payment_type=charge.payment_type,
        customer_key=charge.customer_key,
    )
    mock.store.add(payment)
    declined = {
        CardOutcome.REJECT_BALANCE: "REJECT_CARD_PAYMENT",
        CardOutcome.EXPIRED_CARD: "INVALID_CARD_EXPIRATION",
        CardOutcome.WINDOW_REJECT: "REJECT_CARD_COMPANY",
    }.get(outcome)
    if declined is not None:
        mock._abort(payment, declined)
        raise TossError(declined)
    if outcome is CardOutcome.SLOW_CONFIRM:
        payment.confirming = True
        task = asyncio.get_running_loop().create_task(_approve_later(mock, payment, charge))
        state.slow.add(task)
        task.add_done_callback(state.slow.discard)
        await asyncio.shield(task)
        return payment
    _approve(mock, payment, charge)
    return payment


async def _approve_later(mock: MockToss, payment: Payment, charge: CardCharge) -> None:
    await asyncio.sleep(mock.config.slow_confirm_seconds)
    # A reset during the wait forgot this payment: do not resurrect it.
    if mock.store.get(payment.payment_key) is payment and payment.status is PaymentStatus.IN_PROGRESS:
        _approve(mock, payment, charge)
    payment.confirming = False


def _approve(mock: MockToss, payment: Payment, charge: CardCharge) -> None:
    months = charge.installments.months
    interest_payer = None
    if months:
        interest_payer = "CARD_COMPANY" if charge.installments.interest_free else "BUYER"
    payment.card = {
        "issuerCode": ISSUER_CODE,
        "acquirerCode": ISSUER_CODE,
        "number": masked_card_number(charge.card.number),
        "installmentPlanMonths": months,
        "isInterestFree": charge.installments.interest_free,
        "interestPayer": interest_payer,
        "approveNo": "00000000",
        "useCardPoint": False,
        "cardType": "신용",
        "ownerType": charge.card.owner_type,
        "acquireStatus": "READY",
        "amount": charge.amount,
    }
    mock._approve(payment)
