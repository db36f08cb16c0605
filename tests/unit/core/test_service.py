"""Payment Core's use cases (checkout, payment results, fulfilment, queries, sweeper) against
in-memory fakes of its ports."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.core.checkout import CallbackOutcome, Checkout, IssueCommand
from app.core.domain import (
    AmountMismatch,
    Failure,
    Method,
    ProductNotFound,
    ProductType,
    Status,
    Transaction,
    TransactionNotFound,
    ValidationFailed,
)
from app.core.printable import printable_text
from app.core.schemas import FailureBody, StatusResponse, status_response
from app.gateway.models import GatewayErrorKind, PaymentMethod, PgPaymentStatus
from app.http.errors import http_status_of
from app.http.redirects import redirect_url
from app.messages import Lang
from tests.support.core import CLIENT_KEY, PUBLIC, CoreOverFakes, build_test_core
from tests.support.fakes import (
    APPROVED_AT,
    aborted_payment,
    done_payment,
    gateway_error,
    in_progress_payment,
    waiting_for_deposit_payment,
)

FRONTEND = "https://shop.example.com"
STUDY_PRICE = 50000
RESUME_PRICE = 9900
KEY_MAY_BELONG_ELSEWHERE = (GatewayErrorKind.SESSION_EXPIRED, GatewayErrorKind.INVALID_REQUEST)
NO_PAYMENT_AT_PG = gateway_error(
    GatewayErrorKind.NOT_FOUND, "NOT_FOUND_PAYMENT", "no such payment", http_status=404
)
# A confirmed payment passes 40 and moves on to 45 at once, with its grant queued.
PAID = Status.PROVISION_PENDING


World = CoreOverFakes


@pytest.fixture
def world() -> World:
    return build_test_core()


def with_checkout_config(world: World, **config: Any) -> Checkout:
    """Another Checkout over the same fakes, with other settings."""
    return build_test_core(
        CoreOverFakes(world.repo, world.gateway, world.clock, world.queue), **config
    ).checkout


def page(outcome: CallbackOutcome, lang: Lang = "en") -> str:
    """The frontend URL the HTTP layer redirects the browser to for a callback's outcome (for a
    browser that prefers English, unless `lang` says otherwise)."""
    return redirect_url(FRONTEND + "/", outcome, lang)


async def fail_callback(world: World, **params: str | None) -> str:
    return page(await world.checkout.handle_fail_callback(**params))  # type: ignore[arg-type]


def command(
    *,
    user_id: str = "u1",
    product_type: ProductType = ProductType.STUDY,
    product_id: str = "study_123",
    amount: int = STUDY_PRICE,
    order_name: str | None = None,
    method: Method = Method.CARD,
    metadata: dict[str, Any] | None = None,
) -> IssueCommand:
    return IssueCommand(
        user_id=user_id,
        product_type=product_type,
        product_id=product_id,
        amount=amount,
        order_name=order_name,
        method=method,
        metadata={} if metadata is None else metadata,
    )


async def issue(world: World, **kwargs: Any) -> Transaction:
    return (await world.checkout.issue(command(**kwargs))).transaction


async def success_callback(
    world: World, tid: str | None, amount: str | None = str(STUDY_PRICE), payment_key: str | None = "pk_1"
) -> str:
    return page(
        await world.checkout.handle_success_callback(payment_key=payment_key, order_id=tid, amount=amount)
    )


def success_page(tid: str) -> str:
    return f"{FRONTEND}/payment/success?transactionId={tid}"


def fail_page(url: str) -> dict[str, str]:
    """The query of a redirect to the frontend's fail page (fails the test for any other URL)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{FRONTEND}/payment/fail", url
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def status_of(world: World, tid: str) -> Status:
    return world.repo.stored(tid).status


async def wire_status(
    world: World, tid: str, user_id: str = "u1", attempt: int | None = None, lang: Lang = "en"
) -> StatusResponse:
    """The status answer, for a client that prefers English unless `lang` says otherwise."""
    report = await world.queries.get_status(user_id=user_id, transaction_id=tid, attempt=attempt, lang=lang)
    return status_response(report.view, report.message, report.retry_after_ms, lang)


# --- issue ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product_type", "product_id", "price"),
    [
        (ProductType.STUDY, "study_123", STUDY_PRICE),
        (ProductType.AI_RESUME, "resume_credit_10", RESUME_PRICE),
    ],
)
async def test_issue_prices_from_the_catalog(
    world: World, product_type: ProductType, product_id: str, price: int
) -> None:
    issued = await world.checkout.issue(
        command(product_type=product_type, product_id=product_id, amount=price)
    )
    t = issued.transaction
    stored = world.repo.stored(t.transaction_id)
    assert (stored.status, stored.amount, stored.user_id) == (Status.CREATED, price, "u1")
    assert (stored.product_type, stored.product_id) == (product_type, product_id)
    assert stored.order_name  # the product's name when the caller gives none
    assert [h.status for h in world.repo.stored_history(t.transaction_id)] == [Status.CREATED]


async def test_issue_uses_the_catalog_name_unless_an_order_name_is_given(world: World) -> None:
    default = await issue(world)
    named = await issue(world, order_name="My study")
    assert default.order_name == "Async study: Kotlin coroutines (8 weeks)"
    assert world.repo.stored(named.transaction_id).order_name == "My study"


