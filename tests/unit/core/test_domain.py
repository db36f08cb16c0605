"""The transaction's state machine, its errors and the polling schedule (docs/api.md)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest

from app.core import domain
from app.core.domain import (
    POLL_SCHEDULE_MS,
    VIRTUAL_ACCOUNT_POLL_CEILING_MS,
    PaymentError,
    Status,
    can_transition,
    new_transaction_id,
    retry_after_ms,
)
from app.http.errors import HTTP_STATUS, http_status_of
from app.messages import Text

S = Status
# docs/api.md's table, written out again on purpose: the test must not read the table it checks.
SPEC_ALLOWED = {
    (10, 30),
    (10, 41),
    (30, 40),
    (30, 41),
    (40, 45),
    (40, 90),
    (45, 50),
    (45, 51),
    (50, 90),
    (51, 90),
    (90, 95),
}
ALL_CODES = [10, 30, 40, 41, 45, 50, 51, 90, 95]


def test_the_nine_statuses_have_the_specs_codes_and_names() -> None:
    assert {s.name: int(s) for s in Status} == {
        "CREATED": 10,
        "PAYMENT_PENDING": 30,
        "PAYMENT_SUCCESS": 40,
        "PAYMENT_FAILED": 41,
        "PROVISION_PENDING": 45,
        "PROVISION_SUCCESS": 50,
        "PROVISION_FAILED": 51,
        "REFUND_REQUESTED": 90,
        "REFUNDED": 95,
    }


@pytest.mark.parametrize(
    ("current", "target"),
    list(itertools.product(ALL_CODES, ALL_CODES)),
    ids=[f"{a}->{b}" for a, b in itertools.product(ALL_CODES, ALL_CODES)],
)
def test_transition_table(current: int, target: int) -> None:
    assert can_transition(Status(current), Status(target)) is ((current, target) in SPEC_ALLOWED)


def test_the_table_has_exactly_the_eleven_spec_transitions() -> None:
    allowed = {(a, b) for a, b in itertools.product(ALL_CODES, ALL_CODES) if can_transition(S(a), S(b))}
    assert allowed == SPEC_ALLOWED


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_settled_and_polling_flags(status: Status) -> None:
    settled = int(status) >= 40  # docs/api.md: the outcome is known at 40 and above
    assert status.is_settled is settled
    assert status.needs_polling is (not settled)


def test_refunded_and_failed_are_terminal() -> None:
    for final in (S.PAYMENT_FAILED, S.REFUNDED):
        assert not any(can_transition(final, other) for other in Status)


# --- errors ---------------------------------------------------------------------------------------

SPEC_ERRORS: dict[str, tuple[str, int]] = {
    "ValidationFailed": ("PAY_000", 400),
    "InvalidTransition": ("PAY_001", 409),
    "AmountMismatch": ("PAY_007", 400),
    "TransactionNotFound": ("PAY_008", 404),
    "ProductNotFound": ("PAY_008", 404),
    "IdempotencyKeyReused": ("PAY_009", 422),
    "IdempotencyKeyInProgress": ("PAY_010", 409),
    "Unauthenticated": ("AUTH_001", 401),
    "Forbidden": ("AUTH_002", 403),
}
# Codes no exception carries: they describe a failed transaction (`failure.code`), with the HTTP
# status they would have as an error.
FAILURE_CODES: dict[str, int] = {
    "PAY_002": 400,
    "PAY_003": 400,
    "PAY_004": 402,
    "PAY_005": 502,
    "PAY_006": 500,
}


def _all_subclasses(cls: type[PaymentError]) -> set[type[PaymentError]]:
    found: set[type[PaymentError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_payment_error_is_one_of_the_specs_codes() -> None:
    # A new error class without a documented code fails here until it is added to the table above.
    assert {c.__name__ for c in _all_subclasses(PaymentError) if c.__module__ == domain.__name__} == set(
        SPEC_ERRORS
    )


@pytest.mark.parametrize(("name", "expected"), sorted(SPEC_ERRORS.items()))
def test_error_code_and_http_status(name: str, expected: tuple[str, int]) -> None:
    error_class: type[PaymentError] = getattr(domain, name)
    error = error_class()
    assert (error.code, http_status_of(error)) == expected
    assert error.message  # a default human message
    assert str(error) == error.message


def test_error_carries_message_and_details() -> None:
    text = Text("amount 1원이 다릅니다", "amount 1 differs")
    error = domain.AmountMismatch(text, details={"expectedAmount": 50000})
    assert (error.text, error.message) == (text, "amount 1 differs")  # message: English, for logs
    assert error.details == {"expectedAmount": 50000}


def test_every_spec_code_is_named_and_has_an_http_status() -> None:
    codes = {code for code, _ in SPEC_ERRORS.values()} | set(FAILURE_CODES)
    assert codes == {f"PAY_{n:03d}" for n in range(11)} | {"AUTH_001", "AUTH_002"}
    assert {c.value for c in domain.ErrorCode} == codes
    for code, status in FAILURE_CODES.items():
        assert HTTP_STATUS[domain.ErrorCode(code)] == status


# --- transaction ids ------------------------------------------------------------------------------

TOSS_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def test_transaction_id_is_a_valid_toss_order_id_and_unique() -> None:
    ids = [new_transaction_id(NOW) for _ in range(10_000)]
    bad = [i for i in ids if not TOSS_ORDER_ID.match(i)]
    assert bad == []
    assert len(set(ids)) == len(ids)


def test_transaction_ids_drawn_at_the_same_instant_differ_in_a_long_random_part() -> None:
    a, b = new_transaction_id(NOW), new_transaction_id(NOW)
    assert a != b
    # after the date prefix: at least 16 url-safe characters (≥ 96 bits), so ids cannot be guessed
    for tid in (a, b):
        assert len(tid.split("_", 2)[-1]) >= 16


def _transaction(status: Status, expires_at: datetime) -> domain.Transaction:
    return domain.Transaction(
        provider="TOSS",
        transaction_id="TXN_test_000001",
        user_id="u1",
        product_type=domain.ProductType.STUDY,
        product_id="study_123",
        order_name="Study",
        amount=50000,
        method=domain.Method.CARD,
        status=status,
        created_at=NOW,
        updated_at=NOW,
        expires_at=expires_at,
    )


def test_only_a_created_transaction_past_its_expiry_is_expired() -> None:
    created = _transaction(S.CREATED, NOW)
    assert created.is_expired(NOW)  # expiresAt itself is already too late
    assert not _transaction(S.CREATED, NOW.replace(second=54)).is_expired(NOW)
    assert not _transaction(S.PAYMENT_PENDING, NOW).is_expired(NOW)


def test_failure_is_present_only_with_a_failure_code() -> None:
    t = _transaction(S.PAYMENT_FAILED, NOW)
    assert t.failure is None
    t.failure_code, t.failure_pg_code = "PAY_004", "REJECT_CARD_PAYMENT"
    assert t.failure == domain.Failure("PAY_004", "", "REJECT_CARD_PAYMENT")


# --- polling schedule (docs/api.md: 0 → 1 → 2 → 3 → 5 s) ------------------------------------------


def test_schedule_constants() -> None:
    assert POLL_SCHEDULE_MS == (0, 1000, 2000, 3000, 5000)
    assert VIRTUAL_ACCOUNT_POLL_CEILING_MS == 60_000


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 1000), (1, 2000), (2, 3000), (3, 5000), (4, 5000), (5, 5000), (50, 5000), (-3, 1000)],
)
@pytest.mark.parametrize("status", [S.CREATED, S.PAYMENT_PENDING], ids=lambda s: s.name)
def test_retry_after_by_attempt(status: Status, attempt: int, expected: int) -> None:
    # the attempt decides, whatever the elapsed time says
    assert retry_after_ms(status, 999.0, attempt, False) == expected
    assert retry_after_ms(status, 0.0, attempt, False) == expected


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, 1000),
        (0.999, 1000),
        (1.0, 2000),
        (2.999, 2000),
        (3.0, 3000),
        (5.999, 3000),
        (6.0, 5000),
        (59.0, 5000),
        (3600.0, 5000),
    ],
)
@pytest.mark.parametrize("status", [S.CREATED, S.PAYMENT_PENDING], ids=lambda s: s.name)
def test_retry_after_by_elapsed_time(status: Status, elapsed: float, expected: int) -> None:
    assert retry_after_ms(status, elapsed, None, False) == expected


@pytest.mark.parametrize("status", [s for s in Status if s >= 40], ids=lambda s: s.name)
@pytest.mark.parametrize("attempt", [None, 0, 7])
def test_no_retry_after_once_settled(status: Status, attempt: int | None) -> None:
    assert retry_after_ms(status, 0.0, attempt, False) is None
    assert retry_after_ms(status, 10_000.0, attempt, True) is None


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, 1000),  # a fresh virtual account follows the normal schedule
        (6.0, 5000),
        (59.0, 5000),
        (60.0, 10_000),
        (120.0, 20_000),
        (180.0, 40_000),
        (240.0, 60_000),
        (86_400.0, 60_000),
        (7 * 86_400.0, 60_000),
    ],
)
def test_virtual_account_backoff_grows_and_caps_at_a_minute(elapsed: float, expected: int) -> None:
    assert retry_after_ms(S.PAYMENT_PENDING, elapsed, None, True) == expected


def test_virtual_account_backoff_never_shrinks_and_ignores_a_small_attempt() -> None:
    waits = [retry_after_ms(S.PAYMENT_PENDING, float(t), None, True) or 0 for t in range(0, 3600, 7)]
    assert waits == sorted(waits)
    assert max(waits) == VIRTUAL_ACCOUNT_POLL_CEILING_MS
    # a client that counts its polls does not get back to 1 s after waiting minutes for a deposit
    assert retry_after_ms(S.PAYMENT_PENDING, 300.0, 0, True) == VIRTUAL_ACCOUNT_POLL_CEILING_MS


def test_long_card_confirmation_stays_at_five_seconds() -> None:
    assert retry_after_ms(S.PAYMENT_PENDING, 3600.0, None, False) == 5000


def test_final_statuses_are_exactly_those_no_transition_leaves() -> None:
    from app.core.domain import FINAL_STATUSES

    never_left = {s for s in Status if not any(can_transition(s, t) for t in Status)}
    assert never_left == set(FINAL_STATUSES) == {Status.PAYMENT_FAILED, Status.REFUNDED}
