"""Checkouts that end in failure (41): declines, window rejections, tampering, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import transactions

from .helpers import (
    CARD_EXPIRED,
    CARD_PROVIDER_ERROR,
    CARD_REJECT_BALANCE,
    CARD_WINDOW_REJECT,
    Checkout,
    page_redirect,
    status_codes,
)


def _with_params(url: str, **changes: str | None) -> str:
    """The URL with query parameters replaced (or dropped, for None)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in changes]
    query += [(k, v) for k, v in changes.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.parametrize(
    ("card", "our_code", "pg_code"),
    [
        pytest.param(CARD_REJECT_BALANCE, "PAY_004", "REJECT_CARD_PAYMENT", id="insufficient-balance"),
        pytest.param(CARD_EXPIRED, "PAY_003", "INVALID_CARD_EXPIRATION", id="expired-card"),
        pytest.param(CARD_PROVIDER_ERROR, "PAY_005", "PROVIDER_ERROR", id="provider-error"),
    ],
)
async def test_card_declined_at_confirm_fails_after_one_confirm(
    checkout: Checkout, card: str, our_code: str, pg_code: str
) -> None:
    shopper = checkout.shopper("declined")

    issued, window, landed = await checkout.pay(shopper, card=card)

    tid = issued["transactionId"]
    assert window.payment_key  # the window itself went through
    assert landed.is_fail, landed.location
    assert (landed.params["transactionId"], landed.params["code"], landed.params["errorCode"]) == (
        tid,
        pg_code,  # the PG's word, from its answer to our confirm
        our_code,
    )
    status = await checkout.status(shopper, tid)
    assert (status["status"], status["statusCode"]) == ("PAYMENT_FAILED", 41)
    assert (status["isSettled"], status["needsPolling"], status["retryAfterMs"]) == (True, False, None)
    assert (status["failure"]["code"], status["failure"]["pgCode"]) == (our_code, pg_code)
    assert status["failure"]["message"] == landed.params["message"] == status["message"]
    assert status["failure"]["pgMessage"]  # the mock's own (Korean) message
    detail = await checkout.detail(shopper, tid)
    assert detail["failure"] == status["failure"]
    assert status_codes(detail) == [10, 30, 41]
    confirms = await checkout.confirms(tid)
    assert len(confirms) == 1, confirms
    assert confirms[0]["status"] in (400, 403)


async def test_window_rejection_fails_without_any_confirm(checkout: Checkout) -> None:
    shopper = checkout.shopper("windowreject")

    issued, window, landed = await checkout.pay(shopper, card=CARD_WINDOW_REJECT)

    tid = issued["transactionId"]
    assert window.payment_key is None
    assert "REJECT_CARD_COMPANY" in window.redirect_url
    assert landed.is_fail
    assert (landed.params["transactionId"], landed.params["code"], landed.params["errorCode"]) == (
        tid,
        "REJECT_CARD_COMPANY",
        "PAY_003",
    )
    assert landed.params["message"] == "The payment was declined."
    status = await checkout.status(shopper, tid)
    assert status["statusCode"] == 41
    assert (status["failure"]["code"], status["failure"]["pgCode"]) == ("PAY_003", "REJECT_CARD_COMPANY")
    detail = await checkout.detail(shopper, tid)
    assert detail["failure"] == status["failure"]
    assert status_codes(detail) == [10, 41]
    assert await checkout.confirms(tid) == []


async def test_a_buyer_cancel_is_told_apart_from_a_decline(checkout: Checkout) -> None:
    """The buyer closes the payment window: Toss redirects to our failUrl with PAY_PROCESS_CANCELED
    (and no orderId). Our code is PAY_003 as for a declined card, but the PG's code travels with it:
    in the fail redirect's `code` and in the status and detail answers' `failure.pgCode`."""
    shopper = checkout.shopper("cancelvsdecline")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    window = await checkout.open_window(issued, action="cancel")
    assert "code=PAY_PROCESS_CANCELED" in window.redirect_url and "orderId=" not in window.redirect_url

    landed = page_redirect(await checkout.follow(window.redirect_url))

    assert landed.is_fail
    assert list(landed.params) == ["transactionId", "code", "message", "errorCode"]
    assert landed.params == {
        "transactionId": tid,
        "code": "PAY_PROCESS_CANCELED",
        "message": "The payment was cancelled in the payment window.",
        "errorCode": "PAY_003",
    }
    status = await checkout.status(shopper, tid)
    assert (status["statusCode"], status["message"]) == (41, landed.params["message"])
    assert status["failure"]["code"] == "PAY_003"
    assert status["failure"]["pgCode"] == "PAY_PROCESS_CANCELED"
    assert status["failure"]["message"] == "The payment was cancelled in the payment window."
    assert status["failure"]["pgMessage"]  # the mock's "사용자에 의해 결제가 취소되었습니다."
    detail = await checkout.detail(shopper, tid)
    assert detail["failure"] == status["failure"]
    assert await checkout.confirms(tid) == []

    # A declined card shares our code, not the PG's.
    declined = checkout.shopper("cancelvsdecline")
    issued_declined, _, landed_declined = await checkout.pay(declined, card=CARD_REJECT_BALANCE)
    declined_status = await checkout.status(declined, issued_declined["transactionId"])
    assert landed_declined.params["code"] == declined_status["failure"]["pgCode"] == "REJECT_CARD_PAYMENT"
    assert declined_status["failure"]["message"] != status["failure"]["message"]


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("100", id="cheaper"),
        pytest.param("50001", id="off-by-one"),
        pytest.param("-50000", id="negative"),
        pytest.param("5e4", id="not-an-integer"),
        pytest.param(None, id="missing"),
        pytest.param("²", id="unicode-digit"),  # str.isdigit() is True, int() refuses it
    ],
)
async def test_tampered_amount_fails_before_any_confirm(checkout: Checkout, amount: str | None) -> None:
    shopper = checkout.shopper("tamper")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    window = await checkout.open_window(issued)

    landed = page_redirect(await checkout.follow(_with_params(window.redirect_url, amount=amount)))

    assert landed.is_fail
    assert (landed.params["transactionId"], landed.params["code"], landed.params["errorCode"]) == (
        tid,
        "PAY_003",  # no PG code: our own, twice
        "PAY_003",
    )
    status = await checkout.status(shopper, tid)
    assert status["statusCode"] == 41
    assert (status["failure"]["code"], status["failure"]["pgCode"]) == ("PAY_003", None)
    detail = await checkout.detail(shopper, tid)
    assert status_codes(detail) == [10, 41]
    assert detail["paymentKey"] is None
    assert await checkout.confirms(tid) == []  # the PG's confirm was never called
    # The genuine callback arriving afterwards changes nothing either.
    after = page_redirect(await checkout.follow(window.redirect_url))
    assert after.is_fail and after.params["code"] == "PAY_003"
    assert await checkout.confirms(tid) == []


