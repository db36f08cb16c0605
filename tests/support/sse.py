"""Reading a Server-Sent Events stream the way a browser's EventSource does (WHATWG HTML, "Parsing
an event stream"), for the tests and scripts/bench_sse.py: lines in, events and comments out.

    async with client.stream("GET", url) as response:
        async for item in sse_items(response.aiter_lines()):
            if isinstance(item, SseEvent): ...
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None  # the last id field seen (EventSource's "last event ID")
    retry: int | None  # the retry field seen with it, if any
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class SseComment:
    text: str
    received_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class SseRetry:
    """A block with a retry field and no data: it sets the reconnection time, dispatches nothing."""

    milliseconds: int


SseItem = SseEvent | SseComment | SseRetry


class _Parser:
    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []
        self.last_id: str | None = None
        self.retry: int | None = None

    def feed(self, line: str) -> SseItem | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return SseComment(line[1:].lstrip(" "))
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SseItem | None:
        retry, self.retry = self.retry, None
        if not self.data:
            self.event = ""
            return SseRetry(retry) if retry is not None else None
        item = SseEvent(
            event=self.event or "message", data="\n".join(self.data), id=self.last_id, retry=retry
        )
        self.event, self.data = "", []
        return item


async def sse_items(lines: AsyncIterable[str]) -> AsyncIterator[SseItem]:
    """Events, comments and retry blocks from a stream's lines (without their line breaks)."""
    parser = _Parser()
    async for line in lines:
        item = parser.feed(line.rstrip("\r\n"))
        if item is not None:
            yield item


def parse_sse(text: str) -> list[SseItem]:
    """Everything in a whole (finished) stream body; an unfinished last block is dropped, as
    EventSource does."""
    return list(_parse_lines(text.splitlines()))


def _parse_lines(lines: Iterable[str]) -> Iterator[SseItem]:
    parser = _Parser()
    for line in lines:
        item = parser.feed(line)
        if item is not None:
            yield item