async def test_issue_times_and_urls(world: World) -> None:
    now = world.clock.now()
    issued = await world.checkout.issue(command(metadata={"cohort": 7}))
    t = issued.transaction
    stored = world.repo.stored(t.transaction_id)
    assert stored.created_at == now
    assert stored.expires_at == now + timedelta(minutes=30)
    assert stored.metadata == {"cohort": 7}
    assert issued.client_key == CLIENT_KEY
    assert issued.success_url == f"{PUBLIC}/api/payments/callback/success"
    fail = urlsplit(issued.fail_url)
    assert f"{fail.scheme}://{fail.netloc}{fail.path}" == f"{PUBLIC}/api/payments/callback/fail"
    # PAY_PROCESS_CANCELED arrives without orderId: the failUrl itself names the transaction
    assert parse_qs(fail.query) == {"transactionId": [t.transaction_id]}


async def test_issue_expiry_follows_the_configured_minutes(world: World) -> None:
    service = with_checkout_config(world, transaction_expire_minutes=7)
    t = (await service.issue(command())).transaction
    assert world.repo.stored(t.transaction_id).expires_at == world.clock.now() + timedelta(minutes=7)


async def test_each_issue_is_a_new_transaction(world: World) -> None:
    ids = {(await issue(world)).transaction_id for _ in range(20)}
    assert len(ids) == 20 and world.repo.count() == 20


@pytest.mark.parametrize(
    ("product_type", "product_id"),
    [(ProductType.STUDY, "no_such_study"), (ProductType.AI_RESUME, "study_123")],  # right id, wrong type
)
async def test_issue_unknown_product(world: World, product_type: ProductType, product_id: str) -> None:
    with pytest.raises(ProductNotFound) as caught:
        await issue(world, product_type=product_type, product_id=product_id)
    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_008", 404)
    assert world.repo.count() == 0


@pytest.mark.parametrize("amount", [STUDY_PRICE - 1, STUDY_PRICE + 1, 1, RESUME_PRICE])
async def test_issue_amount_differs_from_the_price(world: World, amount: int) -> None:
    with pytest.raises(AmountMismatch) as caught:
        await issue(world, amount=amount)
    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_007", 400)
    assert caught.value.details == {"expectedAmount": STUDY_PRICE}
    assert world.repo.count() == 0


async def test_issue_metadata_limit_is_4_kb_of_json(world: World) -> None:
    # {"k":"…"} is 8 bytes of JSON around the value
    at_limit = {"k": "x" * (4096 - 8)}
    await issue(world, metadata=at_limit)
    with pytest.raises(ValidationFailed) as caught:
        await issue(world, metadata={"k": "x" * (4096 - 7)})
    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_000", 400)
    assert [p.field for p in caught.value.problems] == ["metadata"]
    assert world.repo.count() == 1


# --- success callback -----------------------------------------------------------------------------


async def test_success_callback_happy_path(world: World) -> None:
    t = await issue(world)
    world.clock.advance(seconds=20)
    url = await success_callback(world, t.transaction_id, payment_key="pk_happy")

    assert url == success_page(t.transaction_id)
    stored = world.repo.stored(t.transaction_id)
    assert stored.status == PAID
    assert world.queue.grants == [t.transaction_id]
    assert stored.completed_at == APPROVED_AT
    assert stored.payment_key == "pk_happy"
    assert stored.pg_method == "CARD"
    assert stored.failure is None
    [confirm] = world.gateway.confirm_calls
    assert confirm.kwargs["order_id"] == t.transaction_id
    assert confirm.kwargs["amount"] == STUDY_PRICE  # our amount, never the browser's
    assert confirm.kwargs["payment_key"] == "pk_happy"
    assert t.transaction_id in confirm.kwargs["idempotency_key"]
    assert [h.status for h in world.repo.stored_history(t.transaction_id)] == [
        Status.CREATED,
        Status.PAYMENT_PENDING,
        Status.PAYMENT_SUCCESS,
        Status.PROVISION_PENDING,
    ]


async def test_success_callback_without_approved_at_completes_now(world: World) -> None:
    t = await issue(world)
    payment = done_payment(t.transaction_id, STUDY_PRICE)
    world.gateway.on_confirm(dataclasses.replace(payment, approved_at=None))
    world.clock.advance(seconds=5)
    await success_callback(world, t.transaction_id)
    assert world.repo.stored(t.transaction_id).completed_at == world.clock.now()


@pytest.mark.parametrize(
    "amount",
    [str(STUDY_PRICE - 1), "1", "500000", None, "", "abc", "50000.0", "-50000", "5e4", " 50000", "0x c350"],
    ids=repr,
)
async def test_success_callback_with_tampered_amount_never_confirms(world: World, amount: str | None) -> None:
    t = await issue(world)
    # The PG holds this very key for the order (the buyer's own redirect, tampered): fail it.
    world.gateway.on_find(in_progress_payment(t.transaction_id, STUDY_PRICE, payment_key="pk_1"))
    url = await success_callback(world, t.transaction_id, amount=amount)

    assert [c.operation for c in world.gateway.calls] == ["find_payment"]
    stored = world.repo.stored(t.transaction_id)
    assert stored.status == Status.PAYMENT_FAILED
    assert stored.failure_code == "PAY_003"
    page = fail_page(url)
    assert page["code"] == "PAY_003"
    assert page["transactionId"] == t.transaction_id
    assert page["message"]


