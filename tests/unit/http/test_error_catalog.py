"""The one list of error codes (ApiError), the documents that show it, the texts in both languages
(app.messages), the choice of language (Accept-Language), and validation errors in words."""

from __future__ import annotations

import importlib
import pkgutil
import re
import string
from pathlib import Path

import msgspec
import pytest

import app
from app import messages
from app.core.domain import ErrorCode, PaymentError
from app.core.schemas import IssueRequest, RefundRequest
from app.http.errors import HTTP_STATUS, ApiError, error_code_table
from app.http.validation import body_problem
from app.messages import ERROR_MESSAGES, Text, buyer_text, language_of

ROOT = Path(__file__).resolve().parents[3]
BEGIN, END = "<!-- error-codes:begin", "<!-- error-codes:end -->"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _all_subclasses(cls: type[PaymentError]) -> set[type[PaymentError]]:
    found: set[type[PaymentError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _import_the_whole_app() -> None:
    for module in pkgutil.walk_packages(app.__path__, "app."):
        if not module.name.startswith(("app.migrations", "app.demo")) or module.name == "app.demo":
            importlib.import_module(module.name)


# --- the list and the documents ------------------------------------------------------------------


def _documented_tables() -> dict[str, str]:
    """Each Markdown document holding the error-code table (README.md today, docs/api.md maybe)."""
    found = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        if BEGIN in text:
            block = text.split(BEGIN, 1)[1].split(END, 1)[0]  # the table, and comments around it
            table = [line for line in block.splitlines() if line.startswith("|")]
            found[str(path.relative_to(ROOT))] = "\n".join(table)
    return found


def test_the_documents_show_the_list_in_code() -> None:
    tables = _documented_tables()
    assert tables, f"no document holds the error codes between {BEGIN!r} and {END!r}"
    for document, table in tables.items():
        assert table == error_code_table(), (
            f"{document}'s error table differs from app.http.errors.ApiError: "
            "paste the output of `python -m app.http.errors` between the markers"
        )


def test_the_document_table_names_every_code_with_its_status() -> None:
    for table in _documented_tables().values():
        rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
        documented = {code.strip().strip("`"): int(status) for code, status in rows}
        assert documented == {code.value: code.status for code in ApiError}


def test_every_code_of_ours_is_in_the_list_with_its_status() -> None:
    assert {code.value for code in ErrorCode} <= {code.value for code in ApiError}
    assert {code.value: code.status for code in ApiError} == HTTP_STATUS
    _import_the_whole_app()
    raised = {cls.code for cls in _all_subclasses(PaymentError)}  # RateLimited, ServiceUnavailable, …
    assert raised <= set(HTTP_STATUS), raised - set(HTTP_STATUS)


def test_every_code_says_what_it_means_in_one_line() -> None:
    for code in ApiError:
        assert code.name == code.value
        assert 100 <= code.status <= 599
        assert code.description.strip() and "\n" not in code.description and "|" not in code.description


# --- the texts -------------------------------------------------------------------------------------


def _texts() -> dict[str, Text]:
    found = {name: value for name, value in vars(messages).items() if isinstance(value, Text)}
    for table in (
        "ERROR_MESSAGES",
        "KINDS",
        "FORMATS",
        "PARAMETER_TEXTS",
        "RATE_LIMITED_ACTIONS",
        "STATUS_TEXTS",
    ):
        for key, value in getattr(messages, table).items():
            found[f"{table}[{key!r}]"] = value
    return found


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_code_has_a_message_in_both_languages() -> None:
    assert set(ERROR_MESSAGES) == {code.value for code in ApiError}
    for code, text in ERROR_MESSAGES.items():
        assert text.ko.strip() and text.en.strip(), code
        assert HANGUL.search(text.ko) and not HANGUL.search(text.en), code


@pytest.mark.parametrize(("name", "text"), sorted(_texts().items()), ids=sorted(_texts()))
def test_every_text_exists_in_both_languages_with_the_same_placeholders(name: str, text: Text) -> None:
    assert text.ko.strip() and text.en.strip()
    assert not HANGUL.search(text.en), "English with Korean in it"
    if name not in ("KINDS['null']",):
        assert HANGUL.search(text.ko), "Korean without Korean in it"
    assert _placeholders(text.ko) == _placeholders(text.en)


def test_a_text_is_chosen_and_formatted_per_language() -> None:
    reason = messages.WRONG_TYPE.format(field="amount", kind=messages.KINDS["int"])
    assert (reason("ko"), reason("en")) == ("amount 값은 정수여야 합니다.", "amount must be an integer.")


def test_stored_failure_messages_are_found_in_korean_again() -> None:
    assert buyer_text("The payment was declined.") == messages.PAYMENT_DECLINED
    assert buyer_text(messages.TRANSACTION_EXPIRED.en)("ko") == messages.TRANSACTION_EXPIRED.ko
    failed_grant = buyer_text("Provisioning failed: HTTP 400 from the study service")
    assert failed_grant("en") == "Provisioning failed: HTTP 400 from the study service"
    assert failed_grant("ko") == ERROR_MESSAGES["PAY_006"].ko  # a log's words are not shown in Korean
    assert buyer_text("카드사 거절") == Text("카드사 거절", "카드사 거절")  # a PG's, stored before pgMessage


# --- Accept-Language --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "ko"),
        ("", "ko"),
        ("ko", "ko"),
        ("en", "en"),
        ("EN", "en"),
        ("en-US", "en"),
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"),
        ("en-US,en;q=0.9,ko;q=0.8", "en"),
        ("ko;q=0.8, en", "en"),
        ("ko;q=0.5,en;q=0.5", "ko"),  # a tie: the first listed
        ("en;q=0.5,ko;q=0.5", "en"),
        ("fr", "ko"),
        ("fr-FR,fr;q=0.9,en;q=0.1", "en"),
        ("ja,zh", "ko"),
        ("*", "ko"),
        ("ko;q=0, en;q=0.1", "en"),
        ("ko;q=0", "ko"),  # nothing acceptable: our default
        ("ko;q=0, *", "en"),
        ("en;q=0", "ko"),
        ("en;q=abc", "ko"),  # a malformed weight counts for nothing
        ("en;q=1.5", "ko"),
        ("en;q=0.001", "en"),
        ("english", "ko"),
        (";;;,,,", "ko"),
        ("en-" + "x" * 500, "en"),
    ],
)
def test_the_language_follows_accept_language_q_values(header: str | None, lang: str) -> None:
    assert language_of(header) == lang
    assert language_of(header) == lang  # remembered, the same


