"""Text that came from a buyer, a browser or a PG, made fit to store and to show. Pure Python.

Three rules, one definition of "unprintable":
- our API's own input (an orderName, a refund reason) with such characters is refused: PAY_000
  naming the field (`require_printable`);
- text we cannot refuse (a fail redirect's message, a PG's error or cancel reason) is cleaned
  (`printable_text`) before it is stored or put in a redirect;
- a fail redirect's `code` is kept only when it has the shape of a PG's code (`pg_error_code`).

Unprintable: control characters (C0, DEL, C1), lone surrogates, line and paragraph separators,
and format characters (bidi overrides and isolates, zero-width spaces, BOM), which can hide or
reorder what a reader sees. ZWJ and ZWNJ stay: emoji sequences and scripts such as Persian
spell with them. Every field we store is one line: a line break or tab becomes one space.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from app import messages as texts
from app.core.domain import Problem, ValidationFailed

_ZWNJ, _ZWJ = "\u200c", "\u200d"
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Line breaks and tabs separate words: they become a space, not nothing.
_BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
_PG_ERROR_CODE = re.compile(r"[A-Z_]{1,64}")
# A skin-tone modifier belongs to the emoji before it.
_EMOJI_MODIFIERS = range(0x1F3FB, 0x1F400)


def is_unprintable(char: str) -> bool:
    """A character that must not be stored or shown in a line of text."""
    return unicodedata.category(char) in _UNPRINTABLE_CATEGORIES and char not in (_ZWNJ, _ZWJ)


def printable_text(value: str, max_length: int) -> str:
    """`value` on one line, without unprintable characters, NFC-normalized, trimmed, and at most
    `max_length` characters (a column's VARCHAR length), cut where no character loses its marks."""
    if value.isprintable():
        # No control, format or separator character but the space (str.isprintable's rule, wider
        # than ours): nothing to replace or drop, the usual case and a fraction of the work.
        text = (value if value.isascii() else unicodedata.normalize("NFC", value)).strip()
    else:
        text = _BREAKS.sub(" ", value)
        text = "".join(char for char in text if not is_unprintable(char))
        text = unicodedata.normalize("NFC", text).strip()
    if len(text) > max_length:
        text = text[: _cluster_start(text, max_length)].rstrip()
    return text


def pg_error_code(value: str | None) -> str | None:
    """A PG's error code as we store it and put it in a URL: 1–64 of A–Z and `_` (every Toss code
    is), else None. A fail redirect's `code` is the browser's text: anything else is not a code."""
    return value if value is not None and _PG_ERROR_CODE.fullmatch(value) else None


def require_printable(fields: Mapping[str, str | None]) -> None:
    """Refuse our API's input (PAY_000, `details` naming each field) holding unprintable
    characters or nothing visible. Keys are the fields' names on the wire; None is absent."""
    problems = []
    for field, value in fields.items():
        if value is None:
            continue
        if not value.isprintable() and any(is_unprintable(char) for char in value):
            problems.append(Problem(field, texts.UNPRINTABLE.format(field=field)))
        elif not value.strip():
            problems.append(Problem(field, texts.BLANK.format(field=field)))
    if problems:
        raise ValidationFailed(*problems)


def _cluster_start(text: str, cut: int) -> int:
    """`cut`, moved back to where the character cluster around it starts (a base character with
    its combining marks, variation selectors, skin tone, or a ZWJ emoji sequence). A cluster
    longer than the whole limit is cut where asked rather than dropped."""
    start = cut
    while start > 0 and (_continues_cluster(text[start]) or text[start - 1] == _ZWJ):
        start -= 1
    return start or cut


def _continues_cluster(char: str) -> bool:
    return (
        char == _ZWJ
        or unicodedata.category(char) in ("Mn", "Mc", "Me")  # combining marks, variation selectors
        or ord(char) in _EMOJI_MODIFIERS
    )