@pytest.mark.parametrize("amount", ["²", "9" * 5000], ids=["superscript-two", "5000-digits"])
async def test_success_callback_with_unparseable_digit_amount_fails_cleanly(
    world: World, amount: str
) -> None:
    # str.isdigit() accepts these, int() refuses them: the callback must still answer the fail page
    t = await issue(world)
    world.gateway.on_find(in_progress_payment(t.transaction_id, STUDY_PRICE, payment_key="pk_1"))
    url = await success_callback(world, t.transaction_id, amount=amount)
    assert world.gateway.confirm_calls == []
    assert world.repo.stored(t.transaction_id).status == Status.PAYMENT_FAILED
    assert fail_page(url)["code"] == "PAY_003"


async def test_success_callback_unknown_order(world: World) -> None:
    await issue(world)
    url = await success_callback(world, "TXN_20250314_doesnotexist000")
    page = fail_page(url)
    assert page["code"] == "PAY_008"
    assert "transactionId" not in page
    assert world.gateway.calls == []


@pytest.mark.parametrize(
    ("order", "key"), [(True, None), (False, "pk_1")], ids=["no-paymentKey", "no-orderId"]
)
async def test_success_callback_missing_parameters_changes_nothing(
    world: World, order: bool, key: str | None
) -> None:
    t = await issue(world)
    url = await success_callback(world, t.transaction_id if order else None, payment_key=key)
    assert fail_page(url)["code"] == "PAY_000"
    assert status_of(world, t.transaction_id) == Status.CREATED
    assert world.gateway.calls == []


async def test_success_callback_after_expiry(world: World) -> None:
    t = await issue(world)
    world.clock.advance(minutes=30)
    url = await success_callback(world, t.transaction_id)

    assert world.gateway.calls == []
    stored = world.repo.stored(t.transaction_id)
    assert (stored.status, stored.failure_code) == (Status.PAYMENT_FAILED, "PAY_002")
    assert fail_page(url)["code"] == "PAY_002"


async def test_success_callback_just_before_expiry_confirms(world: World) -> None:
    t = await issue(world)
    world.clock.advance(minutes=30, seconds=-1)
    assert await success_callback(world, t.transaction_id) == success_page(t.transaction_id)
    assert status_of(world, t.transaction_id) == PAID


async def test_repeated_success_callback_never_confirms_twice(world: World) -> None:
    t = await issue(world)
    first = await success_callback(world, t.transaction_id)
    history = world.repo.stored_history(t.transaction_id)
    again = [await success_callback(world, t.transaction_id) for _ in range(3)]

    assert first == success_page(t.transaction_id)
    assert again == [first] * 3
    assert len(world.gateway.confirm_calls) == 1
    assert world.repo.stored_history(t.transaction_id) == history


async def test_repeated_success_callback_after_failure_shows_the_failure(world: World) -> None:
    t = await issue(world)
    world.gateway.on_confirm(
        gateway_error(GatewayErrorKind.INSUFFICIENT_FUNDS, "REJECT_CARD_PAYMENT", "no money")
    )
    first = await success_callback(world, t.transaction_id)
    second = await success_callback(world, t.transaction_id)
    assert fail_page(first) == fail_page(second)
    assert (fail_page(first)["code"], fail_page(first)["errorCode"]) == ("REJECT_CARD_PAYMENT", "PAY_004")
    assert len(world.gateway.confirm_calls) == 1


async def test_two_concurrent_success_callbacks_confirm_once(world: World) -> None:
    t = await issue(world)
    release = asyncio.Event()
    [held] = world.gateway.on_confirm(done_payment(t.transaction_id, STUDY_PRICE), hold=release)

    first = asyncio.create_task(success_callback(world, t.transaction_id))
    second = asyncio.create_task(success_callback(world, t.transaction_id))
    await asyncio.wait_for(held.entered.wait(), timeout=2)
    # while one confirm is open, the other callback answers without confirming: the frontend polls
    finished, _ = await asyncio.wait({first, second}, timeout=2, return_when=asyncio.FIRST_COMPLETED)
    assert len(finished) == 1
    assert finished.pop().result() == success_page(t.transaction_id)
    assert status_of(world, t.transaction_id) == Status.PAYMENT_PENDING
    release.set()
    urls = await asyncio.wait_for(asyncio.gather(first, second), timeout=2)

    assert urls == [success_page(t.transaction_id)] * 2
    assert len(world.gateway.confirm_calls) == 1
    assert status_of(world, t.transaction_id) == PAID
    assert [h.status for h in world.repo.stored_history(t.transaction_id)].count(Status.PAYMENT_PENDING) == 1


async def test_a_duplicate_callback_after_the_claim_never_confirms_again(world: World) -> None:
    """The second callback reads 30 while the first one's confirm is still open: it must neither
    confirm nor look up, however the PG answers; it shows the confirming page."""
    t = await issue(world)
    release = asyncio.Event()
    [held] = world.gateway.on_confirm(done_payment(t.transaction_id, STUDY_PRICE), hold=release)
    first = asyncio.create_task(success_callback(world, t.transaction_id))
    await asyncio.wait_for(held.entered.wait(), timeout=2)
    assert status_of(world, t.transaction_id) == Status.PAYMENT_PENDING

    world.clock.advance(seconds=5)  # within the claimer's budget
    assert await success_callback(world, t.transaction_id) == success_page(t.transaction_id)

    release.set()
    await asyncio.wait_for(first, timeout=2)
    assert [c.operation for c in world.gateway.calls] == ["confirm_payment"]
    assert status_of(world, t.transaction_id) == PAID


