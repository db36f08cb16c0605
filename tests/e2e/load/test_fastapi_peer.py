"""The benchmark's FastAPI peer (loadtests/peers/fastapi_peer.py) answers like the service on the
same MariaDB schema: 401 without a token, 404 for another user's transaction, issue → status, the
Idempotency-Key replayed, and its rows read by the service's own status endpoint. Bounded: two servers (30 s start-up
at most each), every request with a 10 s timeout; about 5 s in all."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from app.core.auth import TokenAuthority
from tests.support.servers import RunningServer, running_server

ISSUE_BODY = {"productType": "STUDY", "productId": "study_123", "amount": 50_000}


@pytest.fixture(scope="module")
def secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def shared_env(mysql_url: str, redis_url: str, secret: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": mysql_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": secret,
        "TOSS_API_URL": "http://127.0.0.1:9",  # never called: issue and status do not reach the PG
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "FRONTEND_BASE_URL": "http://frontend.test",
    }


@pytest.fixture(scope="module")
def peer(shared_env: dict[str, str]) -> Iterator[RunningServer]:
    with running_server(
        ["uvicorn", "loadtests.peers.fastapi_peer:app"], health_path="/health", env=shared_env, name="peer"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def service(shared_env: dict[str, str]) -> Iterator[RunningServer]:
    with running_server(
        ["app.cli", "serve"], health_path="/health/live", env=shared_env, name="api"
    ) as server:
        yield server


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_peer_answers_like_the_service_on_the_same_tables(
    peer: RunningServer, service: RunningServer, secret: str
) -> None:
    tokens = TokenAuthority(secret)
    alice, bob = tokens.mint(f"alice-{secrets.token_hex(3)}"), tokens.mint(f"bob-{secrets.token_hex(3)}")
    with httpx.Client(base_url=peer.url, timeout=10) as client:
        assert client.post("/api/payments/issue", json=ISSUE_BODY).status_code == 401
        assert client.get("/api/payments/TXN_x/status").status_code == 401
        assert client.get("/api/payments/TXN_x/status", headers=_auth("not-a-jwt")).status_code == 401
        wrong = TokenAuthority("another-secret-of-32-bytes-or-more!").mint("alice")
        assert client.get("/api/payments/TXN_x/status", headers=_auth(wrong)).status_code == 401

        bad_price = client.post("/api/payments/issue", json={**ISSUE_BODY, "amount": 1}, headers=_auth(alice))
        assert bad_price.status_code == 400

        issued = client.post("/api/payments/issue", json=ISSUE_BODY, headers=_auth(alice))
        assert issued.status_code == 201, issued.text
        body = issued.json()
        tid = body["transactionId"]
        assert body["status"] == "CREATED" and body["statusCode"] == 10 and body["amount"] == 50_000

        status = client.get(f"/api/payments/{tid}/status", headers=_auth(alice))
        assert status.status_code == 200, status.text
        answer = status.json()
        assert answer["transactionId"] == tid
        assert answer["status"] == "CREATED" and answer["statusCode"] == 10 and answer["amount"] == 50_000
        assert answer["needsPolling"] is True and answer["retryAfterMs"] > 0

        assert client.get(f"/api/payments/{tid}/status", headers=_auth(bob)).status_code == 404
        assert client.get("/api/payments/TXN_missing/status", headers=_auth(alice)).status_code == 404

        key = {"Idempotency-Key": f"peer-{secrets.token_hex(4)}"}
        first = client.post("/api/payments/issue", json=ISSUE_BODY, headers={**_auth(alice), **key})
        again = client.post("/api/payments/issue", json=ISSUE_BODY, headers={**_auth(alice), **key})
        assert first.status_code == again.status_code == 201
        assert first.json()["transactionId"] == again.json()["transactionId"]

    # the service's own status endpoint reads the peer's rows (same tables) and keeps the owner check
    with httpx.Client(base_url=service.url, timeout=10) as client:
        ours = client.get(f"/api/payments/{tid}/status", headers=_auth(alice))
        assert ours.status_code == 200, ours.text
        assert {k: ours.json()[k] for k in ("transactionId", "status", "statusCode", "amount")} == {
            "transactionId": tid,
            "status": "CREATED",
            "statusCode": 10,
            "amount": 50_000,
        }
        assert client.get(f"/api/payments/{tid}/status", headers=_auth(bob)).status_code == 404
        detail = client.get(f"/api/payments/{tid}", headers=_auth(alice))
        assert detail.status_code == 200, detail.text
        assert [h["statusCode"] for h in detail.json()["history"]] == [10]  # the peer's history row
