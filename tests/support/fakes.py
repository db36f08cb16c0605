"""In-memory fakes of Payment Core's ports, for service-layer tests that run in milliseconds.

They keep the SQL adapter's contract: guarded transitions that change nothing when the status
is not the expected one, a history row written in the same step, newest-first listing with an
opaque cursor. Every method yields to the event loop once before its (atomic) critical section,
like a database round trip would, so concurrent callers really interleave.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.core.domain import (
    ForbiddenTransition,
    HistoryEntry,
    RefundStatus,
    RevokeStatus,
    Status,
    Transaction,
    Transition,
    TransitionChange,
    can_transition,
)
from app.core.ports import InvalidCursor, RefundRecord, StatusView, TransactionPage, WebhookEvent
from app.core.sql.transactions import decode_cursor, encode_cursor
from app.gateway.models import (
    GatewayError,
    GatewayErrorKind,
    PaymentInfo,
    PaymentMethod,
    PgFailure,
    PgPaymentStatus,
    RefundAccount,
    RefundResult,
    VirtualAccount,
    WebhookNotice,
)
from app.gateway.toss import TossClient
from app.gateway.toss_webhooks import TossWebhooks

# --- clock ---------------------------------------------------------------------------------------

DEFAULT_NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when the test moves it. Always timezone-aware UTC."""

    def __init__(self, now: datetime = DEFAULT_NOW) -> None:
        self._now = _aware_utc(now)

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = _aware_utc(now)

    def advance(self, delta: timedelta | None = None, *, seconds: float = 0, minutes: float = 0) -> datetime:
        self._now += (delta or timedelta()) + timedelta(seconds=seconds, minutes=minutes)
        return self._now


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("FakeClock needs a timezone-aware datetime")
    return value.astimezone(UTC)


# --- repository ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    row_id: int
    transaction: Transaction
    history: list[HistoryEntry]
    # columns the domain object does not carry (reconciliation bookkeeping)
    columns: dict[str, Any] = field(default_factory=dict)


