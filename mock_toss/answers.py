"""What a Toss API operation answers, beyond the Payment object: any object Toss serializes (Billing,
CashReceipt, a page of them) or an empty 200 body (billing key deletion).

app.py's pipeline (`_serve_api`) encodes `answer.to_toss(language, now)` (`encode_answer`) and
journals `answer.order_id` / `answer.payment_key`; `Answer` gives any object those two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import msgspec

from mock_toss.errors import Language

_encoder = msgspec.json.Encoder()


class Serializable(Protocol):
    """Something Toss shows as JSON."""

    def to_toss(self, language: Language, now: datetime) -> Any:
        """The object exactly as Toss serializes it."""
        ...


class Answer:
    """An answer for the pipeline: the object, and the ids the request journal shows for it."""

    def __init__(
        self, answer: Serializable, *, order_id: str | None = None, payment_key: str | None = None
    ) -> None:
        self.answer = answer
        self.order_id = order_id
        self.payment_key = payment_key

    def to_toss(self, language: Language, now: datetime) -> Any:
        return self.answer.to_toss(language, now)


class NoContent:
    """A 200 answer with an empty body (Toss: "비어있는 body에 200 응답만 내려갑니다")."""

    order_id: str | None = None
    payment_key: str | None = None

    def to_toss(self, language: Language, now: datetime) -> Any:
        return None


NO_CONTENT = NoContent()


def encode_answer(answer: Serializable, language: Language, now: datetime) -> bytes:
    """The body of a 200 answer: empty for NoContent, else the object's JSON."""
    if isinstance(answer, NoContent):
        return b""
    return _encoder.encode(answer.to_toss(language, now))
