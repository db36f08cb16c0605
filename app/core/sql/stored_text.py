"""Text as it is stored: printable, on one line, and within its column (app.core.printable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column

from app.core.printable import printable_text

# A history note's strings (a PG's message, a callback's amount) are as short as its message.
NOTE_LENGTH = 255


def fit(column: Column[Any], value: str | None) -> str | None:
    """The value made printable and cut to the column's length; None stays None."""
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), f"{column} has no length"
    return None if value is None else printable_text(value, length)


def printable_notes(value: Any) -> Any:
    """Every string inside a JSON-like value made printable and cut to NOTE_LENGTH."""
    if isinstance(value, str):
        return printable_text(value, NOTE_LENGTH)
    if isinstance(value, Mapping):
        return {key: printable_notes(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_notes(item) for item in value]
    return value