class InMemoryTransactionRepository:
    """TransactionRepository and RefundRepository in a dict, with the SQL adapter's guarded semantics.

    Like the SQL adapter it refuses a transition the state machine does not have (ForbiddenTransition).
    """

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._next_id = 1
        self._refunds: dict[str, RefundRecord] = {}

    async def add(self, transaction: Transaction, message: str) -> None:
        await asyncio.sleep(0)
        if transaction.transaction_id in self._rows:
            raise ValueError(f"duplicate transaction_id {transaction.transaction_id}")  # unique key
        stored = copy.deepcopy(transaction)
        stored.refunded_amount = 0
        stored.refund_reserved_amount = 0
        first = HistoryEntry(
            status=stored.status, message=message[:255], metadata={}, created_at=stored.created_at
        )
        self._rows[stored.transaction_id] = _Row(self._next_id, stored, [first], {"reconcile_attempts": 0})
        self._next_id += 1

    async def get(self, transaction_id: str) -> Transaction | None:
        await asyncio.sleep(0)
        row = self._rows.get(transaction_id)
        return None if row is None else copy.deepcopy(row.transaction)

    async def current_status_view(self, transaction_id: str) -> StatusView | None:
        return await self.get_status_view(transaction_id)

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        await asyncio.sleep(0)
        row = self._rows.get(transaction_id)
        if row is None:
            return None
        t = row.transaction
        return StatusView(
            transaction_id=t.transaction_id,
            user_id=t.user_id,
            status=t.status,
            amount=t.amount,
            method=t.method,
            updated_at=t.updated_at,
            completed_at=t.completed_at,
            failure_code=t.failure_code,
            failure_message=t.failure_message,
            va_bank_code=t.va_bank_code,
            va_account_number=t.va_account_number,
            va_due_date=t.va_due_date,
            refunded_amount=t.refunded_amount,
            refund_reserved_amount=t.refund_reserved_amount,
            failure_pg_code=t.failure_pg_code,
            failure_pg_message=t.failure_pg_message,
        )

    async def history(self, transaction_id: str) -> Sequence[HistoryEntry]:
        await asyncio.sleep(0)
        row = self._rows.get(transaction_id)
        return [] if row is None else copy.deepcopy(row.history)

    async def list_for_user(
        self, user_id: str, *, statuses: Sequence[Status] | None, cursor: str | None, limit: int
    ) -> TransactionPage:
        await asyncio.sleep(0)
        rows = [r for r in self._rows.values() if r.transaction.user_id == user_id]
        if statuses:
            rows = [r for r in rows if r.transaction.status in statuses]
        if cursor is not None:
            before = decode_cursor(cursor)
            if before is None:
                raise InvalidCursor()
            rows = [r for r in rows if r.row_id < before]
        rows.sort(key=lambda r: r.row_id, reverse=True)
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].row_id) if has_more and rows else None
        return TransactionPage(items=[copy.deepcopy(r.transaction) for r in rows], next_cursor=next_cursor)

    async def apply(self, transaction_id: str, transition: Transition, *, now: datetime) -> bool:
        await asyncio.sleep(0)
        if not transition.allowed:
            raise ForbiddenTransition(transition)  # like the SQL adapter: before any write
        row = self._rows.get(transaction_id)
        if row is None or row.transaction.status != transition.expected:
            return False  # UPDATE … WHERE status = :expected matched no row
        _apply(row, transition.change)
        row.transaction.status = transition.target
        row.transaction.updated_at = now
        row.history.append(
            HistoryEntry(
                status=transition.target,
                message=transition.message[:255],
                metadata=copy.deepcopy(dict(transition.history)),
                created_at=now,
            )
        )
        return True

    async def record_event(
        self,
        transaction_id: str,
        *,
        status: Status,
        message: str,
        metadata: Mapping[str, Any],
        now: datetime,
        change: TransitionChange | None = None,
    ) -> bool:
        await asyncio.sleep(0)
        row = self._rows.get(transaction_id)
        if row is None or row.transaction.status != status:
            return False  # a note (and its change) is only true while the status still holds
        _apply(row, change)
        row.history.append(
            HistoryEntry(
                status=status, message=message[:255], metadata=copy.deepcopy(dict(metadata)), created_at=now
            )
        )
        return True

    async def store_virtual_account(
        self,
        transaction_id: str,
        *,
        message: str,
        metadata: Mapping[str, Any],
        now: datetime,
        change: TransitionChange,
    ) -> bool:
        await asyncio.sleep(0)
        row = self._rows.get(transaction_id)
        if row is None or row.transaction.status != Status.PAYMENT_PENDING:
            return False
        if row.transaction.va_account_number is not None:
            return False  # written once, like the SQL adapter's guard
        _apply(row, change)
        row.history.append(
            HistoryEntry(
                status=Status.PAYMENT_PENDING,
                message=message[:255],
                metadata=copy.deepcopy(dict(metadata)),
                created_at=now,
            )
        )
        return True

    async def find_expired_created(self, now: datetime, limit: int) -> Sequence[str]:
        await asyncio.sleep(0)
        expired = [
            r.transaction
            for r in self._rows.values()
            if r.transaction.status == Status.CREATED and r.transaction.expires_at <= now
        ]
        expired.sort(key=lambda t: t.expires_at)
        return [t.transaction_id for t in expired[:limit]]

    async def find_stale(self, status: Status, updated_before: datetime, limit: int) -> Sequence[str]:
        await asyncio.sleep(0)
        stale = [
            r.transaction
            for r in self._rows.values()
            if r.transaction.status == status and r.transaction.updated_at <= updated_before
        ]
        stale.sort(key=lambda t: t.updated_at)
        return [t.transaction_id for t in stale[:limit]]

    async def claim_due_reconciliations(
        self, now: datetime, *, limit: int, lease_seconds: float
    ) -> Sequence[tuple[str, int]]:
        await asyncio.sleep(0)
        due = [
            r
            for r in self._rows.values()
            if r.transaction.status == Status.PAYMENT_PENDING
            and r.columns.get("next_reconcile_at") is not None
            and r.columns["next_reconcile_at"] <= now
        ]
        due.sort(key=lambda r: r.columns["next_reconcile_at"])
        claimed = []
        for r in due[:limit]:
            r.columns["next_reconcile_at"] = now + timedelta(seconds=lease_seconds)
            r.columns["reconcile_attempts"] = r.columns.get("reconcile_attempts", 0) + 1
            claimed.append((r.transaction.transaction_id, r.columns["reconcile_attempts"]))
        return claimed

    async def schedule_reconciliation(self, transaction_id: str, next_at: datetime) -> None:
        await asyncio.sleep(0)
        row = self._rows.get(transaction_id)
        if row is not None and row.transaction.status == Status.PAYMENT_PENDING:
            row.columns["next_reconcile_at"] = next_at

    # --- RefundRepository ------------------------------------------------------------------------

    async def start_refund(
        self, refund: RefundRecord, *, expected: Status, closes: bool, message: str, now: datetime
    ) -> bool:
        await asyncio.sleep(0)
        row = self._rows.get(refund.transaction_id)
        if row is None or row.transaction.status != expected:
            return False  # guarded update missed: nothing changes
        t = row.transaction
        left = t.amount - t.refund_reserved_amount
        if (left != refund.amount) if closes else (left <= refund.amount):
            return False  # the amount does not fit what is left
        if closes and not can_transition(expected, Status.REFUND_REQUESTED):
            raise AssertionError(f"the service asked for a forbidden refund from {expected!r}")
        t.refund_reserved_amount += refund.amount
        t.updated_at = now
        if closes:
            t.status = Status.REFUND_REQUESTED
        self._refunds[refund.refund_id] = refund
        row.history.append(
            HistoryEntry(
                status=t.status,
                message=message[:255],
                metadata={
                    "refundId": refund.refund_id,
                    "amount": refund.amount,
                    "actor": refund.actor,
                    "partial": not closes,
                },
                created_at=now,
            )
        )
        return True

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        await asyncio.sleep(0)
        return self._refunds.get(refund_id)

    async def list_refunds(self, transaction_id: str) -> Sequence[RefundRecord]:
        await asyncio.sleep(0)
        return [r for r in self._refunds.values() if r.transaction_id == transaction_id]

    async def find_open_refunds(self, created_before: datetime, limit: int) -> Sequence[str]:
        await asyncio.sleep(0)
        return [
            r.refund_id
            for r in self._refunds.values()
            if (r.status == RefundStatus.REQUESTED or r.revoke_status == RevokeStatus.PENDING)
            and r.created_at <= created_before
        ][:limit]

    async def finish_revoke(
        self, refund: RefundRecord, *, revoked: bool, detail: str, message: str, now: datetime
    ) -> bool:
        await asyncio.sleep(0)
        current = self._refunds.get(refund.refund_id)
        if current is None or current.revoke_status != RevokeStatus.PENDING:
            return False
        status = current.status
        if not revoked and status == RefundStatus.REQUESTED:
            status = RefundStatus.NEEDS_REVIEW
        revoke = RevokeStatus.DONE if revoked else RevokeStatus.FAILED
        self._refunds[refund.refund_id] = dataclasses.replace(
            current, revoke_status=revoke, revoke_detail=detail[:255], status=status
        )
        row = self._rows[refund.transaction_id]
        row.history.append(
            HistoryEntry(
                status=row.transaction.status,
                message=message[:255],
                metadata={"refundId": refund.refund_id, "revoke": revoke.value},
                created_at=now,
            )
        )
        return True

    async def complete_refund(
        self, refund: RefundRecord, *, pg_transaction_key: str | None, message: str, now: datetime
    ) -> bool:
        await asyncio.sleep(0)
        current = self._refunds.get(refund.refund_id)
        if current is None or current.status != RefundStatus.REQUESTED:
            return False
        self._refunds[refund.refund_id] = dataclasses.replace(
            current, status=RefundStatus.DONE, pg_transaction_key=pg_transaction_key, completed_at=now
        )
        row = self._rows[refund.transaction_id]
        row.transaction.refunded_amount += refund.amount
        row.transaction.updated_at = now
        self._close_when_refunded(
            row,
            message,
            {"refundId": refund.refund_id, "pgTransactionKey": pg_transaction_key, "amount": refund.amount},
            now,
        )
        return True

    async def refuse_refund(
        self, refund: RefundRecord, *, pg_error_code: str, message: str, now: datetime
    ) -> bool:
        await asyncio.sleep(0)
        current = self._refunds.get(refund.refund_id)
        if current is None or current.status != RefundStatus.REQUESTED:
            return False
        self._refunds[refund.refund_id] = dataclasses.replace(
            current, status=RefundStatus.REFUSED, pg_error_code=pg_error_code[:64]
        )
        row = self._rows[refund.transaction_id]
        row.transaction.refund_reserved_amount -= refund.amount
        row.history.append(
            HistoryEntry(
                status=row.transaction.status,
                message=message[:255],
                metadata={"refundId": refund.refund_id, "pgCode": pg_error_code},
                created_at=now,
            )
        )
        return True

    async def record_pg_refund(
        self, refund: RefundRecord, *, expected: Status, message: str, now: datetime
    ) -> bool:
        await asyncio.sleep(0)
        row = self._rows.get(refund.transaction_id)
        if row is None or row.transaction.status != expected:
            return False
        t = row.transaction
        if t.refunded_amount + refund.amount > t.amount:
            return False
        if refund.pg_transaction_key and any(
            r.pg_transaction_key == refund.pg_transaction_key for r in self._refunds.values()
        ):
            return False  # the unique key on pg_transaction_key
        t.refunded_amount += refund.amount
        t.refund_reserved_amount = max(t.refund_reserved_amount, t.refunded_amount)
        t.updated_at = now
        self._refunds[refund.refund_id] = refund
        self._close_when_refunded(
            row,
            message,
            {
                "refundId": refund.refund_id,
                "pgTransactionKey": refund.pg_transaction_key,
                "amount": refund.amount,
                "actor": refund.actor,
            },
            now,
        )
        return True

    def _close_when_refunded(self, row: _Row, message: str, metadata: dict[str, Any], now: datetime) -> None:
        t = row.transaction
        if t.refunded_amount < t.amount or t.status == Status.REFUNDED:
            row.history.append(HistoryEntry(t.status, message[:255], metadata, now))
            return
        if t.status != Status.REFUND_REQUESTED:
            if not can_transition(t.status, Status.REFUND_REQUESTED):
                raise AssertionError(f"a refund closed a transaction from {t.status!r}")
            row.history.append(
                HistoryEntry(Status.REFUND_REQUESTED, "the payment provider cancelled it", metadata, now)
            )
        t.status = Status.REFUNDED
        row.history.append(HistoryEntry(Status.REFUNDED, message[:255], metadata, now))

    # --- for tests only: read the stored state without going through the port ----------------

    def stored(self, transaction_id: str) -> Transaction:
        return copy.deepcopy(self._rows[transaction_id].transaction)

    def stored_history(self, transaction_id: str) -> list[HistoryEntry]:
        return copy.deepcopy(self._rows[transaction_id].history)

    def ids(self) -> list[str]:
        return list(self._rows)

    def count(self) -> int:
        return len(self._rows)

    def column(self, transaction_id: str, name: str) -> Any:
        """A stored column the domain object does not carry (e.g. next_reconcile_at)."""
        return self._rows[transaction_id].columns.get(name)