# --- msgspec's refusals in words --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "field", "en", "ko"),
    [
        (b"{}", RefundRequest, "reason", "reason is required.", "reason 값이 필요합니다."),
        (
            b'{"productType":"STUDY","productId":"a"}',
            IssueRequest,
            "amount",
            "amount is required.",
            "amount 값이 필요합니다.",
        ),
        (
            b'{"reason":"x","amount":0}',
            RefundRequest,
            "amount",
            "amount must be an integer greater than 0.",
            "amount 값은 0보다 큰 정수여야 합니다.",
        ),
        (
            b'{"reason":"x","amount":"5"}',
            RefundRequest,
            "amount",
            "amount must be an integer.",
            "amount 값은 정수여야 합니다.",
        ),
        (
            b'{"reason":"x","amount":100000001}',
            RefundRequest,
            "amount",
            "amount must be an integer of at most 100,000,000.",
            "amount 값은 100,000,000 이하의 정수여야 합니다.",
        ),
        (
            b'{"reason":""}',
            RefundRequest,
            "reason",
            "reason must not be empty.",
            "reason 값이 비어 있습니다.",
        ),
        (
            b'{"reason":"' + b"x" * 201 + b'"}',
            RefundRequest,
            "reason",
            "reason must be at most 200 characters long.",
            "reason 값은 200자 이하여야 합니다.",
        ),
        (
            b'{"reason":"x","foo":1}',
            RefundRequest,
            "foo",
            "foo is not a field of this request.",
            "알 수 없는 필드입니다: foo. 이 요청에 없는 필드는 보낼 수 없습니다.",
        ),
        (
            b'{"productType":"BOOK","productId":"a","amount":1}',
            IssueRequest,
            "productType",
            "productType must be one of STUDY, AI_RESUME.",
            "productType 값은 STUDY, AI_RESUME 중 하나여야 합니다.",
        ),
        (
            b'{"reason":"x","refundReceiveAccount":{"bank":"a","holderName":"b"}}',
            RefundRequest,
            "refundReceiveAccount.accountNumber",
            "refundReceiveAccount.accountNumber is required.",
            "refundReceiveAccount.accountNumber 값이 필요합니다.",
        ),
        (
            b'{"reason":"x","refundReceiveAccount":{"bank":"a","accountNumber":"12-34","holderName":"b"}}',
            RefundRequest,
            "refundReceiveAccount.accountNumber",
            "refundReceiveAccount.accountNumber must be 1 to 20 digits.",
            "refundReceiveAccount.accountNumber 값은 숫자 1~20자리여야 합니다.",
        ),
        (
            b'{"reason":"x","refundReceiveAccount":[]}',
            RefundRequest,
            "refundReceiveAccount",
            "refundReceiveAccount must be a JSON object.",
            "refundReceiveAccount 값은 JSON 객체여야 합니다.",
        ),
        (
            b"[]",
            RefundRequest,
            "body",
            "The body must be a JSON object.",
            "요청 본문은 JSON 객체여야 합니다.",
        ),
        (b"5", IssueRequest, "body", "The body must be a JSON object.", "요청 본문은 JSON 객체여야 합니다."),
    ],
)
def test_msgspec_refusals_name_the_wire_field_in_words(
    body: bytes, kind: type, field: str, en: str, ko: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(body, type=kind, strict=True)
    problem = body_problem(refused.value, kind)
    assert (problem.field, problem.location, problem.reason("en"), problem.reason("ko")) == (
        field,
        "body",
        en,
        ko,
    )
