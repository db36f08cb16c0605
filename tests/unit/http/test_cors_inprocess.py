"""CORS_ALLOW_ORIGINS: a frontend on another origin calls the API from the browser.

Bearer tokens, not cookies, so no credentials are allowed; only the listed origins get the
headers, and an unset setting sends none (a frontend served from the API's own origin).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.core.auth import TokenAuthority
from app.main import create_app
from app.migrate import upgrade_database
from app.settings import SettingsError, load_settings

FRONTEND = "https://study.example.com"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('cors') / 'payments.sqlite3'}"
    upgrade_database(url)
    yield url


@contextlib.asynccontextmanager
async def serving(database_url: str, **environ: str) -> AsyncIterator[tuple[AsyncTestClient[Litestar], str]]:
    settings = load_settings({"DATABASE_URL": database_url, **environ})
    token = TokenAuthority(settings.http.jwt_secret).mint("cors-user")
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client, token


async def test_a_listed_origin_may_issue_and_poll_from_the_browser(database_url: str) -> None:
    async with serving(database_url, CORS_ALLOW_ORIGINS=f"{FRONTEND}, http://localhost:3000") as (
        client,
        token,
    ):
        preflight = await client.options(
            "/api/payments/issue",
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] == FRONTEND
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "idempotency-key"} <= {h.strip() for h in allowed.split(",")}
        assert "access-control-allow-credentials" not in preflight.headers

        issued = await client.post(
            "/api/payments/issue",
            headers={"Origin": FRONTEND, "Authorization": f"Bearer {token}", "Idempotency-Key": "cors-1"},
            json={"productType": "STUDY", "productId": "study_123", "amount": 50000},
        )
        assert issued.status_code == 201, issued.text
        assert issued.headers["access-control-allow-origin"] == FRONTEND
        exposed = issued.headers["access-control-expose-headers"].lower()
        assert "idempotent-replayed" in exposed and "retry-after" in exposed

        status = await client.get(
            f"/api/payments/{issued.json()['transactionId']}/status",
            headers={"Origin": "http://localhost:3000", "Authorization": f"Bearer {token}"},
        )
        assert status.status_code == 200
        assert status.headers["access-control-allow-origin"] == "http://localhost:3000"


async def test_other_origins_and_an_unset_setting_get_no_cors_headers(database_url: str) -> None:
    async with serving(database_url, CORS_ALLOW_ORIGINS=FRONTEND) as (client, _):
        stranger = await client.get("/api/products", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers
    async with serving(database_url) as (client, _):
        unset = await client.get("/api/products", headers={"Origin": FRONTEND})
        assert "access-control-allow-origin" not in unset.headers


@pytest.mark.parametrize(
    "value", ["*", "https://study.example.com/checkout", "study.example.com", "ftp://x.example"]
)
def test_anything_but_an_origin_is_refused_at_start(value: str) -> None:
    with pytest.raises(SettingsError, match="CORS_ALLOW_ORIGINS"):
        load_settings({"CORS_ALLOW_ORIGINS": value})
