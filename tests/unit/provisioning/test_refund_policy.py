"""The refund policy (app.core.refund_policy.decide_refund_amount), exhaustively: who, how much, when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.core.domain import (
    REFUNDABLE_STATUSES,
    Forbidden,
    InvalidTransition,
    Method,
    PaymentError,
    ProductType,
    Status,
    Transaction,
    ValidationFailed,
)
from app.core.refund_policy import (
    RefundRefused,
    RefundRequester,
    decide_refund_amount,
    study_refundable_amount,
)
from app.http.errors import http_status_of

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
KST = timezone(timedelta(hours=9))
WINDOW = 7
OWNER = RefundRequester(user_id="owner")
ADMIN = RefundRequester(user_id="admin-1", is_admin=True)
SYSTEM = RefundRequester(user_id="system", is_system=True)


def txn(
    *,
    status: Status = Status.PROVISION_SUCCESS,
    product_type: ProductType = ProductType.AI_RESUME,
    amount: int = 50_000,
    refunded: int = 0,
    paid_days_ago: float | None = 1,
    created_days_ago: float = 1,
    metadata: dict[str, Any] | None = None,
) -> Transaction:
    created = NOW - timedelta(days=created_days_ago)
    return Transaction(
        provider="TOSS",
        transaction_id="TXN_20250314_policy",
        user_id="owner",
        product_type=product_type,
        product_id="study_123" if product_type == ProductType.STUDY else "resume_credit_10",
        order_name="policy test",
        amount=amount,
        method=Method.CARD,
        status=status,
        created_at=created,
        updated_at=created,
        expires_at=created + timedelta(minutes=30),
        completed_at=None if paid_days_ago is None else NOW - timedelta(days=paid_days_ago),
        metadata=metadata or {},
        refunded_amount=refunded,
        refund_reserved_amount=refunded,
    )


def decide(
    transaction: Transaction,
    requester: RefundRequester,
    amount: int | None = None,
    *,
    starts_at: datetime | None = None,
) -> int:
    return decide_refund_amount(
        transaction, requester, amount, NOW, window_days=WINDOW, study_starts_at=starts_at
    )


def decide_study(
    starts_in: timedelta, requester: RefundRequester, requested: int | None = None, **kwargs: Any
) -> int:
    """A STUDY purchase whose catalog entry starts `starts_in` from now."""
    transaction = txn(product_type=ProductType.STUDY, **kwargs)
    return decide(transaction, requester, requested, starts_at=(NOW + starts_in).astimezone(KST))


def assert_error(error: PaymentError, code: str, http_status: int) -> None:
    assert (error.code, http_status_of(error)) == (code, http_status)


# --- owners: full refunds within the window ---------------------------------------------------------


@pytest.mark.parametrize("status", sorted(REFUNDABLE_STATUSES))
def test_owner_gets_a_full_refund_within_the_window(status: Status) -> None:
    assert decide(txn(status=status), OWNER) == 50_000
    assert decide(txn(status=status), OWNER, 50_000) == 50_000  # naming the full amount is fine


def test_refundable_by_request_is_exactly_40_and_50() -> None:
    assert set(REFUNDABLE_STATUSES) == {Status.PAYMENT_SUCCESS, Status.PROVISION_SUCCESS}


@pytest.mark.parametrize("days", [0, 3.5, 6.999, 7])
def test_owner_within_the_window_including_the_last_moment(days: float) -> None:
    assert decide(txn(paid_days_ago=days), OWNER) == 50_000


@pytest.mark.parametrize("days", [7.0001, 8, 30, 365])
def test_owner_after_the_window_is_refused_with_auth_002(days: float) -> None:
    with pytest.raises(RefundRefused) as caught:
        decide(txn(paid_days_ago=days), OWNER)
    assert_error(caught.value, "AUTH_002", 403)
    assert isinstance(caught.value, Forbidden)
    assert "7 days" in caught.value.message


def test_window_counts_from_completed_at_not_created_at() -> None:
    # created long ago (a virtual account that waited), paid yesterday: within the window
    assert decide(txn(created_days_ago=20, paid_days_ago=1), OWNER) == 50_000
    # without completedAt the creation time counts
    with pytest.raises(RefundRefused):
        decide(txn(created_days_ago=8, paid_days_ago=None), OWNER)
    assert decide(txn(created_days_ago=2, paid_days_ago=None), OWNER) == 50_000


@pytest.mark.parametrize("amount", [1, 10_000, 49_999, 50_001])
def test_owner_partial_or_other_amount_is_refused(amount: int) -> None:
    with pytest.raises(RefundRefused) as caught:
        decide(txn(), OWNER, amount)
    assert_error(caught.value, "AUTH_002", 403)
    assert caught.value.details == {"refundableAmount": 50_000}


@pytest.mark.parametrize("amount", [0, -1, -50_000])
@pytest.mark.parametrize("requester", [OWNER, ADMIN])
def test_non_positive_amount_is_a_validation_error(amount: int, requester: RefundRequester) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decide(txn(), requester, amount)
    assert_error(caught.value, "PAY_000", 400)


@pytest.mark.parametrize(
    "starts_at", ["2099-01-01", "2099-01-01T00:00:00+09:00", "not a date", 1_742_000_000]
)
def test_metadata_never_moves_the_study_start(starts_at: object) -> None:
    """Attack: `metadata.studyStartsAt: "2099-01-01"` sent at issue once meant a 100 % refund forever.

    The policy reads only the catalog's start (here 30 days ago: nothing is refundable any more).
    """
    transaction = txn(product_type=ProductType.STUDY, metadata={"studyStartsAt": starts_at}, paid_days_ago=1)
    with pytest.raises(RefundRefused) as caught:
        decide(transaction, OWNER, starts_at=NOW - timedelta(days=30))
    assert_error(caught.value, "AUTH_002", 403)


def test_metadata_on_a_product_without_a_start_changes_nothing() -> None:
    transaction = txn(metadata={"studyStartsAt": (NOW + timedelta(days=3)).isoformat()}, paid_days_ago=10)
    with pytest.raises(RefundRefused):
        decide(transaction, OWNER)


# --- admins: any amount up to the balance ------------------------------------------------------------


def test_admin_refunds_any_amount_up_to_the_balance_once_granted() -> None:
    assert decide(txn(), ADMIN) == 50_000
    assert decide(txn(), ADMIN, 1) == 1
    assert decide(txn(), ADMIN, 12_345) == 12_345
    assert decide(txn(), ADMIN, 50_000) == 50_000


def test_before_the_grant_only_a_full_refund_is_possible() -> None:
    """At 40 the grant is still to come: a partial refund would leave a grant for money returned."""
    paid = txn(status=Status.PAYMENT_SUCCESS)
    assert decide(paid, ADMIN) == 50_000
    assert decide(paid, ADMIN, 50_000) == 50_000
    with pytest.raises(InvalidTransition) as caught:
        decide(paid, ADMIN, 12_345)
    assert_error(caught.value, "PAY_001", 409)
    assert caught.value.details == {"refundableAmount": 50_000}


def test_admin_refund_counts_what_was_already_refunded() -> None:
    assert decide(txn(refunded=20_000), ADMIN) == 30_000
    assert decide(txn(refunded=20_000), ADMIN, 30_000) == 30_000
    with pytest.raises(ValidationFailed) as caught:
        decide(txn(refunded=20_000), ADMIN, 30_001)
    assert_error(caught.value, "PAY_000", 400)


def test_admin_over_the_balance_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        decide(txn(), ADMIN, 50_001)
    assert_error(caught.value, "PAY_000", 400)
    assert "50001" in caught.value.message


def test_admin_is_not_bound_by_the_window_or_the_study_rule() -> None:
    assert decide(txn(paid_days_ago=365), ADMIN) == 50_000
    assert decide_study(timedelta(days=-30), ADMIN, paid_days_ago=40) == 50_000
    assert decide_study(timedelta(days=-30), ADMIN, 5_000, paid_days_ago=40) == 5_000


def test_nothing_left_to_refund_is_a_state_error() -> None:
    for requester in (OWNER, ADMIN):
        with pytest.raises(InvalidTransition) as caught:
            decide(txn(refunded=50_000), requester)
        assert_error(caught.value, "PAY_001", 409)


# --- STUDY: 100% before the start, 50% within 7 days after, nothing later ----------------------------


@pytest.mark.parametrize(
    ("starts_in", "expected"),
    [
        (timedelta(days=30), 50_000),
        (timedelta(seconds=1), 50_000),
        (timedelta(0), 25_000),  # at the start: the half-refund period begins
        (timedelta(days=-1), 25_000),
        (timedelta(days=-7) + timedelta(seconds=1), 25_000),
    ],
)
def test_study_owner_refund_follows_the_study_rule(starts_in: timedelta, expected: int) -> None:
    assert decide_study(starts_in, OWNER) == expected
    assert decide_study(starts_in, OWNER, expected) == expected


@pytest.mark.parametrize("starts_in", [timedelta(days=-7), timedelta(days=-8), timedelta(days=-100)])
def test_study_owner_refund_after_seven_days_from_the_start_is_refused(starts_in: timedelta) -> None:
    with pytest.raises(RefundRefused) as caught:
        decide_study(starts_in, OWNER)
    assert_error(caught.value, "AUTH_002", 403)


def test_study_owner_must_request_exactly_the_allowed_amount() -> None:
    with pytest.raises(RefundRefused) as caught:
        decide_study(timedelta(days=-2), OWNER, 50_000)
    assert caught.value.details == {"refundableAmount": 25_000}
    with pytest.raises(RefundRefused) as caught:
        decide_study(timedelta(days=-2), OWNER, 10_000)
    assert caught.value.details == {"refundableAmount": 25_000}
    with pytest.raises(RefundRefused) as caught:
        decide_study(timedelta(days=2), OWNER, 25_000)
    assert caught.value.details == {"refundableAmount": 50_000}


def test_study_rule_replaces_the_window() -> None:
    # paid 30 days ago, but the study has not started: a full refund
    assert decide_study(timedelta(days=1), OWNER, paid_days_ago=30) == 50_000


def test_study_half_refund_of_an_odd_amount_rounds_down() -> None:
    assert decide_study(timedelta(days=-1), OWNER, amount=9_999) == 4_999


def test_study_without_a_start_in_the_catalog_follows_the_window() -> None:
    transaction = txn(product_type=ProductType.STUDY, paid_days_ago=1)
    assert decide(transaction, OWNER, starts_at=None) == 50_000
    late = txn(product_type=ProductType.STUDY, paid_days_ago=8)
    with pytest.raises(RefundRefused):
        decide(late, OWNER, starts_at=None)


def test_study_rule_counts_what_was_refunded_already() -> None:
    """The owner's share is 50 % of the price in all after the start, partial refunds included."""
    assert decide_study(timedelta(days=-1), OWNER, refunded=10_000) == 15_000
    with pytest.raises(RefundRefused) as caught:
        decide_study(timedelta(days=-1), OWNER, refunded=40_000)
    assert_error(caught.value, "AUTH_002", 403)
    assert caught.value.details == {"refundableAmount": 0}
    # before the start, all that is left
    assert decide_study(timedelta(days=1), OWNER, refunded=40_000) == 10_000


