"""The fake study/credit service the provisioning tests rely on behaves as documented."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.fake_downstream import FakeDownstream, running_fake_downstream

STUDY = "/api/studies/s-1/confirm-payment"
CREDIT = "/api/credits/grants"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDownstream]:
    with running_fake_downstream() as started:
        yield started


@pytest.fixture
def client(fake: FakeDownstream) -> Iterator[httpx.Client]:
    fake.reset()
    with httpx.Client(base_url=fake.url, timeout=5) as http:
        yield http
    fake.reset()


def post(client: httpx.Client, key: str | None, path: str = STUDY) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(path, json={"paymentId": key}, headers=headers)


def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within} s"
        time.sleep(0.01)


def test_repeated_key_answers_the_same_member_and_counts_one_grant(
    fake: FakeDownstream, client: httpx.Client
) -> None:
    first = post(client, "k1")
    again = post(client, "k1")
    other = post(client, "k2", CREDIT)

    assert first.status_code == again.status_code == other.status_code == 200
    assert first.json()["success"] is True
    assert first.json()["memberId"] == again.json()["memberId"] != other.json()["memberId"]
    assert [g.idempotency_key for g in fake.grants()] == ["k1", "k2"]
    assert [(r.path, r.idempotency_key, r.status) for r in fake.requests("k1")] == [(STUDY, "k1", 200)] * 2
    assert fake.requests("k2")[0].body == {"paymentId": "k2"}


def test_fail_next_then_recover_and_key_scoping(fake: FakeDownstream, client: httpx.Client) -> None:
    fake.fail_next(2, status=503, key="mine")
    assert post(client, "theirs").status_code == 200  # another key does not use the failures up
    assert [post(client, "mine").status_code for _ in range(3)] == [503, 503, 200]
    fake.fail_next(1, status=429)
    assert post(client, "any").status_code == 429
    assert post(client, "any").status_code == 200
    assert {g.idempotency_key for g in fake.grants()} == {"theirs", "mine", "any"}


def test_refuse_until_ok(fake: FakeDownstream, client: httpx.Client) -> None:
    fake.refuse(422, key="no")
    assert post(client, "no").status_code == 422
    assert post(client, "yes").status_code == 200
    fake.refuse(400)
    assert post(client, "yes-2").status_code == 400
    fake.ok()
    assert post(client, "no").status_code == 200
    assert post(client, None).status_code == 400  # a grant needs an Idempotency-Key


def test_hold_answers_at_release_and_holds_nothing_after(fake: FakeDownstream, client: httpx.Client) -> None:
    fake.hold(60)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(post, client, "held")
        wait_for(lambda: len(fake.arrivals("held")) == 1)
        assert fake.requests("held") == []  # arrived, not answered
        assert not held.done()
        fake.release()
        assert held.result(timeout=5).status_code == 200
    assert [r.status for r in fake.requests("held")] == [200]
    # After release() nothing is held: a 60 s hold would outlast the client's 5 s timeout.
    assert post(client, "after").status_code == 200


def test_a_hold_ends_by_itself_at_its_deadline(fake: FakeDownstream, client: httpx.Client) -> None:
    fake.hold(0.3)  # far below the client's 5 s timeout: answered without release()
    assert post(client, "late").status_code == 200
    assert [r.idempotency_key for r in fake.grants()] == ["late"]


def test_down_answers_503_or_refuses_connections(fake: FakeDownstream, client: httpx.Client) -> None:
    fake.down()
    assert post(client, "k").status_code == 503
    fake.down(refuse=True)
    with pytest.raises(httpx.ConnectError):
        post(client, "k")
    fake.ok()
    assert post(client, "k").status_code == 200
    assert client.get("/_health").status_code == 200
    assert fake.grants("k")[0].idempotency_key == "k"