async def test_expired_transaction_fails_on_callback_without_confirm(
    checkout: Checkout, e2e_db_engine: AsyncEngine
) -> None:
    shopper = checkout.shopper("expired")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    window = await checkout.open_window(issued)
    async with e2e_db_engine.begin() as conn:
        result = await conn.execute(
            update(transactions)
            .where(transactions.c.transaction_id == tid)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        assert result.rowcount == 1

    landed = page_redirect(await checkout.follow(window.redirect_url))

    assert landed.is_fail
    assert (landed.params["transactionId"], landed.params["code"]) == (tid, "PAY_002")
    status = await checkout.status(shopper, tid)
    assert status["statusCode"] == 41
    assert status["failure"]["code"] == "PAY_002"
    assert status_codes(await checkout.detail(shopper, tid)) == [10, 41]
    assert await checkout.confirms(tid) == []


async def test_a_forged_fail_redirect_cannot_kill_a_payment_in_progress(checkout: Checkout) -> None:
    """Anyone can open callback/fail with a victim's transactionId. The PG reports the payment as
    authenticated (IN_PROGRESS), so the fail redirect is not the truth: nothing changes, and the
    buyer's own success callback then completes the payment with one confirm."""
    shopper = checkout.shopper("forgedfail")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    window = await checkout.open_window(issued)
    forged = page_redirect(
        await checkout.fail_callback(transactionId=tid, code="PAY_PROCESS_ABORTED", message="aborted")
    )
    assert forged.is_fail  # the sender sees a fail page, but the payment is untouched
    assert (await checkout.status(shopper, tid))["statusCode"] == 10

    real = page_redirect(await checkout.follow(window.redirect_url))

    assert not real.is_fail, real
    assert (await checkout.status(shopper, tid))["statusCode"] in (40, 45, 50)
    assert len(await checkout.confirms(tid)) == 1


async def test_a_fail_redirect_for_a_payment_the_pg_never_saw_fails_it(checkout: Checkout) -> None:
    """The buyer closed the window before authenticating: the PG knows no payment for the order, so
    the fail redirect is the truth (10→41 with the PG's code)."""
    shopper = checkout.shopper("realfail")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    landed = page_redirect(
        await checkout.fail_callback(transactionId=tid, code="PAY_PROCESS_CANCELED", message="취소")
    )
    assert landed.is_fail
    assert (landed.params["code"], landed.params["errorCode"]) == ("PAY_PROCESS_CANCELED", "PAY_003")
    detail = await checkout.detail(shopper, tid)
    assert (detail["statusCode"], detail["failure"]["pgCode"]) == (41, "PAY_PROCESS_CANCELED")
    assert detail["failure"]["pgMessage"] == "취소"
    assert await checkout.confirms(tid) == []


async def test_insufficient_funds_from_the_window_is_pay_004(checkout: Checkout) -> None:
    shopper = checkout.shopper("windowfunds")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]

    landed = page_redirect(
        await checkout.fail_callback(
            transactionId=tid, orderId=tid, code="REJECT_CARD_PAYMENT", message="잔액이 부족합니다."
        )
    )

    assert (landed.params["transactionId"], landed.params["code"], landed.params["errorCode"]) == (
        tid,
        "REJECT_CARD_PAYMENT",
        "PAY_004",
    )
    status = await checkout.status(shopper, tid)
    assert status["statusCode"] == 41
    assert status["failure"] == {
        "code": "PAY_004",
        "message": "Insufficient balance or card limit.",
        "pgCode": "REJECT_CARD_PAYMENT",
        "pgMessage": "잔액이 부족합니다.",
    }
    assert status["message"] == "Insufficient balance or card limit."