def test_study_refundable_amount_directly() -> None:
    start = NOW
    assert study_refundable_amount(50_000, start, start - timedelta(microseconds=1)) == 50_000
    assert study_refundable_amount(50_000, start, start) == 25_000
    assert (
        study_refundable_amount(50_000, start, start + timedelta(days=7) - timedelta(microseconds=1))
        == 25_000
    )
    assert study_refundable_amount(50_000, start, start + timedelta(days=7)) == 0


# --- the system: a failed grant only -------------------------------------------------------------


def test_system_refunds_the_whole_balance_of_a_failed_grant() -> None:
    assert decide(txn(status=Status.PROVISION_FAILED), SYSTEM) == 50_000
    assert decide(txn(status=Status.PROVISION_FAILED, refunded=10_000), SYSTEM) == 40_000
    # neither the window nor the study rule applies: the buyer never got the purchase
    assert decide(txn(status=Status.PROVISION_FAILED, paid_days_ago=400), SYSTEM) == 50_000
    assert decide_study(timedelta(days=-100), SYSTEM, status=Status.PROVISION_FAILED) == 50_000


@pytest.mark.parametrize("status", [s for s in Status if s != Status.PROVISION_FAILED])
def test_system_refund_of_anything_but_51_is_a_state_error(status: Status) -> None:
    with pytest.raises(InvalidTransition) as caught:
        decide(txn(status=status), SYSTEM)
    assert_error(caught.value, "PAY_001", 409)


# --- states nobody may refund by request ------------------------------------------------------------


@pytest.mark.parametrize("status", [s for s in Status if s not in REFUNDABLE_STATUSES])
@pytest.mark.parametrize("requester", [OWNER, ADMIN], ids=["owner", "admin"])
def test_non_refundable_states_are_refused_with_pay_001(status: Status, requester: RefundRequester) -> None:
    with pytest.raises(InvalidTransition) as caught:
        decide(txn(status=status), requester)
    assert_error(caught.value, "PAY_001", 409)


def test_state_is_checked_before_the_policy() -> None:
    """A refunded transaction out of the window is a state error (409), not a policy refusal (403)."""
    with pytest.raises(InvalidTransition):
        decide(txn(status=Status.REFUNDED, paid_days_ago=30), OWNER)
