"""GET /api/payments/{id}/events: a transaction's status as Server-Sent Events (`text/event-stream`).

What is streamed, when, and how a stream is resumed is app.core.status_stream's; this module is the
HTTP side: who may open a stream, the per-user cap, and the framing.

- **Auth.** The bearer header (the owner, or an admin), or, for a browser's `EventSource`, which
  cannot send headers, `?streamToken=` from the issue or status answer (app.core.stream_tokens:
  this transaction only, at most an hour, never a bearer token). A bearer JWT in the URL is refused.
  Everything is checked before the stream starts, so a refusal is an ordinary error envelope: 401,
  403, 404 (no such transaction, or not the caller's), 429 (`STREAM_MAX_PER_USER` open already).
- **Frames.** `retry: <STREAM_RETRY_MS>` first; then `event: status`, `id: <sequence>`,
  `data: <the status answer's JSON>` per state; `: keep-alive` comments in between.
- **Resume.** `Last-Event-ID` (or `?lastEventId=` for polyfills that cannot set it): the current
  state is sent only if its sequence is higher. When it is not and the transaction has reached its
  end already, the answer is 204 No Content, which tells an `EventSource` to stop reconnecting.
- **Disconnects.** Litestar cancels the stream when the client goes away (it listens for
  `http.disconnect` beside the body); the generator's clean-up (slot, watcher) is synchronous, so
  the cancellation finishes it and nothing is logged.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import Parameter
from litestar.response import ServerSentEventMessage, Stream
from litestar.serialization import encode_json

from app import messages as texts
from app.core.auth import TokenAuthority
from app.core.domain import TransactionNotFound
from app.core.ports import SequencedView
from app.core.schemas import status_response
from app.core.status_stream import StatusEvent, StatusStreams, StreamItem, StreamSlot, StreamSlots
from app.core.stream_tokens import StreamTokens
from app.http.openapi import BEARER
from app.http.payments import TransactionIdPath
from app.messages import Lang, language_of
from app.ratelimit import RateLimited

EVENT_STREAM = "text/event-stream"
KEEP_ALIVE_FRAME = b": keep-alive\r\n\r\n"
OVER_THE_CAP_RETRY_SECONDS = 10  # Retry-After of a 429: streams close on their own within minutes


@dataclass(frozen=True, slots=True)
class StatusEventsPieces:
    """What the stream endpoint needs, put in app.state by the composition root."""

    tokens: TokenAuthority
    stream_tokens: StreamTokens
    streams: StatusStreams
    slots: StreamSlots
    retry_ms: int


StreamTokenQuery = Annotated[
    str | None,
    Parameter(
        query="streamToken",
        required=False,
        max_length=1024,
        description="The `streamToken` of the issue or status answer, instead of the bearer header "
        "(EventSource cannot send one). Never a bearer token.",
    ),
]
LastEventIdHeader = Annotated[
    str | None,
    Parameter(
        header="Last-Event-ID",
        required=False,
        max_length=64,
        description="The id of the last event received (EventSource sends it when it reconnects)",
    ),
]
LastEventIdQuery = Annotated[
    str | None,
    Parameter(
        query="lastEventId",
        required=False,
        max_length=64,
        description="Last-Event-ID for clients that cannot set the header; the header wins",
    ),
]


def last_event_id(header: str | None, query: str | None) -> int | None:
    """The sequence the client saw last; None when it names none of ours (start afresh)."""
    raw = (header if header is not None else query or "").strip()
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    return None


def status_frame(data: bytes, sequence: int) -> bytes:
    return ServerSentEventMessage(data=data, event="status", id=sequence).encode()


async def event_frames(
    items: AsyncIterator[StreamItem],
    *,
    retry_ms: int,
    encode: Callable[[StatusEvent], bytes],
    slot: StreamSlot,
) -> AsyncIterator[bytes]:
    """The stream's bytes; releases `slot` however it ends (the end, a disconnect, an error)."""
    try:
        yield ServerSentEventMessage(data=None, retry=retry_ms).encode()
        async for item in items:
            if isinstance(item, StatusEvent):
                yield status_frame(encode(item), item.sequence)
            else:
                yield KEEP_ALIVE_FRAME
    finally:
        slot.release()  # synchronous: nothing to await in a cancelled task


class StatusEventsController(Controller):
    path = "/api/payments"
    tags = ["payments"]
    security = [*BEARER, {}]  # or no header at all, with ?streamToken=

    @get(
        "/{transaction_id:str}/events",
        summary="Follow a transaction's status (Server-Sent Events)",
        description="A `text/event-stream`: `retry:` first, then an `event: status` with the current "
        "state (`id:` its sequence, `data:` the status answer's JSON), one more per change, "
        "`: keep-alive` comments in between; it ends after 41, 50 or 95, or after STREAM_MAX_SECONDS. "
        "Authorize with the bearer header or `?streamToken=`; resume with `Last-Event-ID`.",
        media_type=EVENT_STREAM,
        response_description="The status events; 204 when a resumed stream has nothing left to send",
    )
    async def events(
        self,
        request: Request[Any, Any, Any],
        transaction_id: TransactionIdPath,
        stream_token: StreamTokenQuery = None,
        last_event_id_header: LastEventIdHeader = None,
        last_event_id_query: LastEventIdQuery = None,
    ) -> Response[Any]:
        pieces: StatusEventsPieces = request.app.state.status_events
        headers = request.headers
        authorization = headers.get("authorization")
        is_admin = False
        if authorization is None and stream_token is not None:
            user_id = pieces.stream_tokens.verify(stream_token, transaction_id)
        else:
            caller = pieces.tokens.verify(authorization)
            user_id, is_admin = caller.user_id, caller.is_admin
        current = await pieces.streams.current(transaction_id)
        if current is None or (current.view.user_id != user_id and not is_admin):
            raise TransactionNotFound()
        after = last_event_id(last_event_id_header, last_event_id_query)
        if pieces.streams.nothing_to_send(current, after):
            return Response(content=b"", status_code=204, headers={"Cache-Control": "no-store"})
        slot = pieces.slots.take(user_id)
        if slot is None:
            raise RateLimited(
                texts.STREAMS_PER_USER.format(limit=pieces.slots.per_user),
                retry_after=OVER_THE_CAP_RETRY_SECONDS,
            )
        lang = language_of(headers.get("accept-language"))
        frames = event_frames(
            pieces.streams.follow(current, after=after, lang=lang),
            retry_ms=pieces.retry_ms,
            encode=_encoder(pieces, current, lang),
            slot=slot,
        )
        # A stream that never starts (the client left before the first byte) is never iterated, so
        # its `finally` never runs: the slot is released when the generator is collected.
        weakref.finalize(frames, slot.release)
        return Stream(
            frames,
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def _encoder(pieces: StatusEventsPieces, first: SequencedView, lang: Lang) -> Callable[[StatusEvent], bytes]:
    """Each event's data: the status answer's JSON, byte for byte (a fresh streamToken included)."""
    transaction_id, owner = first.view.transaction_id, first.view.user_id

    def encode(event: StatusEvent) -> bytes:
        report = event.report
        answer = status_response(
            report.view,
            report.message,
            report.retry_after_ms,
            lang,
            stream_token=pieces.stream_tokens.mint(transaction_id, owner),
        )
        return encode_json(answer)

    return encode
