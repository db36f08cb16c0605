"""Queries: what frontends and workers read (status polls, detail, the caller's list, the catalog)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.core.domain import (
    HistoryEntry,
    Status,
    Transaction,
    TransactionNotFound,
    retry_after_ms,
)
from app.core.ports import Clock, Product, ProductCatalog, StatusView, TransactionPage, TransactionRepository
from app.messages import DEFAULT_LANGUAGE, STATUS_TEXTS, WAITING_FOR_DEPOSIT, Lang, buyer_text


@dataclass(frozen=True, slots=True)
class StatusReport:
    view: StatusView
    message: str  # in the language asked for
    retry_after_ms: int | None
    lang: Lang = DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class TransactionDetail:
    transaction: Transaction
    history: Sequence[HistoryEntry]


class PaymentQueries:
    def __init__(self, *, repository: TransactionRepository, catalog: ProductCatalog, clock: Clock) -> None:
        self._repo = repository
        self._catalog = catalog
        self._clock = clock

    async def get_status(
        self, *, user_id: str, transaction_id: str, attempt: int | None, lang: Lang = DEFAULT_LANGUAGE
    ) -> StatusReport:
        """The polling endpoint: one indexed read, no writes. The message is in `lang`: one of two
        texts of app.messages, chosen (the hot path formats nothing)."""
        view = await self._repo.get_status_view(transaction_id)
        if view is None or view.user_id != user_id:
            raise TransactionNotFound()
        return self.report(view, attempt=attempt, lang=lang)

    def report(self, view: StatusView, *, attempt: int | None, lang: Lang = DEFAULT_LANGUAGE) -> StatusReport:
        """What the status endpoint answers for `view` (the status stream sends the same)."""
        pending_for = (self._clock.now() - view.updated_at).total_seconds()
        awaiting_deposit = view.status == Status.PAYMENT_PENDING and view.va_account_number is not None
        text = STATUS_TEXTS[view.status]
        if awaiting_deposit:
            text = WAITING_FOR_DEPOSIT
        elif view.status == Status.PAYMENT_FAILED and view.failure_message:
            text = buyer_text(view.failure_message)
        return StatusReport(
            view=view,
            message=text(lang),
            retry_after_ms=retry_after_ms(view.status, pending_for, attempt, awaiting_deposit),
            lang=lang,
        )

    async def get_transaction(self, transaction_id: str) -> Transaction | None:
        """For workers: the transaction as stored, with no owner check."""
        return await self._repo.get(transaction_id)

    async def get_detail(self, *, user_id: str, is_admin: bool, transaction_id: str) -> TransactionDetail:
        transaction = await self._repo.get(transaction_id)
        if transaction is None or (transaction.user_id != user_id and not is_admin):
            raise TransactionNotFound()
        return TransactionDetail(transaction=transaction, history=await self._repo.history(transaction_id))

    async def list_transactions(
        self, *, user_id: str, statuses: Sequence[Status] | None, cursor: str | None, limit: int
    ) -> TransactionPage:
        return await self._repo.list_for_user(user_id, statuses=statuses, cursor=cursor, limit=limit)

    async def list_products(self) -> Sequence[Product]:
        return await self._catalog.list_products()
