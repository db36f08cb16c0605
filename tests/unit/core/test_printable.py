"""Text from buyers and PGs is kept printable, on one line, normalized and within its column."""

from __future__ import annotations

import unicodedata

import pytest

from app.core.domain import ValidationFailed
from app.core.printable import pg_error_code, printable_text, require_printable

RLO = "\u202e"  # right-to-left override: makes "gpj.exe" read as "exe.jpg"
ZWJ = "\u200d"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("카드 한도 초과", "카드 한도 초과", id="korean-untouched"),
        pytest.param("nul\x00byte", "nulbyte", id="nul"),
        pytest.param("\x1b[31mred\x1b[0m", "[31mred[0m", id="ansi-escape"),
        pytest.param("bell\x07 and del\x7f", "bell and del", id="bell-del"),
        pytest.param("c1\x85\x9bcontrols", "c1 controls", id="c1-next-line-is-a-break"),
        pytest.param(f"invoice{RLO}gpj.exe", "invoicegpj.exe", id="bidi-override"),
        pytest.param("\u2066isolate\u2069 \u200emark\u200f", "isolate mark", id="bidi-isolates-marks"),
        pytest.param("zero\u200bwidth\ufeff", "zerowidth", id="zero-width-and-bom"),
        pytest.param("line one\nline two\r\nthree", "line one line two three", id="newlines-become-spaces"),
        pytest.param("tab\there", "tab here", id="tab-becomes-space"),
        pytest.param("para\u2029graph\u2028line", "para graph line", id="unicode-separators"),
        pytest.param("  padded  ", "padded", id="trimmed"),
        pytest.param("\x00\x01\n\t ", "", id="nothing-printable-left"),
        pytest.param("lone \ud800 surrogate", "lone  surrogate", id="lone-surrogate"),
    ],
)
def test_printable_text_removes_what_cannot_be_shown(raw: str, expected: str) -> None:
    assert printable_text(raw, 100) == expected


def test_printable_text_normalizes_to_nfc() -> None:
    decomposed = "Cafe\u0301 ᄒ\u1161\u11ab"  # e + combining acute; conjoining jamo of 한
    assert printable_text(decomposed, 100) == "Café 한"


def test_joiners_that_emoji_and_scripts_need_are_kept() -> None:
    family = f"👩{ZWJ}👩{ZWJ}👧"
    persian = "می\u200cخواهم"  # zero-width non-joiner is part of the spelling
    assert printable_text(family, 100) == family
    assert printable_text(persian, 100) == persian


def test_printable_text_bounds_the_length_in_characters() -> None:
    assert printable_text("가" * 2000, 510) == "가" * 510
    assert len(printable_text("x" * 2000, 255)) == 255


def test_the_cut_never_splits_a_character_from_its_combining_marks() -> None:
    marked = "x\u0323\u0301"  # x with a dot below and an acute: one character on screen, three code points
    assert printable_text("a" * 7 + marked + "y", 10) == "a" * 7 + marked  # fits exactly
    assert printable_text("a" * 8 + marked + "y", 10) == "a" * 8  # would lose its acute: dropped whole


def test_the_cut_never_splits_an_emoji_sequence() -> None:
    family = f"👩{ZWJ}👩{ZWJ}👧"
    assert printable_text("ab" + family, 4) == "ab"
    thumbs = "👍\U0001f3fd"  # a skin-tone modifier belongs to the hand before it
    assert printable_text("ab" + thumbs, 3) == "ab"
    assert printable_text("ab" + thumbs, 4) == "ab" + thumbs


def test_a_single_overlong_cluster_is_cut_rather_than_dropped() -> None:
    zalgo = "q" + "\u0301" * 50  # no precomposed q-acute: NFC leaves it as it is
    assert printable_text(zalgo, 10) == zalgo[:10]


@pytest.mark.parametrize(
    "raw",
    [
        "\x1b[31m" + "결제 실패 " * 300 + RLO,
        "e\u0301" * 300,
        f"👩{ZWJ}👩{ZWJ}👧" * 100,
        "a\u0301\x00\u202eb" * 200,
    ],
)
def test_printable_text_is_idempotent_and_bounded(raw: str) -> None:
    once = printable_text(raw, 100)
    assert printable_text(once, 100) == once
    assert len(once) <= 100
    assert unicodedata.is_normalized("NFC", once)
    assert all(unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp") for c in once)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("Kotlin\x00", "control", id="nul"),
        pytest.param("Kotlin\n8 weeks", "control", id="newline"),
        pytest.param("Kotlin\t8 weeks", "control", id="tab"),
        pytest.param(f"Kotlin{RLO}", "control", id="bidi-override"),
        pytest.param("\x1b[31mKotlin", "control", id="ansi"),
        pytest.param("   ", "blank", id="blank"),
    ],
)
def test_require_printable_refuses_api_input_with_the_field(value: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        require_printable({"orderName": value, "reason": "fine"})

    [problem] = refused.value.problems
    assert (problem.field, problem.location) == ("orderName", "body")
    assert reason in problem.reason.en and "orderName" in problem.reason.en
    assert "orderName" in problem.reason.ko  # the same reason in Korean
    assert refused.value.text == problem.reason


def test_require_printable_accepts_ordinary_text_and_absent_fields() -> None:
    require_printable(
        {
            "orderName": "코틀린 코루틴 스터디 (8주) — café 👩\u200d👩\u200d👧",
            "reason": None,
            "holderName": "김민지",
        }
    )


def test_require_printable_names_every_bad_field() -> None:
    with pytest.raises(ValidationFailed) as refused:
        require_printable({"reason": "a\x00", "holderName": "b\u202e", "bank": "신한"})

    assert [p.field for p in refused.value.problems] == ["reason", "holderName"]


@pytest.mark.parametrize("code", ["PAY_PROCESS_CANCELED", "REJECT_CARD_COMPANY", "A", "_" * 64])
def test_a_pg_error_code_of_tosss_shape_is_kept(code: str) -> None:
    assert pg_error_code(code) == code


@pytest.mark.parametrize(
    "code",
    [
        None,
        "",
        "reject",
        "REJECT CARD",
        "REJECT-CARD",
        "REJECT\n",
        "X" * 65,
        "<script>",
        "ＲＥＪＥＣＴ",
        "ÉCHEC",
    ],
)
def test_anything_else_is_no_pg_error_code(code: str | None) -> None:
    assert pg_error_code(code) is None