def _change_values(change: TransitionChange | None) -> dict[str, Any]:
    if change is None:
        return {}
    return {
        f.name: getattr(change, f.name)
        for f in dataclasses.fields(change)
        if getattr(change, f.name) is not None
    }


_TRANSACTION_FIELDS = frozenset(f.name for f in dataclasses.fields(Transaction))


def _apply(row: _Row, change: TransitionChange | None) -> None:
    for name, value in _change_values(change).items():
        if name in _TRANSACTION_FIELDS:
            setattr(row.transaction, name, value)
        else:
            row.columns[name] = value


# --- provisioning queue --------------------------------------------------------------------------


class FakeQueue:
    """ProvisioningQueue that records what was queued; `fail_with` makes every enqueue raise."""

    def __init__(self) -> None:
        self.grants: list[str] = []
        self.refunds: list[str] = []
        self.webhooks: list[int] = []
        self.callbacks: list[tuple[str, dict[str, str]]] = []
        self.fail_with: Exception | None = None

    async def enqueue_grant(self, transaction_id: str) -> None:
        await self._maybe_fail()
        self.grants.append(transaction_id)

    async def enqueue_refund(self, refund_id: str) -> None:
        await self._maybe_fail()
        self.refunds.append(refund_id)

    async def enqueue_webhook(self, event_id: int) -> None:
        await self._maybe_fail()
        self.webhooks.append(event_id)

    async def enqueue_callback(self, kind: str, query: Mapping[str, str]) -> None:
        await self._maybe_fail()
        self.callbacks.append((kind, dict(query)))

    async def _maybe_fail(self) -> None:
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with


