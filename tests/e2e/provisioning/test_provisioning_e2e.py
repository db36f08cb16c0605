"""Checkout → grant through real processes: API, arq worker, mock Toss, fake study service."""

from __future__ import annotations

from .helpers import RESUME, STUDY, Shop, codes, error_code


async def test_checkout_reaches_50_with_one_grant_keyed_by_the_transaction(shop: Shop) -> None:
    buyer = shop.buyer("happy")

    # metadata.studyId is the buyer's word: the grant goes to the catalog's study all the same.
    tid = await shop.checkout(buyer, STUDY, metadata={"studyId": "study-e2e", "applicationId": "app-e2e"})
    final = await shop.wait_for_status(buyer, tid, 50)

    assert (final["status"], final["isSettled"], final["needsPolling"]) == ("PROVISION_SUCCESS", True, False)
    assert final["failure"] is None
    [grant] = shop.fake.grants(tid)
    assert grant.path == "/api/studies/study_123/confirm-payment"
    assert grant.body == {
        "applicationId": "app-e2e",
        "paymentId": tid,
        "userId": buyer.user_id,
        "productId": "study_123",
        "amount": 50_000,
    }
    requests = shop.fake.requests(tid)
    assert [(r.status, r.idempotency_key) for r in requests] == [(200, tid)]
    detail = await shop.detail(buyer, tid)
    assert codes(detail) == [10, 30, 40, 45, 50]
    # The downstream's answer body never reaches the buyer (only its status code is kept).
    assert detail["history"][-1]["metadata"] == {"try": 1, "downstreamStatus": 200}
    assert grant.member_id not in str(detail)
    assert await shop.cancels(tid) == []


async def test_study_service_down_for_a_while_still_ends_at_50(shop: Shop) -> None:
    buyer = shop.buyer("flaky")
    issued = await shop.issue(buyer, STUDY)
    shop.fake.fail_next(2, status=503, key=issued["transactionId"])

    tid = await shop.pay(issued)
    await shop.wait_for_status(buyer, tid, 50)

    assert [r.status for r in shop.fake.requests(tid)] == [503, 503, 200]
    assert {r.idempotency_key for r in shop.fake.requests(tid)} == {tid}
    assert len(shop.fake.grants(tid)) == 1
    detail = await shop.detail(buyer, tid)
    assert codes(detail) == [10, 30, 40, 45, 50]
    assert detail["history"][-1]["metadata"]["try"] == 3
    assert await shop.cancels(tid) == []


async def test_study_service_refusing_the_grant_ends_refunded(shop: Shop) -> None:
    buyer = shop.buyer("refused")
    issued = await shop.issue(buyer, STUDY)
    shop.fake.refuse(400, key=issued["transactionId"])

    tid = await shop.pay(issued)
    final = await shop.wait_for_status(buyer, tid, 95)

    assert final["status"] == "REFUNDED"
    assert [r.status for r in shop.fake.requests(tid)] == [400]
    assert shop.fake.grants(tid) == []
    detail = await shop.detail(buyer, tid)
    assert codes(detail) == [10, 30, 40, 45, 51, 90, 95]
    assert detail["refundedAmount"] == 50_000
    assert detail["failure"]["code"] == "PAY_006"
    sent = await shop.cancels(tid)
    assert len(sent) == 1, sent
    assert sent[0]["status"] == 200
    pg = await shop.pg_payment(tid)
    assert (pg["status"], pg["balanceAmount"], len(pg["cancels"])) == ("CANCELED", 0, 1)


async def test_ledger_backed_grants_are_listed_as_entitlements(shop: Shop) -> None:
    """AI_RESUME with no CREDIT_SERVICE_URL: the local ledger grants, GET /api/entitlements shows it."""
    buyer = shop.buyer("credits")
    other = shop.buyer("other")

    tid = await shop.checkout(buyer, RESUME)
    await shop.wait_for_status(buyer, tid, 50)

    mine = await shop.api.get("/api/entitlements", headers=buyer.headers)
    assert mine.status_code == 200, mine.text
    items = mine.json()["items"]
    assert [(i["transactionId"], i["productType"], i["productId"]) for i in items] == [
        (tid, "AI_RESUME", "resume_credit_10")
    ]
    assert items[0]["grantedAt"]
    assert shop.fake.requests(tid) == []  # not the study service
    theirs = await shop.api.get("/api/entitlements", headers=other.headers)
    assert theirs.status_code == 200
    assert theirs.json()["items"] == []
    anonymous = await shop.api.get("/api/entitlements")
    assert anonymous.status_code == 401
    assert error_code(anonymous) == "AUTH_001"
