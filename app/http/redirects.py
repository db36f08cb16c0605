"""Where the browser goes after a callback: the frontend's success or fail page.

Use cases say *which* page (a CallbackOutcome); this module turns that into a URL, so core knows
nothing of the frontend's address or its query parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from app.core.checkout import CallbackOutcome
from app.core.domain import ErrorCode
from app.messages import DEFAULT_LANGUAGE, PAYMENT_FAILED, Lang, buyer_text


@dataclass(frozen=True, slots=True)
class FrontendPages:
    """The frontend's pages, for the callback controllers (FRONTEND_BASE_URL)."""

    base_url: str

    def url(self, outcome: CallbackOutcome, lang: Lang = DEFAULT_LANGUAGE) -> str:
        return redirect_url(self.base_url, outcome, lang)


def redirect_url(frontend_base_url: str, outcome: CallbackOutcome, lang: Lang = DEFAULT_LANGUAGE) -> str:
    """`{FRONTEND}/payment/success?transactionId=…` (the page polls the status, "confirming" until
    the outcome is known) or `{FRONTEND}/payment/fail?transactionId=…&code=…&message=…&errorCode=…`:
    `code` is the PG's code for the failure when the PG gave one (`PAY_PROCESS_CANCELED` for a
    buyer who cancelled, `REJECT_CARD_COMPANY`, …), else ours; `errorCode` is always ours (`PAY_…`);
    `message` is ours, for the buyer, in `lang` (the browser's Accept-Language). `transactionId` is
    left out when no transaction is known."""
    frontend = frontend_base_url.rstrip("/")
    if not outcome.failed:
        return f"{frontend}/payment/success?" + urlencode({"transactionId": outcome.transaction_id or ""})
    ours = outcome.code or ErrorCode.VERIFICATION_FAILED
    query: dict[str, str] = {}
    if outcome.transaction_id:
        query["transactionId"] = outcome.transaction_id
    query["code"] = outcome.pg_code or ours
    query["message"] = (buyer_text(outcome.message) if outcome.message else PAYMENT_FAILED)(lang)
    query["errorCode"] = ours
    return f"{frontend}/payment/fail?" + urlencode(query)
