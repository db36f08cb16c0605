"""GET /api/payments/{id}/events in-process (AsyncTestClient) on a migrated SQLite file: who may
open a stream, the framing, resume, the cap, and the streamToken of the issue and status answers.

The test client reads a response to its end, so the streams here are of transactions that have
reached an end state (the stream ends by itself); live streams are tested with real processes in
tests/e2e/topology/test_status_stream.py, and the streaming logic in
tests/unit/core/test_status_stream.py.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from app.core.domain import Status, Transition
from app.core.status_stream import StatusEvent, StreamConfig
from app.main import Services, build_services, create_app
from app.migrate import upgrade_database
from app.settings import load_settings
from tests.support.fakes import FakeGateway, FakeQueue
from tests.support.sse import SseComment, SseEvent, SseRetry, parse_sse

STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50000}
MAX_PER_USER = 2
RETRY_MS = 2500


@dataclass
class Api:
    client: AsyncTestClient[Litestar]
    services: Services

    def bearer(self, user_id: str, *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.services.tokens.mint(user_id, admin=admin)}"}

    async def issue(self, user_id: str) -> dict[str, Any]:
        response = await self.client.post("/api/payments/issue", json=STUDY, headers=self.bearer(user_id))
        assert response.status_code == 201, response.text
        issued: dict[str, Any] = response.json()
        return issued

    async def walk(self, transaction_id: str, *statuses: Status) -> None:
        """Committed writes through the production repository, from CREATED through `statuses`."""
        current = Status.CREATED
        for target in statuses:
            transition = Transition(current, target, "test")
            assert await self.services.repository.apply(transaction_id, transition, now=datetime.now(UTC))
            current = target

    async def events(self, transaction_id: str, **params: str) -> httpx.Response:
        headers = {k.replace("_", "-"): v for k, v in params.items() if k != "streamToken"}
        query = {"streamToken": params["streamToken"]} if "streamToken" in params else None
        return await self.client.get(f"/api/payments/{transaction_id}/events", params=query, headers=headers)


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('events') / 't.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)
    settings = load_settings(
        {},
        database_url=url,
        environment="test",
        stream_max_per_user=MAX_PER_USER,
        stream_retry_ms=RETRY_MS,
    )
    services = build_services(settings, gateway=FakeGateway(), queue=FakeQueue())
    try:
        async with AsyncTestClient(app=create_app(services=services)) as client:
            yield Api(client, services)
    finally:
        await services.close()


@pytest.fixture
def user() -> str:
    return f"user_{secrets.token_hex(6)}"


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["message"], body
    return body


def status_events(response: httpx.Response) -> list[SseEvent]:
    return [item for item in parse_sse(response.text) if isinstance(item, SseEvent)]


# --- the streamToken in the issue and status answers -------------------------------------------------


async def test_the_issue_and_status_answers_carry_a_stream_token(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    assert api.services.stream_tokens.verify(issued["streamToken"], tid) == user
    status = (await api.client.get(f"/api/payments/{tid}/status", headers=api.bearer(user))).json()
    assert api.services.stream_tokens.verify(status["streamToken"], tid) == user


async def test_a_stream_token_is_no_bearer_token_anywhere(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    as_bearer = {"Authorization": f"Bearer {issued['streamToken']}"}
    for path in (
        f"/api/payments/{tid}/status",
        f"/api/payments/{tid}",
        "/api/payments",
        f"/api/payments/{tid}/events",
    ):
        envelope(await api.client.get(path, headers=as_bearer), 401, "AUTH_001")


# --- framing ------------------------------------------------------------------------------------------


async def test_a_finished_payment_streams_its_state_once_then_ends(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    await api.walk(
        tid,
        Status.PAYMENT_PENDING,
        Status.PAYMENT_SUCCESS,
        Status.PROVISION_PENDING,
        Status.PROVISION_SUCCESS,
    )

    response = await api.events(tid, streamToken=issued["streamToken"])

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    raw = response.text
    assert raw.startswith(f"retry: {RETRY_MS}\r\n\r\n"), raw[:80]
    items = parse_sse(raw)
    assert isinstance(items[0], SseRetry) and items[0].milliseconds == RETRY_MS
    (event,) = status_events(response)
    assert (event.event, event.id) == ("status", "5")  # 5 history rows: issued, 30, 40, 45, 50
    block = raw.split("\r\n\r\n")[1].split("\r\n")
    assert block[0] == "id: 5" and block[1] == "event: status" and block[2].startswith("data: {")
    assert len(block) == 3  # one data line: the JSON has no line breaks
    # The data is the status answer, byte for byte.
    status = await api.client.get(f"/api/payments/{tid}/status", headers=api.bearer(user))
    assert event.data == status.text
    assert event.json()["statusCode"] == 50


async def test_the_data_is_in_the_language_asked_for(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    await api.walk(tid, Status.PAYMENT_FAILED)
    english = {"Accept-Language": "en-US,en;q=0.9"}
    response = await api.client.get(
        f"/api/payments/{tid}/events", params={"streamToken": issued["streamToken"]}, headers=english
    )
    status = await api.client.get(f"/api/payments/{tid}/status", headers={**api.bearer(user), **english})
    (event,) = status_events(response)
    assert event.data == status.text
    assert event.json()["message"] == "The payment failed."


async def test_the_bearer_header_works_for_the_owner_and_an_admin(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    await api.walk(tid, Status.PAYMENT_FAILED)
    for headers in (api.bearer(user), api.bearer("someone-else", admin=True)):
        response = await api.client.get(f"/api/payments/{tid}/events", headers=headers)
        assert response.status_code == 200, response.text
        assert [e.json()["statusCode"] for e in status_events(response)] == [41]


# --- refused before the stream starts: the error envelope ------------------------------------------


async def test_refusals_are_envelopes_before_any_stream(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    other = await api.issue(user)
    bearer_jwt = api.services.tokens.mint(user)

    envelope(await api.client.get(f"/api/payments/{tid}/events"), 401, "AUTH_001")  # nothing at all
    body = envelope(await api.events(tid, streamToken=bearer_jwt), 401, "AUTH_001")
    assert "URL" in body["message"] or "URL" in json.dumps(body, ensure_ascii=False)
    envelope(await api.events(tid, streamToken="st1.garbage.garbage"), 401, "AUTH_001")
    envelope(await api.events(tid, streamToken=other["streamToken"]), 403, "AUTH_002")  # another's
    envelope(await api.events("TXN_nobody_has_this", streamToken=issued["streamToken"]), 403, "AUTH_002")
    envelope(
        await api.client.get("/api/payments/TXN_nobody_has_this/events", headers=api.bearer(user)),
        404,
        "PAY_008",
    )
    # Another user's transaction is no transaction of theirs (as the status endpoint answers).
    envelope(
        await api.client.get(f"/api/payments/{tid}/events", headers=api.bearer("mallory")), 404, "PAY_008"
    )


async def test_an_expired_stream_token_is_refused(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    tokens = api.services.stream_tokens
    real_now = tokens._now
    tokens._now = lambda: real_now() + tokens.ttl_seconds + 1  # an hour later
    try:
        body = envelope(await api.events(tid, streamToken=issued["streamToken"]), 401, "AUTH_001")
    finally:
        tokens._now = real_now
    assert body["message"]


# --- resume --------------------------------------------------------------------------------------------


async def test_resume_sends_the_current_state_only_if_it_is_newer(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid, token = issued["transactionId"], issued["streamToken"]
    await api.walk(tid, Status.PAYMENT_PENDING, Status.PAYMENT_FAILED)  # sequence 3

    missed = await api.events(tid, streamToken=token, Last_Event_ID="2")
    assert [(e.id, e.json()["statusCode"]) for e in status_events(missed)] == [("3", 41)]

    # The client has seen the end: 204, which tells an EventSource to stop reconnecting.
    for seen in ("3", "7"):
        done = await api.events(tid, streamToken=token, Last_Event_ID=seen)
        assert (done.status_code, done.text) == (204, ""), done.text

    # ?lastEventId= for polyfills; the header wins when both are sent.
    by_query = await api.client.get(
        f"/api/payments/{tid}/events", params={"streamToken": token, "lastEventId": "3"}
    )
    assert by_query.status_code == 204
    both = await api.client.get(
        f"/api/payments/{tid}/events",
        params={"streamToken": token, "lastEventId": "3"},
        headers={"Last-Event-ID": "1"},
    )
    assert [e.id for e in status_events(both)] == ["3"]

    # An id that is not one of ours starts afresh.
    fresh = await api.events(tid, streamToken=token, Last_Event_ID="not-a-number")
    assert [e.id for e in status_events(fresh)] == ["3"]


# --- the cap, and the gauge ---------------------------------------------------------------------------


def open_streams() -> float:
    return REGISTRY.get_sample_value("payments_status_streams_open") or 0.0


async def test_over_the_per_user_cap_is_429_rate_limited(api: Api, user: str) -> None:
    issued = await api.issue(user)
    tid = issued["transactionId"]
    await api.walk(tid, Status.PAYMENT_FAILED)
    before = open_streams()
    held = [api.services.stream_slots.take(user) for _ in range(MAX_PER_USER)]  # streams open elsewhere
    assert all(slot is not None for slot in held)
    try:
        response = await api.events(tid, streamToken=issued["streamToken"])
        body = envelope(response, 429, "RATE_LIMITED")
        assert response.headers["retry-after"].isdigit()
        assert str(MAX_PER_USER) in body["message"]
        # Another user is not affected.
        someone = await api.issue(f"{user}-2")
        await api.walk(someone["transactionId"], Status.PAYMENT_FAILED)
        assert (
            await api.events(someone["transactionId"], streamToken=someone["streamToken"])
        ).status_code == 200
    finally:
        for slot in held:
            assert slot is not None
            slot.release()
    assert (await api.events(tid, streamToken=issued["streamToken"])).status_code == 200
    assert open_streams() == before  # every stream that ended gave its slot back
    assert api.services.stream_slots.open_for(user) == 0


async def test_a_live_stream_in_the_embedded_mode_is_woken_by_a_local_write(api: Api, user: str) -> None:
    # The app's own wiring (SQLite, LocalStatusChanges): a committed write wakes the stream at once.
    issued = await api.issue(user)
    tid = issued["transactionId"]
    streams = api.services.status_streams
    assert streams.config == StreamConfig(
        heartbeat_seconds=15.0, max_seconds=600.0, poll_seconds=1.0, max_per_user=2
    )
    first = await streams.current(tid)
    assert first is not None and first.sequence == 1
    items = streams.follow(first)
    opening = await anext(items)
    assert isinstance(opening, StatusEvent) and opening.sequence == 1  # the current state, at once
    loop = asyncio.get_running_loop()
    started = loop.time()
    await api.walk(tid, Status.PAYMENT_PENDING)
    async with asyncio.timeout(2.0):
        event = await anext(items)
    assert loop.time() - started < 1.0  # not the 15 s heartbeat: the announcement woke it
    assert isinstance(event, StatusEvent) and event.sequence == 2
    await items.aclose()


async def test_sse_frames_are_what_event_source_parses(api: Api) -> None:
    from app.http.status_events import KEEP_ALIVE_FRAME, status_frame

    frame = status_frame(b'{"a":1}', 7)
    assert frame == b'id: 7\r\nevent: status\r\ndata: {"a":1}\r\n\r\n'
    (event,) = parse_sse(frame.decode())
    assert isinstance(event, SseEvent) and (event.event, event.id, event.json()) == ("status", "7", {"a": 1})
    (comment,) = parse_sse(KEEP_ALIVE_FRAME.decode())
    assert isinstance(comment, SseComment) and comment.text == "keep-alive"
