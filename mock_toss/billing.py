"""Automatic payments (Toss's 자동결제 / billing): the card-registration window (billing auth), billing
keys issued from its authKey or from card data, charges on a billing key, and key deletion.

Flow: the page calls the SDK's `requestBillingAuth` → `GET /billing-auth` (this window) → the buyer
registers a test card → `successUrl?customerKey=…&authKey=…` → the merchant's server exchanges the
single-use authKey for a billingKey (`POST /v1/billing/authorizations/issue`) and charges it each
period (`POST /v1/billing/{billingKey}`). The card behind a key keeps its test-card behaviour.
"""

from __future__ import annotations

import base64
import random
import string
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from mock_toss.card_charges import (
    CARD_COMPANY,
    CardCharge,
    CardData,
    card_summary,
    charge_card,
    check_card_data,
    check_customer,
    check_customer_key,
    check_installments,
    check_order,
    check_tax_free,
    object_body,
    require,
    text,
)
from mock_toss.checkout import fail_redirect, is_absolute_http_url, with_query
from mock_toss.errors import Language, TossError
from mock_toss.payments import MERCHANT_ID, Payment, toss_time
from mock_toss.scenarios import (
    DEFAULT_CARD_NUMBER,
    TEST_CARDS,
    CardOutcome,
    card_outcome,
    normalize_card_number,
)

if TYPE_CHECKING:
    from mock_toss.service import MockToss

ANONYMOUS = "@@ANONYMOUS"
WINDOW_LIFETIME = timedelta(minutes=30)
MAX_AUTH_KEY_LENGTH = 300
MAX_BILLING_KEY_LENGTH = 200
MAX_SESSIONS = 50_000
MAX_BILLING_KEYS = 200_000

_ids = random.Random()
_ALPHANUMERIC = string.ascii_letters + string.digits
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


def new_auth_key() -> str:
    """`bln_` + 11 characters, like the authKeys Toss's test window hands out."""
    return "bln_" + "".join(_ids.choices(_ALPHANUMERIC, k=11))


def new_billing_key() -> str:
    """44 characters of base64 ending in `=`, the shape of Toss's billing keys."""
    return base64.urlsafe_b64encode(_ids.randbytes(32)).decode()


def new_session_id() -> str:
    return "bauth_" + "".join(_ids.choices(_ALPHANUMERIC, k=20))


@dataclass(slots=True, eq=False)
class BillingAuthWindow:
    """One opened card-registration window."""

    id: str
    client_key: str
    customer_key: str
    success_url: str
    fail_url: str
    opened_at: datetime
    customer_name: str | None = None
    customer_email: str | None = None
    auth_key: str | None = None  # set once a card was registered (a second submit redirects again)


@dataclass(slots=True, eq=False)
class AuthGrant:
    """A registered card waiting for its billing key: what an authKey stands for (single use)."""

    auth_key: str
    customer_key: str
    client_key: str
    card: CardData
    authenticated_at: datetime


@dataclass(slots=True, eq=False)
class BillingKey:
    """An issued billing key and the card behind it."""

    billing_key: str
    customer_key: str
    card: CardData
    authenticated_at: datetime
    secret_key: str  # the key pair that issued it

    def to_toss(self, language: Language, now: datetime) -> dict[str, Any]:
        """Toss's Billing object."""
        summary = card_summary(self.card)
        return {
            "mId": MERCHANT_ID,
            "customerKey": self.customer_key,
            "authenticatedAt": toss_time(self.authenticated_at),
            "method": "카드",
            "billingKey": self.billing_key,
            "card": summary,
            "cardCompany": CARD_COMPANY,
            "cardNumber": summary["number"],
        }


@dataclass(slots=True)
class BillingState:
    """Windows, unused authKeys and billing keys; bounded (oldest forgotten first)."""

    windows: OrderedDict[str, BillingAuthWindow] = field(default_factory=OrderedDict)
    grants: OrderedDict[str, AuthGrant] = field(default_factory=OrderedDict)
    keys: OrderedDict[str, BillingKey] = field(default_factory=OrderedDict)

    def clear(self) -> None:
        self.windows.clear()
        self.grants.clear()
        self.keys.clear()


def _bounded(table: OrderedDict[str, Any], limit: int) -> None:
    while len(table) > limit:
        table.popitem(last=False)


def billing_state(mock: MockToss) -> BillingState:
    """The mock's billing state (created on first use, cleared by `/_mock/reset`)."""
    state = mock.features.get("billing")
    if not isinstance(state, BillingState):
        state = mock.features["billing"] = BillingState()
    return state


# ------------------------------------------------------------------ the card-registration window


@dataclass(frozen=True, slots=True)
class BillingAuthRequest:
    """What `requestBillingAuth` sends to the window."""

    client_key: str
    customer_key: str
    success_url: str
    fail_url: str
    customer_name: str | None = None
    customer_email: str | None = None


