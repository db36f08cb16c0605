"""A worker killed with SIGKILL in the middle of a grant: another worker finishes the job, the buyer
is granted exactly once, and the recovery is bounded by the job timeout + 10 s (README "Recover"):
the dead worker's claim on the job expires by then, and the test waits that long plus a margin."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.fake_downstream import FakeDownstream
from tests.support.servers import RunningServer
from tests.support.stack import Stack, WorkerProcess

from .conftest import private_stack
from .helpers import STUDY, Shop, codes

JOB_TIMEOUT_SECONDS = 5  # PROVISIONING_JOB_TIMEOUT_SECONDS of the stack (FAST_ENV)
RECOVERY_BOUND_SECONDS = JOB_TIMEOUT_SECONDS + 10  # arq's in-progress key: job timeout + 10 s
# How long to keep waiting for 50 after the kill: the bound plus a margin for a busy 2-core host
# (longer only to measure a slower recovery).
RECOVERY_WAIT_SECONDS = max(
    RECOVERY_BOUND_SECONDS + 10.0, float(os.environ.get("PROVISIONING_RECOVERY_WAIT_SECONDS", "0"))
)


@pytest.fixture(scope="module")
def stack(
    mysql_url: str, redis_url: str, mock_toss: RunningServer, downstream: FakeDownstream
) -> Iterator[Stack]:
    """Two workers from the start; the grant's HTTP timeout (4 s) outlasts the moment of the kill."""
    with private_stack(
        mysql_url=mysql_url,
        toss_url=mock_toss.url,
        downstream=downstream,
        workers=2,
        env={
            "PROVISIONING_HTTP_TIMEOUT_SECONDS": "4",
            "PROVISIONING_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT_SECONDS),
        },
    ) as started:
        yield started


def in_progress_seconds_left(stack: Stack, job_id: str) -> float:
    """How long arq's in-progress marker of `job_id` lives on (in the stack's Redis database)."""
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        ttl_ms = int(client.pttl(f"arq:in-progress:{job_id}"))  # type: ignore[arg-type]
    finally:
        client.close()
    assert ttl_ms > 0, f"no in-progress key for {job_id} (pttl {ttl_ms})"
    return ttl_ms / 1000


def running_the_job(workers: list[WorkerProcess], job_id: str, timeout: float = 5.0) -> WorkerProcess:
    """The worker whose log shows it started `job_id` (arq logs `<job_id>:provision_grant(...)`)."""
    pattern = re.compile(re.escape(job_id) + r":provision_grant")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [w for w in workers if w.process.poll() is None and pattern.search(w.log())]
        if len(running) == 1:
            return running[0]
        time.sleep(0.02)
    raise AssertionError(f"no single worker shows {job_id} started")


async def test_sigkill_mid_grant_is_recovered_by_another_worker_and_grants_once(
    shop: Shop, stack: Stack
) -> None:
    buyer = shop.buyer("crash")
    issued = await shop.issue(buyer, STUDY)
    shop.fake.hold(60, key=issued["transactionId"])  # the grant request stays in flight until released

    tid = await shop.pay(issued)
    await shop.fake.wait_for_arrival(tid, within=20)
    victim = running_the_job(stack.workers, f"provision:{tid}")
    victim.kill()  # SIGKILL: no shutdown, no cleanup, the job's keys stay in Redis
    killed_at = time.monotonic()
    assert victim.process.returncode == -9
    # arq lets another worker take the job once the dead one's in-progress key expires: the bound.
    in_progress_ttl = in_progress_seconds_left(stack, f"provision:{tid}")
    assert in_progress_ttl <= RECOVERY_BOUND_SECONDS, (
        f"the dead worker's claim lives {in_progress_ttl:.1f}s; bound is job timeout {JOB_TIMEOUT_SECONDS}s + 10s"
    )

    replacement = stack.start_worker()
    shop.fake.release()  # the held request is answered now (to nobody), which grants
    status = (await shop.status(buyer, tid))["statusCode"]
    assert status == 45, status  # the killed run never reported

    recovered_in: float | None = None
    try:
        await shop.wait_for_status(buyer, tid, 50, within=RECOVERY_WAIT_SECONDS)
        recovered_in = time.monotonic() - killed_at
    except AssertionError as exc:
        raise AssertionError(
            f"not granted within {RECOVERY_WAIT_SECONDS:.0f}s of the SIGKILL (bound: job timeout "
            f"{JOB_TIMEOUT_SECONDS}s + 10s); the dead worker's arq:in-progress:provision:{tid} key had "
            f"{in_progress_ttl:.1f}s to live at the kill"
        ) from exc
    finally:
        shown = (
            f"{recovered_in:.1f}s" if recovered_in is not None else f"not within {RECOVERY_WAIT_SECONDS:.0f}s"
        )
        print(f"\nrecovery after SIGKILL: {shown} (in-progress key TTL at the kill: {in_progress_ttl:.1f}s)")

    grants = shop.fake.grants(tid)
    assert len(grants) == 1, grants  # one distinct grant, however many requests
    requests = shop.fake.requests(tid)
    assert len(requests) >= 2, requests  # the killed run's request and the retry
    assert {r.idempotency_key for r in requests} == {tid}
    assert {r.status for r in requests} == {200}
    detail = await shop.detail(buyer, tid)
    assert codes(detail) == [10, 30, 40, 45, 50]
    assert detail["history"][-1]["metadata"]["downstreamStatus"] == 200
    assert detail["history"][-1]["metadata"]["try"] >= 2  # arq counted the killed run as a try
    assert await shop.cancels(tid) == []
    assert replacement.process.poll() is None