async def test_after_a_forged_claim_the_buyers_own_callback_confirms_with_the_pgs_key(world: World) -> None:
    """A forged callback with someone else's key claimed the order while the buyer had not yet
    authenticated. The buyer's callback, once the forger's budget is spent, asks the PG by orderId
    and confirms with the key the PG holds for this order, never the forged one."""
    t = await issue(world)
    world.gateway.on_confirm(gateway_error(GatewayErrorKind.NOT_FOUND, "NOT_FOUND_PAYMENT", http_status=404))
    world.gateway.on_find(NO_PAYMENT_AT_PG)  # the buyer is still in the window
    await success_callback(world, t.transaction_id, payment_key="pk_someone_elses")
    forged = world.repo.stored(t.transaction_id)
    assert (forged.status, forged.payment_key) == (Status.PAYMENT_PENDING, None)

    world.clock.advance(seconds=13)  # past the budget of the forged request
    world.gateway.on_find(in_progress_payment(t.transaction_id, STUDY_PRICE, payment_key="pk_buyer"))
    url = await success_callback(world, t.transaction_id, payment_key="pk_buyer")

    assert url == success_page(t.transaction_id)
    confirms = world.gateway.confirm_calls
    assert [c.kwargs["payment_key"] for c in confirms] == ["pk_someone_elses", "pk_buyer"]
    assert confirms[1].kwargs["idempotency_key"] != confirms[0].kwargs["idempotency_key"]
    paid = world.repo.stored(t.transaction_id)
    assert (paid.status, paid.payment_key) == (PAID, "pk_buyer")


async def test_ten_concurrent_callbacks_confirm_once(world: World) -> None:
    t = await issue(world)
    urls = await asyncio.gather(*(success_callback(world, t.transaction_id) for _ in range(10)))
    assert set(urls) == {success_page(t.transaction_id)}
    assert len(world.gateway.confirm_calls) == 1


@pytest.mark.parametrize(
    ("kind", "pg_code", "our_code"),
    [
        (GatewayErrorKind.DECLINED, "INVALID_CARD_EXPIRATION", "PAY_003"),
        (GatewayErrorKind.INSUFFICIENT_FUNDS, "REJECT_CARD_PAYMENT", "PAY_004"),
        (GatewayErrorKind.PROVIDER_ERROR, "PROVIDER_ERROR", "PAY_005"),
        (GatewayErrorKind.SESSION_EXPIRED, "NOT_FOUND_PAYMENT_SESSION", "PAY_002"),
        (GatewayErrorKind.INVALID_REQUEST, "INVALID_REQUEST", "PAY_003"),
    ],
)
async def test_confirm_refused_by_the_pg(
    world: World, kind: GatewayErrorKind, pg_code: str, our_code: str
) -> None:
    t = await issue(world)
    world.gateway.on_confirm(gateway_error(kind, pg_code, "the PG says no", http_status=400))
    if kind in KEY_MAY_BELONG_ELSEWHERE:
        # These answers are also what a forged callback's foreign key gets: the PG is asked whether
        # the key is this order's before the payment is failed.
        world.gateway.on_find(in_progress_payment(t.transaction_id, STUDY_PRICE, payment_key="pk_1"))
    url = await success_callback(world, t.transaction_id)

    stored = world.repo.stored(t.transaction_id)
    assert stored.status == Status.PAYMENT_FAILED
    assert stored.failure is not None
    assert (stored.failure.code, stored.failure.pg_code) == (our_code, pg_code)
    assert stored.failure.pg_message == "the PG says no"
    assert stored.failure.message and stored.failure.message != "the PG says no"  # ours, for the buyer
    page = fail_page(url)
    assert (page["transactionId"], page["code"], page["errorCode"], page["message"]) == (
        t.transaction_id,
        pg_code,  # the PG's word
        our_code,
        stored.failure.message,
    )
    # A refusal is final: no lookup, but for the answers a foreign key also gets.
    assert len(world.gateway.calls_to("find_payment")) == (1 if kind in KEY_MAY_BELONG_ELSEWHERE else 0)
    history = world.repo.stored_history(t.transaction_id)
    assert history[-1].status == Status.PAYMENT_FAILED
    assert history[-1].metadata["pgCode"] == pg_code


@pytest.mark.parametrize(
    "kind", [GatewayErrorKind.UNAVAILABLE, GatewayErrorKind.ALREADY_PROCESSED], ids=lambda k: k.value
)
async def test_confirm_outcome_unknown_then_lookup_done(world: World, kind: GatewayErrorKind) -> None:
    t = await issue(world)
    world.gateway.on_confirm(gateway_error(kind, "TIMEOUT", "read timed out"))
    world.gateway.on_find(done_payment(t.transaction_id, STUDY_PRICE, payment_key="pk_1"))
    url = await success_callback(world, t.transaction_id)

    assert url == success_page(t.transaction_id)
    assert status_of(world, t.transaction_id) == PAID
    assert len(world.gateway.confirm_calls) == 1
    [lookup] = world.gateway.calls_to("find_payment")
    assert lookup.kwargs["order_id"] == t.transaction_id