def parse_billing_auth(fields: Mapping[str, Any], client_keys: Collection[str]) -> BillingAuthRequest:
    """INVALID_CLIENT_KEY (not the API pair's client key), INVALID_CUSTOMER_KEY (not 2–300 of
    A-Za-z0-9 - _ = . , @, or ANONYMOUS), INCORRECT_SUCCESS_URL_FORMAT / INCORRECT_FAIL_URL_FORMAT,
    INVALID_REQUEST (customerName over 100), INVALID_EMAIL."""
    client_key = fields.get("clientKey")
    if not isinstance(client_key, str) or client_key not in client_keys:
        raise TossError("INVALID_CLIENT_KEY")
    customer_key = fields.get("customerKey")
    if customer_key == ANONYMOUS:
        raise TossError("INVALID_CUSTOMER_KEY")
    check_customer_key(customer_key)
    success_url = fields.get("successUrl")
    if not is_absolute_http_url(success_url):
        raise TossError("INCORRECT_SUCCESS_URL_FORMAT")
    fail_url = fields.get("failUrl")
    if not is_absolute_http_url(fail_url):
        raise TossError("INCORRECT_FAIL_URL_FORMAT")
    name, email = check_customer(dict(fields))
    return BillingAuthRequest(
        client_key=client_key,
        customer_key=str(customer_key),
        success_url=str(success_url),
        fail_url=str(fail_url),
        customer_name=name,
        customer_email=email,
    )


def open_billing_auth(mock: MockToss, request: BillingAuthRequest) -> BillingAuthWindow:
    """A new registration window (no state at Toss until a card is registered)."""
    state = billing_state(mock)
    window = BillingAuthWindow(
        id=new_session_id(),
        client_key=request.client_key,
        customer_key=request.customer_key,
        success_url=request.success_url,
        fail_url=request.fail_url,
        opened_at=mock.clock.now(),
        customer_name=request.customer_name,
        customer_email=request.customer_email,
    )
    state.windows[window.id] = window
    _bounded(state.windows, MAX_SESSIONS)
    return window


def _success_redirect(window: BillingAuthWindow) -> str:
    return with_query(
        window.success_url, [("customerKey", window.customer_key), ("authKey", window.auth_key or "")]
    )


def finish_billing_auth(
    mock: MockToss,
    window: BillingAuthWindow,
    *,
    register: bool,
    card_number: str | None,
    language: Language,
) -> tuple[str | None, str]:
    """The buyer pressed register or cancel: (authKey or None, where the browser goes).

    Cancel → failUrl PAY_PROCESS_CANCELED; a malformed card → INVALID_CARD_NUMBER; the window-reject
    card → REJECT_CARD_COMPANY; a window older than 30 minutes → PAY_PROCESS_ABORTED. Failures
    carry `code` and `message` only (no orderId: a registration has none).
    """
    if not register:
        return None, fail_redirect(window.fail_url, "PAY_PROCESS_CANCELED", language, None)
    if window.auth_key is not None:
        return window.auth_key, _success_redirect(window)  # a double submit
    now = mock.clock.now()
    if now - window.opened_at > WINDOW_LIFETIME:
        return None, fail_redirect(window.fail_url, "PAY_PROCESS_ABORTED", language, None)
    number = normalize_card_number(card_number)
    if number is None:
        return None, fail_redirect(window.fail_url, "INVALID_CARD_NUMBER", language, None)
    if card_outcome(number) is CardOutcome.WINDOW_REJECT:
        return None, fail_redirect(window.fail_url, "REJECT_CARD_COMPANY", language, None)
    state = billing_state(mock)
    grant = AuthGrant(
        auth_key=new_auth_key(),
        customer_key=window.customer_key,
        client_key=window.client_key,
        card=CardData(number=number, owner_type="개인"),
        authenticated_at=now,
    )
    state.grants[grant.auth_key] = grant
    _bounded(state.grants, MAX_SESSIONS)
    window.auth_key = grant.auth_key
    return grant.auth_key, _success_redirect(window)


def render_billing_auth(window: BillingAuthWindow) -> str:
    """The window's HTML: customer, test card field, register and cancel."""
    return _templates.get_template("billing_auth.html").render(
        window=window,
        default_card=DEFAULT_CARD_NUMBER,
        test_cards=[(number, outcome.value) for number, outcome in TEST_CARDS.items()],
        action_url=f"/billing-auth/{window.id}",
    )


# ------------------------------------------------------------------ Toss API


def _check_pair(mock: MockToss, client_key: str | None, secret_key: str) -> None:
    # Like confirm: what one key pair started is finished with that pair's secret key only.
    if client_key is not None and mock.config.secret_key_for(client_key) != secret_key:
        raise TossError("INVALID_API_KEY")


def _keep(mock: MockToss, key: BillingKey) -> BillingKey:
    state = billing_state(mock)
    state.keys[key.billing_key] = key
    _bounded(state.keys, MAX_BILLING_KEYS)
    return key


