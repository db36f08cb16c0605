"""Per-user rate limit on issuing, shared by the replicas through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import RunningServer
from tests.support.stack import Stack, running_stack

from .helpers import STUDY, user_id

LIMIT = 3


@pytest.fixture(scope="module")
def limited_stack(mysql_url: str, mock_toss: RunningServer) -> Iterator[Stack]:
    # Issuing never calls the PG, so the shared mock is enough; two replicas share the counter.
    with running_stack(
        mysql_url=mysql_url,
        toss_url=mock_toss.url,
        apis=2,
        workers=0,
        env={"RATE_LIMIT_ISSUE_PER_MINUTE": str(LIMIT)},
    ) as stack:
        yield stack


async def _away_from_a_window_edge() -> None:
    """The limit counts per clock minute: start at least 5 s before the next minute (≤ 5 s wait)."""
    left = 60 - time.time() % 60
    if left < 5:
        await asyncio.sleep(left + 0.2)


async def test_the_fourth_issue_in_a_minute_is_429_for_that_user_only(limited_stack: Stack) -> None:
    replica_a, replica_b = (api.url for api in limited_stack.apis)
    alice, bob = user_id("rl-alice"), user_id("rl-bob")
    await _away_from_a_window_edge()
    async with httpx.AsyncClient(timeout=10.0) as http:
        accepted = [
            await http.post(f"{url}/api/payments/issue", json=STUDY, headers=limited_stack.headers(alice))
            for url in (replica_a, replica_b, replica_a)
        ]
        refused = await http.post(
            f"{replica_b}/api/payments/issue", json=STUDY, headers=limited_stack.headers(alice)
        )
        other_user = await http.post(
            f"{replica_a}/api/payments/issue", json=STUDY, headers=limited_stack.headers(bob)
        )
        still_reads = await http.get(f"{replica_a}/api/payments", headers=limited_stack.headers(alice))

    assert [r.status_code for r in accepted] == [201] * LIMIT, [r.text for r in accepted]
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/json")
    body = refused.json()
    assert set(body) <= {"code", "message", "details"}, body
    assert body["code"] == "RATE_LIMITED", body
    assert isinstance(body["message"], str) and body["message"], body
    retry_after = refused.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), refused.headers
    assert 1 <= int(retry_after) <= 60, retry_after
    assert body["details"]["retryAfterSeconds"] == int(retry_after), body
    assert other_user.status_code == 201, other_user.text
    assert still_reads.status_code == 200, still_reads.text  # only issuing is limited
    assert len(still_reads.json()["items"]) == LIMIT  # the refused issue created nothing
