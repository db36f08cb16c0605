"""Key-in payments (`POST /v1/payments/key-in`, Toss's 카드 번호 결제): the merchant's server sends
the card and the payment is approved at once (Payment DONE, method 카드, type NORMAL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mock_toss.card_charges import (
    CardCharge,
    charge_card,
    check_card_data,
    check_customer,
    check_installments,
    check_order,
    check_tax_free,
    object_body,
    require,
)
from mock_toss.payments import Payment

if TYPE_CHECKING:
    from mock_toss.service import MockToss

REQUIRED_FIELDS = (
    "amount",
    "orderId",
    "orderName",
    "cardNumber",
    "cardExpirationYear",
    "cardExpirationMonth",
    "customerIdentityNumber",
)


def parse_key_in(body: Any, mock: MockToss) -> CardCharge:
    """The checked request. Order of checks: missing fields (INVALID_REQUEST) → amount → orderId →
    orderName → card number → expiry → identity → password → installments → taxFreeAmount →
    customer name and email."""
    request = object_body(body)
    require(request, *REQUIRED_FIELDS)
    amount, order_id, order_name = check_order(request)
    card = check_card_data(request, mock.clock.now())
    installments = check_installments(request, amount)
    tax_free_amount = check_tax_free(request, amount)
    customer_name, _ = check_customer(request)
    return CardCharge(
        order_id=order_id,
        order_name=order_name,
        amount=amount,
        card=card,
        payment_type="NORMAL",
        installments=installments,
        tax_free_amount=tax_free_amount,
        customer_name=customer_name,
    )


async def key_in(mock: MockToss, body: Any) -> Payment:
    """`POST /v1/payments/key-in`: check, then charge the card (test cards apply)."""
    return await charge_card(mock, parse_key_in(body, mock))