# --- gateway -------------------------------------------------------------------------------------

Outcome = PaymentInfo | RefundResult | GatewayError | Callable[["GatewayCall"], PaymentInfo]


@dataclass(frozen=True, slots=True)
class GatewayCall:
    operation: str  # confirm_payment | get_payment | find_payment | cancel_payment
    kwargs: dict[str, Any]


@dataclass(slots=True)
class _Step:
    outcome: Outcome
    hold: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)


class FakeGateway:
    """PaymentGateway scripted per call; records every call.

    `on_confirm(a, b)` answers the next two confirms with a then b (a PaymentInfo is returned, a
    GatewayError raised). `hold=event` keeps that call open until the event is set; the returned
    step's `entered` event tells the test the call is in flight. An unscripted confirm answers
    DONE for exactly what it was asked; any other unscripted call fails the test.
    """

    def __init__(self) -> None:
        self.calls: list[GatewayCall] = []
        self._scripts: dict[str, deque[_Step]] = {
            op: deque() for op in ("confirm_payment", "get_payment", "find_payment", "cancel_payment")
        }

    # scripting
    def on_confirm(self, *outcomes: Outcome, hold: asyncio.Event | None = None) -> list[_Step]:
        return self._script("confirm_payment", outcomes, hold)

    def on_get(self, *outcomes: Outcome, hold: asyncio.Event | None = None) -> list[_Step]:
        return self._script("get_payment", outcomes, hold)

    def on_find(self, *outcomes: Outcome, hold: asyncio.Event | None = None) -> list[_Step]:
        return self._script("find_payment", outcomes, hold)

    def on_cancel(self, *outcomes: Outcome, hold: asyncio.Event | None = None) -> list[_Step]:
        return self._script("cancel_payment", outcomes, hold)

    def _script(self, op: str, outcomes: Sequence[Outcome], hold: asyncio.Event | None) -> list[_Step]:
        steps = [_Step(outcome, hold) for outcome in outcomes]
        self._scripts[op].extend(steps)
        return steps

    def calls_to(self, operation: str) -> list[GatewayCall]:
        return [c for c in self.calls if c.operation == operation]

    @property
    def confirm_calls(self) -> list[GatewayCall]:
        return self.calls_to("confirm_payment")

    # the port
    async def confirm_payment(
        self, *, provider: str, payment_key: str, order_id: str, amount: int, idempotency_key: str
    ) -> PaymentInfo:
        call = GatewayCall(
            "confirm_payment",
            {
                "provider": provider,
                "payment_key": payment_key,
                "order_id": order_id,
                "amount": amount,
                "idempotency_key": idempotency_key,
            },
        )
        outcome = await self._answer(call, default=_confirm_done)
        return _as_payment(outcome, call)

    def read_webhook(self, *, provider: str, raw: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        return TossWebhooks().read(raw, headers)  # the real reader: parsing involves no PG call

    def confirm_window(self, provider: str) -> timedelta:
        return TossClient.confirm_window

    def window_failure_kind(self, *, provider: str, code: str) -> GatewayErrorKind:
        return TossClient.window_failure_kind(code)

    async def get_payment(self, *, provider: str, payment_key: str) -> PaymentInfo:
        call = GatewayCall("get_payment", {"provider": provider, "payment_key": payment_key})
        return _as_payment(await self._answer(call), call)

    async def find_payment(self, *, provider: str, order_id: str) -> PaymentInfo:
        call = GatewayCall("find_payment", {"provider": provider, "order_id": order_id})
        return _as_payment(await self._answer(call), call)

    async def cancel_payment(
        self,
        *,
        provider: str,
        payment_key: str,
        reason: str,
        amount: int | None,
        idempotency_key: str,
        refund_account: RefundAccount | None = None,
    ) -> RefundResult:
        call = GatewayCall(
            "cancel_payment",
            {
                "provider": provider,
                "payment_key": payment_key,
                "reason": reason,
                "amount": amount,
                "idempotency_key": idempotency_key,
            },
        )
        outcome = await self._answer(call)
        if not isinstance(outcome, RefundResult):
            raise AssertionError(f"cancel_payment was scripted with {outcome!r}, not a RefundResult")
        return outcome

    async def _answer(self, call: GatewayCall, default: Outcome | None = None) -> Outcome:
        self.calls.append(call)
        script = self._scripts[call.operation]
        if script:
            step = script.popleft()
        elif default is not None:
            step = _Step(default)
        else:
            raise AssertionError(f"unscripted gateway call: {call.operation}({call.kwargs})")
        step.entered.set()
        if step.hold is not None:
            await step.hold.wait()
        await asyncio.sleep(0)  # a network round trip
        if isinstance(step.outcome, GatewayError):
            raise step.outcome
        return step.outcome


def _as_payment(outcome: Outcome, call: GatewayCall) -> PaymentInfo:
    if isinstance(outcome, PaymentInfo):
        return outcome
    if isinstance(outcome, RefundResult):
        raise AssertionError(f"{call.operation} was scripted with a RefundResult")
    if isinstance(outcome, GatewayError):  # pragma: no cover - raised in _answer
        raise outcome
    return outcome(call)


def _confirm_done(call: GatewayCall) -> PaymentInfo:
    return done_payment(
        call.kwargs["order_id"], call.kwargs["amount"], payment_key=call.kwargs["payment_key"]
    )


# --- builders of what the PG answers --------------------------------------------------------------

APPROVED_AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def done_payment(
    order_id: str,
    amount: int,
    *,
    payment_key: str = "pk_done_1",
    method: PaymentMethod = PaymentMethod.CARD,
    approved_at: datetime = APPROVED_AT,
) -> PaymentInfo:
    """A card payment the PG approved (DONE)."""
    return PaymentInfo(
        provider="TOSS",
        payment_key=payment_key,
        order_id=order_id,
        status=PgPaymentStatus.DONE,
        method=method,
        total_amount=amount,
        balance_amount=amount,
        approved_at=approved_at,
        last_transaction_key="ltk_1",
    )


def waiting_for_deposit_payment(
    order_id: str,
    amount: int,
    *,
    due_date: datetime,
    payment_key: str = "pk_va_1",
    bank_code: str = "88",
    account_number: str = "X6516657813646",
    secret: str = "ps_secret_abc123",
) -> PaymentInfo:
    """A virtual account issued by the PG, waiting for the buyer's deposit."""
    return PaymentInfo(
        provider="TOSS",
        payment_key=payment_key,
        order_id=order_id,
        status=PgPaymentStatus.WAITING_FOR_DEPOSIT,
        method=PaymentMethod.VIRTUAL_ACCOUNT,
        total_amount=amount,
        balance_amount=amount,
        virtual_account=VirtualAccount(bank_code=bank_code, account_number=account_number, due_date=due_date),
        secret=secret,
    )


def aborted_payment(
    order_id: str,
    amount: int,
    *,
    code: str = "REJECT_CARD_COMPANY",
    message: str = "The card company refused the payment.",
    payment_key: str = "pk_aborted_1",
    status: PgPaymentStatus = PgPaymentStatus.ABORTED,
) -> PaymentInfo:
    """A payment the PG reports as failed (ABORTED by default), with its failure."""
    return PaymentInfo(
        provider="TOSS",
        payment_key=payment_key,
        order_id=order_id,
        status=status,
        method=PaymentMethod.CARD,
        total_amount=amount,
        balance_amount=amount,
        failure=PgFailure(code=code, message=message),
    )


def in_progress_payment(order_id: str, amount: int, *, payment_key: str = "pk_progress_1") -> PaymentInfo:
    """A payment the buyer authenticated but the PG has not decided yet."""
    return PaymentInfo(
        provider="TOSS",
        payment_key=payment_key,
        order_id=order_id,
        status=PgPaymentStatus.IN_PROGRESS,
        method=PaymentMethod.CARD,
        total_amount=amount,
        balance_amount=amount,
    )


def gateway_error(
    kind: GatewayErrorKind, pg_code: str = "PG_CODE", message: str = "", http_status: int | None = None
) -> GatewayError:
    """A normalized PG failure, e.g. gateway_error(UNAVAILABLE, 'TIMEOUT', 'read timed out')."""
    return GatewayError(
        kind=kind, pg_code=pg_code, message=message or f"{kind.value} from the PG", http_status=http_status
    )


if TYPE_CHECKING:  # mypy proves the fakes still satisfy the ports whenever a port changes
    from app.core.ports import (
        Clock,
        PaymentGateway,
        ProvisioningQueue,
        RefundRepository,
        TransactionRepository,
    )

    _repository: TransactionRepository = InMemoryTransactionRepository()
    _refunds: RefundRepository = InMemoryTransactionRepository()
    _gateway: PaymentGateway = FakeGateway()
    _queue: ProvisioningQueue = FakeQueue()
    _clock: Clock = FakeClock()


class OneWebhookDelivery:
    """The webhook-event port holding one recorded delivery (id 1) for `order_id` that claims
    `pg_status`; `finished` keeps what the job recorded: (outcome, detail)."""

    def __init__(self, order_id: str, pg_status: str | None, *, payment_key: str | None = None) -> None:
        self.order_id = order_id
        self.pg_status = pg_status
        self.payment_key = payment_key
        self.finished: list[tuple[str, str]] = []

    @property
    def outcomes(self) -> list[str]:
        return [outcome for outcome, _ in self.finished]

    async def record(self, event: WebhookEvent) -> tuple[int, str]:
        raise AssertionError("not recorded here")

    async def get(self, event_id: int) -> WebhookEvent | None:
        return WebhookEvent(
            provider="TOSS",
            transmission_id="wh_1",
            event_type="PAYMENT_STATUS_CHANGED",
            order_id=self.order_id,
            payment_key=self.payment_key,
            pg_status=self.pg_status,
            secret=None,
            retried_count=0,
            raw_body="{}",
            received_at=datetime(2025, 3, 14, 9, 0, tzinfo=UTC),
        )

    async def finish(self, event_id: int, *, outcome: str, detail: str, now: datetime) -> None:
        self.finished.append((outcome, detail))