async def test_confirm_timeout_and_lookup_failing_stays_pending(world: World) -> None:
    t = await issue(world)
    world.gateway.on_confirm(gateway_error(GatewayErrorKind.UNAVAILABLE, "TIMEOUT", "read timed out"))
    world.gateway.on_find(gateway_error(GatewayErrorKind.UNAVAILABLE, "CONNECT_ERROR", "connection refused"))
    url = await success_callback(world, t.transaction_id)

    # a timeout is UNKNOWN, never FAILED: the PG may have charged
    assert url == success_page(t.transaction_id)
    stored = world.repo.stored(t.transaction_id)
    assert (stored.status, stored.failure) == (Status.PAYMENT_PENDING, None)
    last = world.repo.stored_history(t.transaction_id)[-1]
    assert last.status == Status.PAYMENT_PENDING
    assert "unknown" in last.message
    assert last.metadata["pgCode"] == "TIMEOUT"
    assert len(world.gateway.confirm_calls) == 1
    report = await wire_status(world, t.transaction_id)
    assert report.needs_polling and report.retry_after_ms is not None


async def test_lookup_in_progress_stays_pending(world: World) -> None:
    t = await issue(world)
    world.gateway.on_confirm(gateway_error(GatewayErrorKind.UNAVAILABLE, "TIMEOUT"))
    world.gateway.on_find(in_progress_payment(t.transaction_id, STUDY_PRICE, payment_key="pk_1"))
    url = await success_callback(world, t.transaction_id)

    assert url == success_page(t.transaction_id)
    assert status_of(world, t.transaction_id) == Status.PAYMENT_PENDING
    assert "IN_PROGRESS" in world.repo.stored_history(t.transaction_id)[-1].message


async def test_lookup_aborted_after_unknown_confirm_fails(world: World) -> None:
    t = await issue(world)
    world.gateway.on_confirm(gateway_error(GatewayErrorKind.UNAVAILABLE, "TIMEOUT"))
    world.gateway.on_find(aborted_payment(t.transaction_id, STUDY_PRICE, code="REJECT_CARD_COMPANY"))
    url = await success_callback(world, t.transaction_id)
    stored = world.repo.stored(t.transaction_id)
    assert stored.status == Status.PAYMENT_FAILED
    assert stored.failure_pg_code == "REJECT_CARD_COMPANY"
    assert (fail_page(url)["code"], fail_page(url)["errorCode"]) == ("REJECT_CARD_COMPANY", "PAY_003")


async def test_pg_reports_expired_payment(world: World) -> None:
    t = await issue(world)
    world.gateway.on_confirm(
        aborted_payment(
            t.transaction_id,
            STUDY_PRICE,
            status=PgPaymentStatus.EXPIRED,
            code="EXPIRED_PAYMENT",
            message="결제 유효 시간이 지나 만료된 결제입니다.",
        )
    )
    url = await success_callback(world, t.transaction_id)
    failure = world.repo.stored(t.transaction_id).failure
    assert failure is not None
    assert (failure.code, failure.pg_code, failure.pg_message) == (
        "PAY_002",
        "EXPIRED_PAYMENT",
        "결제 유효 시간이 지나 만료된 결제입니다.",
    )
    assert failure.message == "The payment session expired before it was confirmed."
    assert (fail_page(url)["code"], fail_page(url)["errorCode"]) == ("EXPIRED_PAYMENT", "PAY_002")


async def test_virtual_account_waits_for_the_deposit(world: World) -> None:
    t = await issue(world, method=Method.VIRTUAL_ACCOUNT)
    due = world.clock.now() + timedelta(days=3)
    world.gateway.on_confirm(waiting_for_deposit_payment(t.transaction_id, STUDY_PRICE, due_date=due))
    url = await success_callback(world, t.transaction_id, payment_key="pk_va_1")

    assert url == success_page(t.transaction_id)  # the success page shows the account and polls
    stored = world.repo.stored(t.transaction_id)
    assert stored.status == Status.PAYMENT_PENDING
    assert (stored.va_bank_code, stored.va_account_number, stored.va_due_date) == (
        "88",
        "X6516657813646",
        due,
    )
    assert stored.va_secret == "ps_secret_abc123"  # kept to verify the deposit webhook
    assert stored.expires_at == due
    assert stored.pg_method == PaymentMethod.VIRTUAL_ACCOUNT.value

    report = await wire_status(world, t.transaction_id)
    assert report.virtual_account is not None
    assert (report.virtual_account.bank_code, report.virtual_account.account_number) == (
        "88",
        "X6516657813646",
    )
    assert report.virtual_account.due_date == due
    assert report.needs_polling and not report.is_settled
    assert "deposit" in report.message


