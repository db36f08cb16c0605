"""The payment outcome series, recorded by the use case whose guarded transition won.

Call only when `repository.apply` returned True: a write that lost its race changed nothing, so
it counts nothing, however many callers raced for the same transaction.
"""

from __future__ import annotations

from app.core.domain import Status, Transition
from app.metrics import PAYMENT_DURATION, PAYMENTS_FAILED, PAYMENTS_SUCCEEDED


def count_payment_outcome(transition: Transition) -> None:
    """A payment decided: 40 (and its time since issue, from the history row) or 41 (by code)."""
    if transition.target == Status.PAYMENT_SUCCESS:
        PAYMENTS_SUCCEEDED.inc()
        seconds = transition.history.get("secondsSinceIssue")
        if isinstance(seconds, (int, float)):
            PAYMENT_DURATION.observe(seconds)
    elif transition.target == Status.PAYMENT_FAILED:
        PAYMENTS_FAILED.labels(code=transition.change.failure_code or "UNKNOWN").inc()
