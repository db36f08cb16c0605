"""Webhooks cannot be used to flood the worker (issue 11): API, worker and mock Toss as real processes.

Real Toss does not sign payment webhooks, so anyone can post one. What a forged delivery may cost
is bounded three ways: a lookup that finds no payment ends that delivery (one lookup, no retries);
webhook jobs have slots of their own, so grants and refunds never wait behind them; and each
source address may post only so many per minute (429 with Retry-After, which Toss retries later).

The environment (`flood_env`): WEBHOOK_MAX_JOBS=2, RATE_LIMIT_WEBHOOK_PER_MINUTE=25 and
TRUSTED_PROXIES=127.0.0.20. Each test posts from loopback addresses of its own (Linux routes all of
127.0.0.0/8 to the loopback interface), so their limits never meet.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from app.db import webhook_events as webhook_table

from .helpers import (
    TRUSTED_PROXY,
    WEBHOOK_JOB_SLOTS,
    WEBHOOK_LIMIT_PER_MINUTE,
    Shop,
    eventually,
    new_transmission_id,
)

FORGED = 10  # the issue's report: 10 forged webhooks made 80 lookups
FLOOD = 40  # slow webhook deliveries queued ahead of a buyer's grant
WORKER_SLOTS = 20  # max_jobs of the grants-and-refunds worker
LOOKUP_LATENCY_MS = 2_000
NOT_FOUND_DETAIL = "the PG has no payment for this order"


def forged_done(order_id: str) -> dict[str, Any]:
    """A PAYMENT_STATUS_CHANGED claiming DONE: anyone can post it, it only names a payment."""
    return {
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-03-01T12:00:00.000000",
        "data": {"orderId": order_id, "status": "DONE", "paymentKey": "pk_forged_" + secrets.token_hex(6)},
    }


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, (response.status_code, response.text)
    body = response.json()
    assert set(body) <= {"code", "message", "details"}, body
    assert body["code"] == "RATE_LIMITED", body
    assert isinstance(body["message"], str) and body["message"], body
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), response.headers
    assert 1 <= int(retry_after) <= 60, retry_after
    assert body["details"]["retryAfterSeconds"] == int(retry_after), body


async def away_from_a_window_edge() -> None:
    """The limit counts per clock minute: start at least 10 s before the next one (≤ 10 s wait)."""
    left = 60 - time.time() % 60
    if left < 10:
        await asyncio.sleep(left + 0.2)


# --- (a) a lookup that finds nothing ends the delivery --------------------------------------------


async def test_forged_webhooks_for_an_order_the_pg_does_not_know_cost_one_lookup_each(
    flood_shop: Shop,
) -> None:
    shop = flood_shop
    attacker = shop.shopper("forger")
    # An order of ours (anyone with an account can issue one) that never reached Toss.
    tid = (await shop.issue(attacker))["transactionId"]
    ids = [new_transmission_id() for _ in range(FORGED)]
    async with shop.client_from("127.0.0.11") as client:
        for transmission_id in ids:
            response = await shop.post_webhook(forged_done(tid), transmission_id=transmission_id, via=client)
            assert response.status_code == 200 and response.json() == {"outcome": "QUEUED"}, response.text

    async def progress() -> tuple[dict[str, str], int]:
        return await shop.event_outcomes(ids, tid), len(await shop.lookups(tid))

    # Done when every delivery has its outcome, or as soon as the lookups outnumber the deliveries.
    outcomes, lookups = await eventually(
        progress,
        lambda p: p[1] > FORGED or (set(p[0]) == set(ids) and "RECEIVED" not in p[0].values()),
    )
    assert lookups <= FORGED, f"{lookups} lookups for {FORGED} deliveries: NOT_FOUND was retried"
    assert outcomes == dict.fromkeys(ids, "IGNORED"), outcomes
    events = {e["transmission_id"]: e for e in await shop.webhook_events(tid)}
    assert {events[t]["detail"] for t in ids} == {NOT_FOUND_DETAIL}, [events[t]["detail"] for t in ids]
    # No retry comes later either (the stack retries after 0.2, 0.4, … s).
    await asyncio.sleep(1.5)
    found = await shop.lookups(tid)
    assert len(found) == FORGED, [entry["status"] for entry in found]
    assert {entry["status"] for entry in found} == {404}
    status = await shop.status(attacker, tid)
    assert status["statusCode"] == 10, status  # the forged DONE changed nothing
    assert await shop.confirms(tid) == []
    print(f"SCENARIO forged-webhooks-unknown-to-pg: deliveries={FORGED} lookups={len(found)}")


# --- (b) webhook jobs do not take the grants' and refunds' slots -----------------------------------


async def test_a_grant_and_a_refund_complete_while_slow_webhook_jobs_fill_their_slots(
    flood_shop: Shop,
) -> None:
    shop = flood_shop
    # Every lookup takes 2 s: each webhook job holds its slot that long.
    await shop.set_chaos({"seed": 11, "routes": {"lookup": {"latencyMs": LOOKUP_LATENCY_MS}}})
    attacker = shop.shopper("flooder")
    target = (await shop.issue(attacker))["transactionId"]
    ids = [new_transmission_id() for _ in range(FLOOD)]
    for address, batch in (("127.0.0.12", ids[: FLOOD // 2]), ("127.0.0.13", ids[FLOOD // 2 :])):
        async with shop.client_from(address) as client:
            for transmission_id in batch:
                response = await shop.post_webhook(
                    forged_done(target), transmission_id=transmission_id, via=client
                )
                assert response.status_code == 200 and response.json() == {"outcome": "QUEUED"}, response.text

    # A buyer pays after the whole flood was queued: the grant, then a refund, are queued behind it.
    buyer = shop.shopper("buyer")
    issued = await shop.issue(buyer)
    tid = issued["transactionId"]
    landed = await shop.follow(await shop.open_window(issued))
    assert landed.is_success, landed
    await shop.wait_for_status(buyer, tid, 50)
    refund = await shop.api.post(
        f"/api/payments/{tid}/refund", json={"reason": "changed my mind"}, headers=buyer.auth
    )
    assert refund.status_code == 202, refund.text
    await shop.wait_for_status(buyer, tid, 95)
    started = len(await shop.lookups(target))

    # Sharing one pool of WORKER_SLOTS in queue order, the grant could not have started before
    # FLOOD - WORKER_SLOTS of the flood's jobs had; with slots of their own, the flood moved only
    # WEBHOOK_JOB_SLOTS at a time, one 2 s lookup each, while the grant and the refund ran.
    assert started < FLOOD - WORKER_SLOTS, f"{started} of {FLOOD} flood jobs ran before the refund ended"
    assert len(await shop.cancels(tid)) == 1

    # The flood still drains, one lookup per delivery, once lookups are fast again.
    await shop.clear_chaos()
    outcomes = await shop.wait_for_events_processed(target, ids)
    assert set(outcomes.values()) == {"IGNORED"}, outcomes
    assert len(await shop.lookups(target)) == FLOOD
    print(
        f"SCENARIO webhook-flood-vs-grant: flood={FLOOD} slots={WEBHOOK_JOB_SLOTS} "
        f"flood-lookups-before-refund-done={started}"
    )


# --- (c) a per-source limit with 429 and Retry-After ----------------------------------------------


async def test_a_source_over_the_webhook_limit_gets_429_with_retry_after_and_others_are_accepted(
    flood_shop: Shop,
) -> None:
    shop = flood_shop
    unknown = forged_done("TXN_not_ours_" + secrets.token_hex(6))  # recorded and IGNORED: no job
    await away_from_a_window_edge()

    # A direct caller is its connection's address, whatever X-Forwarded-For it claims.
    refused_id = new_transmission_id()
    async with shop.client_from("127.0.0.21") as direct:
        accepted = [
            await shop.post_webhook(unknown, via=direct, x_forwarded_for=f"198.51.100.{n}")
            for n in range(WEBHOOK_LIMIT_PER_MINUTE)
        ]
        refused = await shop.post_webhook(
            unknown, transmission_id=refused_id, via=direct, x_forwarded_for="198.51.100.250"
        )
    assert [r.status_code for r in accepted] == [200] * WEBHOOK_LIMIT_PER_MINUTE, [r.text for r in accepted]
    assert_rate_limited(refused)
    async with shop.db.connect() as conn:
        recorded = await conn.scalar(
            select(func.count()).where(webhook_table.c.transmission_id == refused_id)
        )
    assert recorded == 0  # refused before anything was stored: Toss delivers it again later

    async with shop.client_from("127.0.0.22") as other:
        response = await shop.post_webhook(unknown, via=other)
    assert response.status_code == 200 and response.json() == {"outcome": "IGNORED"}, response.text

    # Behind the trusted proxy, each client it forwards for is a source of its own: the right-most
    # address the proxy did not add itself, so a client cannot pick its own by prepending one.
    async with shop.client_from(TRUSTED_PROXY) as proxy:
        for _ in range(WEBHOOK_LIMIT_PER_MINUTE):
            response = await shop.post_webhook(unknown, via=proxy, x_forwarded_for="203.0.113.7")
            assert response.status_code == 200, response.text
        assert_rate_limited(await shop.post_webhook(unknown, via=proxy, x_forwarded_for="203.0.113.7"))
        assert_rate_limited(
            await shop.post_webhook(unknown, via=proxy, x_forwarded_for="192.0.2.99, 203.0.113.7")
        )
        response = await shop.post_webhook(unknown, via=proxy, x_forwarded_for="203.0.113.8")
        assert response.status_code == 200, response.text
    print(f"SCENARIO webhook-rate-limit: limit={WEBHOOK_LIMIT_PER_MINUTE}/min per source")