def issue_by_auth_key(mock: MockToss, body: Any, secret_key: str) -> BillingKey:
    """`POST /v1/billing/authorizations/issue {authKey, customerKey}` → Billing.

    Unknown or already used authKey → 404 NOT_FOUND_BILLING; another customerKey than the window's
    → 400 NOT_MATCHES_CUSTOMER_KEY (the authKey stays usable); another key pair's secret key →
    400 INVALID_API_KEY.
    """
    request = object_body(body)
    require(request, "authKey", "customerKey")
    auth_key = text(request, "authKey") or ""
    customer_key = check_customer_key(request.get("customerKey"))
    state = billing_state(mock)
    grant = state.grants.get(auth_key) if len(auth_key) <= MAX_AUTH_KEY_LENGTH else None
    if grant is None:
        raise TossError("NOT_FOUND_BILLING")
    _check_pair(mock, grant.client_key, secret_key)
    if grant.customer_key != customer_key:
        raise TossError("NOT_MATCHES_CUSTOMER_KEY")
    del state.grants[auth_key]
    key = BillingKey(
        billing_key=new_billing_key(),
        customer_key=customer_key,
        card=grant.card,
        authenticated_at=grant.authenticated_at,
        secret_key=secret_key,
    )
    return _keep(mock, key)


def issue_by_card(mock: MockToss, body: Any, secret_key: str) -> BillingKey:
    """`POST /v1/billing/authorizations/card {customerKey, cardNumber, cardExpirationYear,
    cardExpirationMonth, customerIdentityNumber, cardPassword?, customerName?, customerEmail?}` →
    Billing. The card checks of key-in apply; the window-reject card → 403 REJECT_CARD_COMPANY."""
    request = object_body(body)
    require(
        request,
        "customerKey",
        "cardNumber",
        "cardExpirationYear",
        "cardExpirationMonth",
        "customerIdentityNumber",
    )
    customer_key = check_customer_key(request.get("customerKey"))
    now = mock.clock.now()
    card = check_card_data(request, now)
    check_customer(request)
    if card_outcome(card.number) is CardOutcome.WINDOW_REJECT:
        raise TossError("REJECT_CARD_COMPANY")
    key = BillingKey(
        billing_key=new_billing_key(),
        customer_key=customer_key,
        card=card,
        authenticated_at=now,
        secret_key=secret_key,
    )
    return _keep(mock, key)


def _key_of(mock: MockToss, billing_key: str, secret_key: str) -> BillingKey | None:
    key = billing_state(mock).keys.get(billing_key) if len(billing_key) <= MAX_BILLING_KEY_LENGTH else None
    if key is not None and key.secret_key != secret_key:
        raise TossError("INVALID_API_KEY")
    return key


async def charge_billing_key(mock: MockToss, billing_key: str, body: Any, secret_key: str) -> Payment:
    """`POST /v1/billing/{billingKey} {customerKey, amount, orderId, orderName, customerEmail?,
    customerName?, taxFreeAmount?, cardInstallmentPlan?}` → Payment (type BILLING, method 카드).

    Unknown or deleted key → 400 INVALID_BILL_KEY_REQUEST; another customerKey than the key's →
    400 NOT_MATCHES_CUSTOMER_KEY; then as key-in: the card's test-card behaviour, DUPLICATED_ORDER_ID.
    """
    request = object_body(body)
    require(request, "customerKey", "amount", "orderId", "orderName")
    amount, order_id, order_name = check_order(request)
    customer_key = check_customer_key(request.get("customerKey"))
    installments = check_installments(request, amount)
    tax_free_amount = check_tax_free(request, amount)
    customer_name, _ = check_customer(request)
    key = _key_of(mock, billing_key, secret_key)
    if key is None:
        raise TossError("INVALID_BILL_KEY_REQUEST")
    if key.customer_key != customer_key:
        raise TossError("NOT_MATCHES_CUSTOMER_KEY")
    charge = CardCharge(
        order_id=order_id,
        order_name=order_name,
        amount=amount,
        card=key.card,
        payment_type="BILLING",
        installments=installments,
        tax_free_amount=tax_free_amount,
        customer_name=customer_name,
        customer_key=customer_key,
    )
    return await charge_card(mock, charge)


def delete_billing_key(mock: MockToss, billing_key: str, secret_key: str) -> None:
    """`DELETE /v1/billing/{billingKey}` → 200, empty body; unknown or already deleted → 400
    BILLING_KEY_NOT_FOUND. Later charges on it → INVALID_BILL_KEY_REQUEST."""
    key = _key_of(mock, billing_key, secret_key)
    if key is None:
        raise TossError("BILLING_KEY_NOT_FOUND")
    del billing_state(mock).keys[billing_key]


# ------------------------------------------------------------------ test controls


def change_card(mock: MockToss, billing_key: str, body: Any) -> BillingKey:
    """`POST /_mock/billing/{billingKey}/card {cardNumber}`: the card behind a key becomes another
    test card (the customer's card runs out of money, expires, …); INVALID_CARD_NUMBER when malformed."""
    key = billing_state(mock).keys.get(billing_key)
    if key is None:
        raise TossError("BILLING_KEY_NOT_FOUND")
    raw = object_body(body).get("cardNumber")
    number = normalize_card_number(raw) if isinstance(raw, str) and raw.strip() else None
    if number is None:
        raise TossError("INVALID_CARD_NUMBER")
    key.card = CardData(number=number, owner_type=key.card.owner_type)
    return key