async def test_virtual_account_already_past_its_due_date_fails(world: World) -> None:
    t = await issue(world, method=Method.VIRTUAL_ACCOUNT)
    due = world.clock.now() - timedelta(seconds=1)
    world.gateway.on_confirm(waiting_for_deposit_payment(t.transaction_id, STUDY_PRICE, due_date=due))
    url = await success_callback(world, t.transaction_id)
    stored = world.repo.stored(t.transaction_id)
    assert (stored.status, stored.failure_code) == (Status.PAYMENT_FAILED, "PAY_002")
    assert fail_page(url)["code"] == "PAY_002"


async def test_a_queue_outage_does_not_fail_the_paid_buyers_redirect(world: World) -> None:
    t = await issue(world)
    world.queue.fail_with = ConnectionError("redis is down")
    url = await success_callback(world, t.transaction_id)
    # the money is taken: the buyer sees success and the sweeper queues the grant later
    assert url == success_page(t.transaction_id)
    assert status_of(world, t.transaction_id) == PAID


async def test_issue_with_a_hosted_checkout_window(world: World) -> None:
    service = with_checkout_config(world, checkout_url="https://mock.example.com/_mock/checkout")
    issued = await service.issue(
        command(product_type=ProductType.AI_RESUME, product_id="resume_credit_10", amount=RESUME_PRICE)
    )
    assert issued.checkout_url is not None
    parts = urlsplit(issued.checkout_url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://mock.example.com/_mock/checkout"
    assert query["orderId"] == issued.transaction.transaction_id
    assert query["amount"] == str(RESUME_PRICE)
    assert query["clientKey"] == CLIENT_KEY
    assert (query["successUrl"], query["failUrl"]) == (issued.success_url, issued.fail_url)
    assert (await world.checkout.issue(command())).checkout_url is None  # not configured: none


@pytest.mark.parametrize(
    ("order_id_suffix", "amount"),
    [("", STUDY_PRICE - 1000), ("", 1), ("_other", STUDY_PRICE)],
    ids=["amount", "one-won", "order"],
)
async def test_pg_payment_that_does_not_match_ours_fails(
    world: World, order_id_suffix: str, amount: int
) -> None:
    t = await issue(world)
    world.gateway.on_confirm(done_payment(t.transaction_id + order_id_suffix, amount))
    url = await success_callback(world, t.transaction_id)
    stored = world.repo.stored(t.transaction_id)
    assert (stored.status, stored.failure_code) == (Status.PAYMENT_FAILED, "PAY_003")
    assert fail_page(url)["code"] == "PAY_003"


# --- fail callback --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pg_code", "our_code", "our_message"),
    [
        ("REJECT_CARD_PAYMENT", "PAY_004", "Insufficient balance or card limit."),
        ("EXCEED_MAX_AMOUNT", "PAY_004", "Insufficient balance or card limit."),
        ("PAY_PROCESS_CANCELED", "PAY_003", "The payment was cancelled in the payment window."),
        ("USER_CANCEL", "PAY_003", "The payment was cancelled in the payment window."),
        ("REJECT_CARD_COMPANY", "PAY_003", "The payment was declined."),
        ("A_CODE_NOBODY_DOCUMENTED", "PAY_003", "The payment was declined."),
    ],
)
async def test_fail_callback_fails_a_created_transaction(
    world: World, pg_code: str, our_code: str, our_message: str
) -> None:
    t = await issue(world)
    world.gateway.on_find(NO_PAYMENT_AT_PG)
    url = await fail_callback(
        world,
        transaction_id=t.transaction_id,
        order_id=None,
        code=pg_code,
        message="PG의 메시지",
    )
    stored = world.repo.stored(t.transaction_id)
    assert stored.status == Status.PAYMENT_FAILED
    assert stored.failure == Failure(our_code, our_message, pg_code, "PG의 메시지")
    assert fail_page(url) == {
        "transactionId": t.transaction_id,
        "code": pg_code,
        "message": our_message,
        "errorCode": our_code,
    }
    assert list(fail_page(url)) == ["transactionId", "code", "message", "errorCode"]  # in this order
    assert [c.operation for c in world.gateway.calls] == ["find_payment"]  # is it really failed?
    last = world.repo.stored_history(t.transaction_id)[-1]
    assert (last.message, last.metadata["pgCode"], last.metadata["pgMessage"]) == (
        our_message,
        pg_code,
        "PG의 메시지",
    )
    wire = await wire_status(world, t.transaction_id)
    assert wire.failure == FailureBody(our_code, our_message, pg_code, "PG의 메시지")
    assert wire.message == our_message


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("REJECT_CARD_COMPANY\x00\x1b[0m", id="control-characters"),
        pytest.param("reject_card_company", id="lower-case"),
        pytest.param("<script>alert(1)</script>", id="markup"),
        pytest.param("X" * 65, id="too-long"),
        pytest.param("REJECT CARD", id="space"),
        pytest.param("ＲＥＪＥＣＴ", id="full-width"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
    ],
)
async def test_a_fail_callback_code_that_is_no_pg_code_is_not_kept(world: World, code: str | None) -> None:
    t = await issue(world)
    world.gateway.on_find(NO_PAYMENT_AT_PG)
    url = await fail_callback(world, transaction_id=t.transaction_id, order_id=None, code=code, message=None)
    stored = world.repo.stored(t.transaction_id)
    assert stored.failure == Failure("PAY_003", "The payment was not completed.", None, None)
    assert fail_page(url) == {
        "transactionId": t.transaction_id,
        "code": "PAY_003",
        "message": "The payment was not completed.",
        "errorCode": "PAY_003",
    }
    noted = world.repo.stored_history(t.transaction_id)[-1].metadata.get("callbackCode")
    assert noted == (printable_text(code, 64) if code else None)