async def test_forged_payment_key_is_refused_by_the_pg_and_never_charges(checkout: Checkout) -> None:
    """Somebody who knows the orderId calls our success callback with a made-up paymentKey: the S2S
    confirm is refused by the PG, so nothing is charged; the PG knows no payment for the order, so
    the transaction waits (30, the key never stored) for the buyer or for reconciliation."""
    shopper = checkout.shopper("forged")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]

    landed = page_redirect(
        await checkout.success_callback(paymentKey="tviva20260101000000forge", orderId=tid, amount="50000")
    )

    assert landed.params["transactionId"] == tid
    detail = await checkout.detail(shopper, tid)
    assert detail["statusCode"] == 30 and detail["paymentKey"] is None
    confirms = await checkout.confirms(tid)
    assert len(confirms) == 1
    assert confirms[0]["status"] == 404  # NOT_FOUND_PAYMENT_SESSION: the PG never saw this payment


async def test_a_forged_callback_cannot_park_someone_elses_payment(checkout: Checkout) -> None:
    """The attacker pays for their own order, then replays its DONE paymentKey on the victim's
    callback. The key is not stored for the victim, and the victim's own callback still completes
    the victim's payment, confirmed once with the victim's key."""
    attacker, victim = checkout.shopper("attacker"), checkout.shopper("victim")
    _, attacker_window, attacker_landed = await checkout.pay(attacker)
    assert not attacker_landed.is_fail
    issued = await checkout.issue(victim)
    tid = issued["transactionId"]
    victim_window = await checkout.open_window(issued)

    forged = await checkout.success_callback(
        paymentKey=attacker_window.payment_key, orderId=tid, amount=str(issued["amount"])
    )
    assert forged.status_code == 302
    assert (await checkout.detail(victim, tid))["paymentKey"] != attacker_window.payment_key

    real = page_redirect(await checkout.follow(victim_window.redirect_url))

    assert not real.is_fail, real
    detail = await checkout.detail(victim, tid)
    assert detail["statusCode"] in (40, 45, 50)
    assert detail["paymentKey"] == victim_window.payment_key
    approved = [c for c in await checkout.confirms(tid) if c["status"] == 200]
    assert len(approved) == 1 and approved[0]["body"]["paymentKey"] == victim_window.payment_key
    assert (await checkout.pg_payment(tid))["status"] == "DONE"
