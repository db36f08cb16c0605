"""Text from buyers, browsers and the PG, end to end: refused when it is our API's input, stored
printable and within its column when it arrives from a redirect or a PG answer, shown as text.

The real Litestar app in-process on a migrated SQLite file; only the PG (FakeGateway) and the
provisioning queue (FakeQueue) are replaced.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.gateway.models import GatewayErrorKind
from app.main import Services, build_services, create_app
from app.migrate import upgrade_database
from app.settings import load_settings
from tests.support.fakes import FakeGateway, FakeQueue, gateway_error, in_progress_payment

FRONTEND = "https://shop.example.com"
STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50000}
RLO = "\u202e"
# What the issue names: a NUL, an ANSI colour, a bidi override, and 2,000 characters.
HOSTILE_MESSAGE = "카드사\x00 거절 \x1b[31mRED\x1b[0m " + RLO + "gpj.exe " + "가" * 2000
FAILURE_MESSAGE_COLUMN = 510
HISTORY_MESSAGE_COLUMN = 255


@dataclass
class Api:
    client: AsyncTestClient[Litestar]
    services: Services
    gateway: FakeGateway

    def headers(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.services.tokens.mint(user_id)}"}

    async def issue(self, user_id: str) -> str:
        response = await self.client.post("/api/payments/issue", json=STUDY, headers=self.headers(user_id))
        assert response.status_code == 201, response.text
        tid: str = response.json()["transactionId"]
        return tid


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('text_api') / 't.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)  # alembic runs its own event loop
    settings = load_settings({}, database_url=url, environment="test", frontend_base_url=FRONTEND)
    gateway, queue = FakeGateway(), FakeQueue()
    services = build_services(settings, gateway=gateway, queue=queue)
    try:
        async with AsyncTestClient(app=create_app(services=services)) as client:
            yield Api(client, services, gateway)
    finally:
        await services.close()


@pytest.fixture
def user() -> str:
    return f"user_{secrets.token_hex(6)}"


ENGLISH = {"Accept-Language": "en"}  # where a test reads our English words


def assert_printable(text: str, limit: int) -> None:
    assert len(text) <= limit, len(text)
    assert unicodedata.is_normalized("NFC", text)
    hidden = [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    assert hidden == [], hidden


# --- what the PG's fail redirect brings ---------------------------------------------------------


async def test_a_hostile_fail_callback_message_is_stored_printable_and_bounded(api: Api, user: str) -> None:
    tid = await api.issue(user)
    api.gateway.on_find(gateway_error(GatewayErrorKind.NOT_FOUND, "NOT_FOUND_PAYMENT"))  # nothing paid
    code = "REJECT_CARD_COMPANY\x00\x1b[0m" + RLO + "X" * 100

    response = await api.client.get(
        f"/api/payments/callback/fail?transactionId={tid}&code={quote(code)}&message={quote(HOSTILE_MESSAGE)}",
        headers=ENGLISH,
        follow_redirects=False,
    )

    assert response.status_code == 302
    # The redirect carries our code and message only: the browser's code is not a PG's code.
    shown = parse_qs(urlsplit(response.headers["location"]).query)
    assert shown == {
        "transactionId": [tid],
        "code": ["PAY_003"],
        "message": ["The payment was not completed."],
        "errorCode": ["PAY_003"],
    }
    detail = (await api.client.get(f"/api/payments/{tid}", headers={**api.headers(user), **ENGLISH})).json()
    failure = detail["failure"]
    assert detail["status"] == "PAYMENT_FAILED"
    assert (failure["code"], failure["message"]) == ("PAY_003", "The payment was not completed.")
    assert failure["pgMessage"].startswith("카드사 거절 [31mRED[0m gpj.exe 가가")
    assert len(failure["pgMessage"]) == FAILURE_MESSAGE_COLUMN
    assert_printable(failure["pgMessage"], FAILURE_MESSAGE_COLUMN)
    assert failure["pgCode"] is None  # not a code's shape: not kept
    last = detail["history"][-1]
    assert_printable(last["message"], HISTORY_MESSAGE_COLUMN)
    assert last["metadata"]["pgMessage"].startswith("카드사 거절 [31mRED[0m gpj.exe")
    assert last["metadata"]["callbackCode"] == ("REJECT_CARD_COMPANY[0m" + "X" * 100)[:64]
    for value in last["metadata"].values():
        if isinstance(value, str):
            assert_printable(value, HISTORY_MESSAGE_COLUMN)
            assert "\x00" not in value and RLO not in value
    status = (
        await api.client.get(f"/api/payments/{tid}/status", headers={**api.headers(user), **ENGLISH})
    ).json()
    assert status["failure"] == failure
    assert status["message"] == failure["message"]


async def test_a_pg_decline_message_is_stored_printable(api: Api, user: str) -> None:
    tid = await api.issue(user)
    api.gateway.on_confirm(
        gateway_error(
            GatewayErrorKind.DECLINED, "REJECT_CARD_PAYMENT\n", "한도\x00초과\x1b[31m" + RLO + "!" * 900
        )
    )

    await api.client.get(
        f"/api/payments/callback/success?orderId={tid}&paymentKey=pk_decline&amount=50000",
        follow_redirects=False,
    )

    detail = (await api.client.get(f"/api/payments/{tid}", headers={**api.headers(user), **ENGLISH})).json()
    assert detail["status"] == "PAYMENT_FAILED"
    assert detail["failure"]["message"] == "The payment was declined."
    assert detail["failure"]["pgMessage"].startswith("한도초과[31m!!!")
    assert_printable(detail["failure"]["pgMessage"], FAILURE_MESSAGE_COLUMN)
    assert detail["failure"]["pgCode"] == "REJECT_CARD_PAYMENT"
    for entry in detail["history"]:
        assert_printable(entry["message"], HISTORY_MESSAGE_COLUMN)
        for value in entry["metadata"].values():
            if isinstance(value, str):
                assert_printable(value, HISTORY_MESSAGE_COLUMN)


async def test_a_tampered_amount_is_not_echoed_raw(api: Api, user: str) -> None:
    tid = await api.issue(user)
    api.gateway.on_find(in_progress_payment(tid, 50000, payment_key="pk_t"))  # the buyer's own key
    amount = "1\x00" + RLO + "9" * 3000

    response = await api.client.get(
        f"/api/payments/callback/success?orderId={tid}&paymentKey=pk_t&amount={quote(amount)}",
        follow_redirects=False,
    )

    assert response.status_code == 302
    detail = (await api.client.get(f"/api/payments/{tid}", headers=api.headers(user))).json()
    assert detail["failure"]["code"] == "PAY_003"
    assert_printable(detail["failure"]["message"], FAILURE_MESSAGE_COLUMN)
    assert detail["history"][-1]["metadata"]["callbackAmount"].startswith("19999")
    for entry in detail["history"]:
        assert_printable(entry["message"], HISTORY_MESSAGE_COLUMN)
        for value in entry["metadata"].values():
            if isinstance(value, str):
                assert_printable(value, HISTORY_MESSAGE_COLUMN)


# --- what our own API is sent: refused with the field -----------------------------------------------


@pytest.mark.parametrize(
    "order_name",
    [
        pytest.param("Kotlin\x00study", id="nul"),
        pytest.param("\x1b[31mKotlin", id="ansi"),
        pytest.param(f"Kotlin{RLO}ydut", id="bidi-override"),
        pytest.param("Kotlin\nstudy", id="newline"),
        pytest.param("Kotlin\u2028study", id="line-separator"),
        pytest.param("   ", id="blank"),
    ],
)
async def test_an_order_name_with_control_characters_is_refused(api: Api, user: str, order_name: str) -> None:
    response = await api.client.post(
        "/api/payments/issue", json={**STUDY, "orderName": order_name}, headers=api.headers(user)
    )

    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == "PAY_000"
    assert [d["field"] for d in body["details"]] == ["orderName"]
    listed = await api.client.get("/api/payments", headers=api.headers(user))
    assert listed.json()["items"] == []  # nothing was issued


async def test_an_ordinary_order_name_is_kept_normalized(api: Api, user: str) -> None:
    name = "코틀린 스터디 — Cafe\u0301 👩\u200d👩\u200d👧"
    response = await api.client.post(
        "/api/payments/issue", json={**STUDY, "orderName": name}, headers=api.headers(user)
    )

    assert response.status_code == 201, response.text
    nfc = unicodedata.normalize("NFC", name)
    assert response.json()["orderName"] == nfc
    tid = response.json()["transactionId"]
    detail = (await api.client.get(f"/api/payments/{tid}", headers=api.headers(user))).json()
    assert detail["orderName"] == nfc


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"reason": "changed my mind\x00"}, "reason", id="reason-nul"),
        pytest.param({"reason": RLO + "dnufer"}, "reason", id="reason-bidi"),
        pytest.param({"reason": " \t "}, "reason", id="reason-blank"),
        pytest.param(
            {
                "reason": "refund",
                "refundReceiveAccount": {
                    "bank": "신한",
                    "accountNumber": "1234",
                    "holderName": "김\x1b[0m민지",
                },
            },
            "refundReceiveAccount.holderName",
            id="holder-name-ansi",
        ),
    ],
)
async def test_a_refund_reason_with_control_characters_is_refused(
    api: Api, user: str, body: dict[str, Any], field: str
) -> None:
    tid = await api.issue(user)

    response = await api.client.post(f"/api/payments/{tid}/refund", json=body, headers=api.headers(user))

    assert response.status_code == 400, response.text
    envelope = response.json()
    assert envelope["code"] == "PAY_000"
    assert [d["field"] for d in envelope["details"]] == [field]


# --- shown as text ------------------------------------------------------------------------------------


async def test_the_demo_fail_page_shows_the_message_as_plain_text(api: Api) -> None:
    message = "<img src=x onerror=alert(1)>" + RLO + "\x1b[31m" + "x" * 2000
    hostile_id = '"><script>alert(1)</script>'
    hostile_code = 'PAY_003" onload="x'
    response = await api.client.get(
        f"/demo/payment/fail?transactionId={quote(hostile_id)}&code={quote('<script>')}"
        f"&message={quote(message)}&errorCode={quote(hostile_code)}&maxPolls={quote('9<b>')}"
    )

    assert response.status_code == 200
    page = response.text
    assert "<img" not in page and "<script>" not in page and 'onload="' not in page
    # The message is text (in the page and in the data attribute the script reads), escaped,
    # printable and bounded; what does not look like a code is not shown as one.
    assert 'data-message="&lt;img src=x onerror=alert(1)&gt;' in page
    assert '<p id="failure-pg-message" class="muted">&lt;img src=x onerror=alert(1)&gt;' in page
    assert 'data-code=""' in page and 'data-error-code=""' in page
    assert 'data-transaction-id="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert 'data-max-polls="25"' in page
    assert RLO not in page and "\x1b" not in page
    assert "x" * 511 not in page


async def test_the_demo_fail_page_hands_the_redirects_codes_to_its_script(api: Api) -> None:
    response = await api.client.get(
        "/demo/payment/fail?transactionId=TXN_1&code=PAY_PROCESS_CANCELED&message=cancelled&errorCode=PAY_003"
    )

    page = response.text
    assert 'data-kind="fail"' in page and 'data-current-state="failure"' in page
    assert 'data-code="PAY_PROCESS_CANCELED"' in page and 'data-error-code="PAY_003"' in page
    assert 'data-transaction-id="TXN_1"' in page