def test_a_fail_redirect_answered_without_the_database_says_what_its_code_means(world: World) -> None:
    """The database is away: the callback is queued for a replay and the buyer still lands on the
    fail page, with the PG's code, ours and our message (nothing is stored)."""
    cancelled = world.checkout.window_failure_page("TXN_1", code="PAY_PROCESS_CANCELED", message="취소")
    garbled = world.checkout.window_failure_page("TXN_1", code="<b>", message=None)

    assert fail_page(page(cancelled)) == {
        "transactionId": "TXN_1",
        "code": "PAY_PROCESS_CANCELED",
        "message": "The payment was cancelled in the payment window.",
        "errorCode": "PAY_003",
    }
    assert fail_page(page(garbled)) == {
        "transactionId": "TXN_1",
        "code": "PAY_003",
        "message": "The payment was not completed.",
        "errorCode": "PAY_003",
    }
    assert world.gateway.calls == []


async def test_fail_callback_by_order_id(world: World) -> None:
    t = await issue(world)
    world.gateway.on_find(NO_PAYMENT_AT_PG)
    url = await fail_callback(
        world, transaction_id=None, order_id=t.transaction_id, code="REJECT_CARD_COMPANY", message="refused"
    )
    assert status_of(world, t.transaction_id) == Status.PAYMENT_FAILED
    assert fail_page(url)["transactionId"] == t.transaction_id


async def test_fail_callback_on_a_paid_transaction_changes_nothing(world: World) -> None:
    t = await issue(world)
    await success_callback(world, t.transaction_id)
    before, history = world.repo.stored(t.transaction_id), world.repo.stored_history(t.transaction_id)
    url = await fail_callback(
        world,
        transaction_id=t.transaction_id,
        order_id=t.transaction_id,
        code="PAY_PROCESS_CANCELED",
        message="late",
    )
    assert world.repo.stored(t.transaction_id) == before
    assert world.repo.stored_history(t.transaction_id) == history
    assert url == success_page(t.transaction_id)


async def test_fail_callback_while_the_confirm_is_running_changes_nothing(world: World) -> None:
    t = await issue(world)
    release = asyncio.Event()
    [held] = world.gateway.on_confirm(done_payment(t.transaction_id, STUDY_PRICE), hold=release)
    paying = asyncio.create_task(success_callback(world, t.transaction_id))
    await asyncio.wait_for(held.entered.wait(), timeout=2)
    url = await fail_callback(
        world,
        transaction_id=t.transaction_id,
        order_id=None,
        code="PAY_PROCESS_CANCELED",
        message="back button",
    )
    assert url == success_page(t.transaction_id)  # the PG has the payment: the frontend polls
    assert status_of(world, t.transaction_id) == Status.PAYMENT_PENDING
    release.set()
    assert await paying == success_page(t.transaction_id)
    assert status_of(world, t.transaction_id) == PAID


async def test_fail_callback_for_unknown_transaction(world: World) -> None:
    url = await fail_callback(
        world, transaction_id="TXN_nope_000000", order_id=None, code="PAY_PROCESS_CANCELED", message="x"
    )
    assert fail_page(url)["code"] == "PAY_008"


# --- status ---------------------------------------------------------------------------------------


async def test_status_for_the_owner(world: World) -> None:
    t = await issue(world)
    report = await wire_status(world, t.transaction_id)
    assert (report.transaction_id, report.status, report.status_code, report.amount) == (
        t.transaction_id,
        "CREATED",
        10,
        STUDY_PRICE,
    )
    assert (report.is_settled, report.needs_polling, report.retry_after_ms) == (False, True, 1000)
    assert report.completed_at is None and report.failure is None and report.virtual_account is None
    world.clock.advance(seconds=3)
    assert (await wire_status(world, t.transaction_id)).retry_after_ms == 3000
    assert (await wire_status(world, t.transaction_id, attempt=0)).retry_after_ms == 1000


async def test_status_of_another_users_transaction_is_not_found(world: World) -> None:
    t = await issue(world, user_id="alice")
    with pytest.raises(TransactionNotFound) as caught:
        await world.queries.get_status(user_id="mallory", transaction_id=t.transaction_id, attempt=None)
    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_008", 404)
    with pytest.raises(TransactionNotFound):
        await world.queries.get_status(user_id="alice", transaction_id="TXN_missing_0001", attempt=None)


async def test_status_once_paid(world: World) -> None:
    t = await issue(world)
    await success_callback(world, t.transaction_id)
    report = await wire_status(world, t.transaction_id, attempt=1)
    assert (report.status, report.status_code, report.is_settled, report.needs_polling) == (
        "PROVISION_PENDING",
        45,
        True,
        False,
    )
    assert report.retry_after_ms is None
    assert report.completed_at == APPROVED_AT


