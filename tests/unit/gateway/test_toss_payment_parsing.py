"""Toss Payment objects → PaymentInfo / RefundResult (the shapes of toss_api.md §3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from app.gateway.models import (
    GatewayError,
    GatewayErrorKind,
    PaymentInfo,
    PaymentMethod,
    PgFailure,
    PgPaymentStatus,
)

Factory = Callable[..., Any]
PaymentJson = Callable[..., dict[str, Any]]
KST = timezone(timedelta(hours=9))


async def looked_up(toss: Factory, payment: dict[str, Any]) -> PaymentInfo:
    harness = toss(lambda request: httpx.Response(200, json=payment))
    info: PaymentInfo = await harness.client.get_payment(payment["paymentKey"])
    return info


async def test_the_documented_done_card_payment(toss: Factory, card_payment: dict[str, Any]) -> None:
    payment = await looked_up(toss, card_payment)

    assert payment.provider == "TOSS"
    assert payment.payment_key == "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1"
    assert payment.order_id == "a4CWyWY5m89PNh7xJwhk1"
    assert payment.status is PgPaymentStatus.DONE
    assert payment.method is PaymentMethod.CARD
    assert payment.total_amount == 1000
    assert payment.balance_amount == 1000
    assert payment.approved_at == datetime(2024, 2, 13, 12, 18, 14, tzinfo=KST)
    assert payment.approved_at is not None and payment.approved_at.utcoffset() == timedelta(0)
    assert payment.last_transaction_key == "9C62B18EEF0DE3EB7F4422EB6D14BC6E"
    assert payment.virtual_account is None
    assert payment.secret is None
    assert payment.failure is None
    assert payment.raw == card_payment


async def test_fields_toss_adds_later_are_ignored_but_kept_in_raw(
    toss: Factory, payment_json: PaymentJson
) -> None:
    payment = await looked_up(toss, payment_json(brandNewField={"nested": [1, 2]}, anotherOne=None))

    assert payment.status is PgPaymentStatus.DONE
    assert payment.raw["brandNewField"] == {"nested": [1, 2]}


@pytest.mark.parametrize(
    ("toss_method", "method"),
    [
        ("카드", PaymentMethod.CARD),
        ("가상계좌", PaymentMethod.VIRTUAL_ACCOUNT),
        ("간편결제", PaymentMethod.EASY_PAY),
        ("계좌이체", PaymentMethod.TRANSFER),
        ("휴대폰", PaymentMethod.MOBILE_PHONE),
        ("문화상품권", PaymentMethod.OTHER),
        ("도서문화상품권", PaymentMethod.OTHER),
        (None, None),
    ],
)
async def test_korean_method_names_are_mapped(
    toss: Factory, payment_json: PaymentJson, toss_method: str | None, method: PaymentMethod | None
) -> None:
    payment = await looked_up(toss, payment_json(method=toss_method))

    assert payment.method is method


@pytest.mark.parametrize(
    "due_date",
    ["2025-11-30T15:17:19+09:00", "2025-11-30T15:17:19", "2025-11-30T06:17:19Z"],
    ids=["with-offset", "without-offset-is-kst", "utc"],
)
async def test_a_virtual_account_waiting_for_deposit(
    toss: Factory, payment_json: PaymentJson, due_date: str
) -> None:
    confirmed = payment_json(
        status="WAITING_FOR_DEPOSIT",
        method="가상계좌",
        approvedAt=None,
        card=None,
        easyPay=None,
        secret="ps_Zb1qCMZz4KqVoL4b8E2FwrHxbdy6",
        lastTransactionKey="txrd_a01k2x3",
        virtualAccount={
            "accountType": "일반",
            "accountNumber": "X6505636518308",
            "bankCode": "20",
            "customerName": "김토스",
            "depositorName": None,
            "dueDate": due_date,
            "refundStatus": "NONE",
            "expired": False,
            "settlementStatus": "INCOMPLETED",
            "refundReceiveAccount": None,
        },
    )
    harness = toss(lambda request: httpx.Response(200, json=confirmed))

    payment = await harness.client.confirm(
        payment_key=confirmed["paymentKey"], order_id=confirmed["orderId"], amount=1000, idempotency_key="k"
    )

    assert payment.status is PgPaymentStatus.WAITING_FOR_DEPOSIT
    assert payment.method is PaymentMethod.VIRTUAL_ACCOUNT
    assert payment.approved_at is None
    assert payment.secret == "ps_Zb1qCMZz4KqVoL4b8E2FwrHxbdy6"
    account = payment.virtual_account
    assert account is not None
    assert account.bank_code == "20"
    assert account.account_number == "X6505636518308"
    assert account.due_date == datetime(2025, 11, 30, 15, 17, 19, tzinfo=KST)
    assert account.due_date.tzinfo is not None and account.due_date.utcoffset() == timedelta(0)
    assert account.expired is False


async def test_an_expired_virtual_account_says_so(toss: Factory, payment_json: PaymentJson) -> None:
    payment = await looked_up(
        toss,
        payment_json(
            status="WAITING_FOR_DEPOSIT",
            method="가상계좌",
            virtualAccount={
                "accountNumber": "X1",
                "bankCode": "88",
                "dueDate": "2025-11-30T15:17:19.123456",
                "expired": True,
            },
        ),
    )

    assert payment.virtual_account is not None
    assert payment.virtual_account.expired is True
    assert payment.virtual_account.due_date == datetime(2025, 11, 30, 6, 17, 19, 123456, tzinfo=UTC)


async def test_an_aborted_payment_carries_its_failure(toss: Factory, payment_json: PaymentJson) -> None:
    payment = await looked_up(
        toss,
        payment_json(
            status="ABORTED",
            approvedAt=None,
            failure={"code": "REJECT_CARD_COMPANY", "message": "결제 승인이 거절되었습니다."},
        ),
    )

    assert payment.status is PgPaymentStatus.ABORTED
    assert payment.approved_at is None
    assert payment.failure == PgFailure(code="REJECT_CARD_COMPANY", message="결제 승인이 거절되었습니다.")


async def test_an_expired_payment_with_a_null_failure_message(
    toss: Factory, payment_json: PaymentJson
) -> None:
    payment = await looked_up(
        toss,
        payment_json(status="EXPIRED", approvedAt=None, failure={"code": "EXPIRED_PAYMENT", "message": None}),
    )

    assert payment.status is PgPaymentStatus.EXPIRED
    assert payment.failure == PgFailure(code="EXPIRED_PAYMENT", message="")


def cancel_entry(
    amount: int, transaction_key: str, canceled_at: str | None, refundable: int
) -> dict[str, Any]:
    return {
        "cancelAmount": amount,
        "cancelReason": "buyer asked",
        "taxFreeAmount": 0,
        "taxExemptionAmount": 0,
        "refundableAmount": refundable,
        "cardDiscountAmount": 0,
        "transferDiscountAmount": 0,
        "easyPayDiscountAmount": 0,
        "canceledAt": canceled_at,
        "transactionKey": transaction_key,
        "receiptKey": None,
        "cancelStatus": "DONE",
        "cancelRequestId": None,
    }


async def test_a_partial_cancel_reports_the_newest_cancel(toss: Factory, payment_json: PaymentJson) -> None:
    answer = payment_json(
        status="PARTIAL_CANCELED",
        totalAmount=10000,
        balanceAmount=6000,
        lastTransactionKey="TX_SECOND",
        cancels=[
            cancel_entry(1000, "TX_FIRST", "2024-02-14T10:00:00+09:00", 9000),
            cancel_entry(3000, "TX_SECOND", "2024-02-14T11:00:00+09:00", 6000),
        ],
    )
    harness = toss(lambda request: httpx.Response(200, json=answer))

    refund = await harness.client.cancel(
        payment_key="pk_1", reason="partial", amount=3000, idempotency_key="r2"
    )

    assert refund.canceled_amount == 3000
    assert refund.transaction_key == "TX_SECOND"
    assert refund.already_canceled is False
    assert refund.payment.status is PgPaymentStatus.PARTIAL_CANCELED
    assert refund.payment.total_amount == 10000
    assert refund.payment.balance_amount == 6000
    assert refund.payment.last_transaction_key == "TX_SECOND"


async def test_the_newest_cancel_is_chosen_by_time_when_toss_lists_them_out_of_order(
    toss: Factory, payment_json: PaymentJson
) -> None:
    answer = payment_json(
        status="CANCELED",
        balanceAmount=0,
        cancels=[
            cancel_entry(600, "TX_LATER", "2024-02-14T12:00:00+09:00", 0),
            cancel_entry(400, "TX_EARLIER", "2024-02-14T11:00:00+09:00", 600),
        ],
    )
    harness = toss(lambda request: httpx.Response(200, json=answer))

    refund = await harness.client.cancel(payment_key="pk_1", reason="rest", amount=None, idempotency_key="r3")

    assert (refund.canceled_amount, refund.transaction_key) == (600, "TX_LATER")


async def test_without_times_the_last_cancel_entry_is_the_newest(
    toss: Factory, payment_json: PaymentJson
) -> None:
    answer = payment_json(
        status="CANCELED",
        balanceAmount=0,
        cancels=[cancel_entry(400, "TX_A", None, 600), cancel_entry(600, "TX_B", None, 0)],
    )
    harness = toss(lambda request: httpx.Response(200, json=answer))

    refund = await harness.client.cancel(payment_key="pk_1", reason="rest", amount=None, idempotency_key="r4")

    assert (refund.canceled_amount, refund.transaction_key) == (600, "TX_B")


@pytest.mark.parametrize("cancels", [None, []])
async def test_a_cancel_answer_without_cancels_is_an_unknown_outcome(
    toss: Factory, payment_json: PaymentJson, cancels: list[Any] | None
) -> None:
    harness = toss(lambda request: httpx.Response(200, json=payment_json(status="CANCELED", cancels=cancels)))

    with pytest.raises(GatewayError) as error:
        await harness.client.cancel(payment_key="pk_1", reason="r", amount=None, idempotency_key="r5")

    assert error.value.kind is GatewayErrorKind.UNAVAILABLE
    assert error.value.pg_code == "INVALID_RESPONSE"