async def test_status_of_a_failed_payment_carries_the_failure(world: World) -> None:
    t = await issue(world)
    world.gateway.on_confirm(
        gateway_error(GatewayErrorKind.INSUFFICIENT_FUNDS, "REJECT_CARD_PAYMENT", "한도 초과")
    )
    await success_callback(world, t.transaction_id)
    report = await wire_status(world, t.transaction_id)
    assert report.status == "PAYMENT_FAILED" and report.retry_after_ms is None
    assert report.failure == FailureBody(
        "PAY_004", "Insufficient balance or card limit.", "REJECT_CARD_PAYMENT", "한도 초과"
    )
    assert report.message == "Insufficient balance or card limit."
    # In Korean (no Accept-Language): our words translated, the PG's as they came.
    korean = await wire_status(world, t.transaction_id, lang="ko")
    assert korean.failure == FailureBody(
        "PAY_004", "잔액 또는 카드 한도가 부족합니다.", "REJECT_CARD_PAYMENT", "한도 초과"
    )
    assert korean.message == "잔액 또는 카드 한도가 부족합니다."


# --- detail and list ------------------------------------------------------------------------------


async def test_detail_with_history_in_order(world: World) -> None:
    t = await issue(world)
    world.clock.advance(seconds=10)
    await success_callback(world, t.transaction_id)
    detail = await world.queries.get_detail(user_id="u1", is_admin=False, transaction_id=t.transaction_id)
    assert detail.transaction.status == PAID
    assert [h.status for h in detail.history] == [
        Status.CREATED,
        Status.PAYMENT_PENDING,
        Status.PAYMENT_SUCCESS,
        Status.PROVISION_PENDING,
    ]
    times = [h.created_at for h in detail.history]
    assert times == sorted(times) and times[0] < times[1]


async def test_detail_of_another_users_transaction(world: World) -> None:
    t = await issue(world, user_id="alice")
    with pytest.raises(TransactionNotFound):
        await world.queries.get_detail(user_id="mallory", is_admin=False, transaction_id=t.transaction_id)
    detail = await world.queries.get_detail(user_id="ops", is_admin=True, transaction_id=t.transaction_id)
    assert detail.transaction.user_id == "alice"
    with pytest.raises(TransactionNotFound):
        await world.queries.get_detail(user_id="ops", is_admin=True, transaction_id="TXN_missing_0001")


async def _issue_five(world: World) -> list[str]:
    ids = []
    for _ in range(5):
        ids.append((await issue(world)).transaction_id)
        world.clock.advance(seconds=1)
    await issue(world, user_id="somebody_else")
    return ids


async def test_list_newest_first_and_only_mine(world: World) -> None:
    ids = await _issue_five(world)
    page = await world.queries.list_transactions(user_id="u1", statuses=None, cursor=None, limit=20)
    assert [t.transaction_id for t in page.items] == ids[::-1]
    assert page.next_cursor is None


async def test_list_filters_by_status(world: World) -> None:
    ids = await _issue_five(world)
    await success_callback(world, ids[1])
    world.gateway.on_find(NO_PAYMENT_AT_PG)
    await fail_callback(world, transaction_id=ids[3], order_id=None, code="X", message="x")
    paid = await world.queries.list_transactions(user_id="u1", statuses=[PAID], cursor=None, limit=20)
    assert [t.transaction_id for t in paid.items] == [ids[1]]
    settled = await world.queries.list_transactions(
        user_id="u1", statuses=[PAID, Status.PAYMENT_FAILED], cursor=None, limit=20
    )
    assert [t.transaction_id for t in settled.items] == [ids[3], ids[1]]


async def test_list_cursor_pagination_across_three_pages(world: World) -> None:
    ids = await _issue_five(world)
    seen: list[list[str]] = []
    cursor: str | None = None
    for _ in range(3):
        page = await world.queries.list_transactions(user_id="u1", statuses=None, cursor=cursor, limit=2)
        seen.append([t.transaction_id for t in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]
    assert cursor is None


# --- expiry ---------------------------------------------------------------------------------------


async def test_expire_stale_moves_only_expired_created(world: World) -> None:
    old_a, old_b = await issue(world), await issue(world)
    claimed = await issue(world)
    world.gateway.on_confirm(gateway_error(GatewayErrorKind.UNAVAILABLE, "TIMEOUT"))
    world.gateway.on_find(gateway_error(GatewayErrorKind.UNAVAILABLE, "TIMEOUT"))
    await success_callback(world, claimed.transaction_id)  # stays 30: its outcome is unknown
    paid = await issue(world)
    await success_callback(world, paid.transaction_id)
    world.clock.advance(minutes=20)
    fresh = await issue(world)
    world.clock.advance(minutes=10)

    assert await world.sweeper.expire_stale() == 2
    for t in (old_a, old_b):
        stored = world.repo.stored(t.transaction_id)
        assert (stored.status, stored.failure_code) == (Status.PAYMENT_FAILED, "PAY_002")
    assert status_of(world, fresh.transaction_id) == Status.CREATED
    assert status_of(world, claimed.transaction_id) == Status.PAYMENT_PENDING
    assert status_of(world, paid.transaction_id) == PAID
    assert await world.sweeper.expire_stale() == 0  # nothing left to do


async def test_products_are_the_catalog(world: World) -> None:
    products = {(p.product_type, p.product_id): p.amount for p in await world.queries.list_products()}
    assert products[(ProductType.STUDY, "study_123")] == STUDY_PRICE
    assert products[(ProductType.AI_RESUME, "resume_credit_10")] == RESUME_PRICE
