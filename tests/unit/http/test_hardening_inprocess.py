"""Production hardening seen over HTTP, on the real app in-process (AsyncTestClient, migrated SQLite).

/metrics only to a configured token (or moved to its own port), /schema switchable, security
headers on HTML pages and on every payment JSON answer, errors included. Each test builds the
app from settings the way `payments serve` does (`load_settings` from an environment mapping).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.core.auth import DEVELOPMENT_USER_ID, TokenAuthority
from app.main import create_app
from app.migrate import upgrade_database
from app.settings import Settings, load_settings

METRICS_TOKEN = secrets.token_urlsafe(32)
PRODUCTION = {
    "ENVIRONMENT": "production",
    "JWT_SECRET": secrets.token_urlsafe(32),
    "TOSS_SECRET_KEY": "test_sk_" + secrets.token_hex(16),
}


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('hardening') / 'payments.sqlite3'}"
    upgrade_database(url)
    yield url


@contextlib.asynccontextmanager
async def serving(
    database_url: str, **environ: str
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Settings]]:
    """The app configured by `environ` (variable names as in the environment)."""
    settings = load_settings({"DATABASE_URL": database_url, **environ})
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client, settings


def bearer(settings: Settings, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TokenAuthority(settings.http.jwt_secret).mint(user_id)}"}


def csp_directives(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers.get("content-security-policy")
    assert policy, f"no Content-Security-Policy on {response.request.url.path}"
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def allowed_by(directives: dict[str, list[str]], kind: str, url: str) -> bool:
    """Does `kind` (e.g. script-src, falling back to default-src) allow a resource at `url`?"""
    sources = directives.get(kind, directives.get("default-src", []))
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        return "'self'" in sources
    if parts.scheme == "data":
        return "data:" in sources
    origin = f"{parts.scheme}://{parts.netloc}"
    return any(source.rstrip("/") == origin or url.startswith(source) for source in sources)


class PageResources(HTMLParser):
    """Scripts, stylesheets and inline code of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.inline_scripts: list[str] = []
        self.inline_styles: int = 0
        self.event_handlers: list[str] = []
        self._in_script = False
        self._script_has_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.event_handlers += [name for name, _ in attrs if name.startswith("on")]
        if "style" in values:
            self.inline_styles += 1
        if tag == "script":
            self._in_script = True
            self._script_has_src = bool(values.get("src"))
            if values.get("src"):
                self.scripts.append(values["src"] or "")
        elif tag == "style":
            self.inline_styles += 1
        elif tag == "link" and (values.get("rel") or "").lower() == "stylesheet":
            self.stylesheets.append(values.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and not self._script_has_src and data.strip():
            self.inline_scripts.append(data)


def resources(html: str) -> PageResources:
    parser = PageResources()
    parser.feed(html)
    return parser


# --- /metrics ----------------------------------------------------------------------------------


async def test_production_metrics_answer_only_the_metrics_token(database_url: str) -> None:
    async with serving(database_url, **PRODUCTION, METRICS_TOKEN=METRICS_TOKEN) as (client, settings):
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 43})
        user_jwt = await client.get("/metrics", headers=bearer(settings, "alice"))
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    for refused in (anonymous, wrong, user_jwt, basic):
        assert refused.status_code == 401, (refused.request.headers.get("authorization"), refused.text)
        assert refused.json()["code"] == "AUTH_001", refused.text
        assert "payments_" not in refused.text
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "payments_transactions_created_total" in scraped.text


async def test_the_metrics_token_is_required_in_development_too_once_set(database_url: str) -> None:
    async with serving(database_url, METRICS_TOKEN=METRICS_TOKEN) as (client, _):
        anonymous = await client.get("/metrics")
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert anonymous.status_code == 401 and anonymous.json()["code"] == "AUTH_001", anonymous.text
    assert scraped.status_code == 200, scraped.text


async def test_production_without_a_metrics_token_or_port_does_not_serve_metrics(database_url: str) -> None:
    async with serving(database_url, **PRODUCTION) as (client, _):
        response = await client.get("/metrics")

    assert response.status_code == 404, response.text
    assert "payments_" not in response.text


async def test_metrics_moved_to_their_own_port_leave_the_api_port(database_url: str) -> None:
    async with serving(database_url, ENVIRONMENT="test", METRICS_PORT="9464") as (client, _):
        response = await client.get("/metrics")

    assert response.status_code == 404, response.text


async def test_development_metrics_stay_open(database_url: str) -> None:
    async with serving(database_url) as (client, _):
        response = await client.get("/metrics")

    assert response.status_code == 200, response.text
    assert "payments_transactions_created_total" in response.text


# --- /schema -------------------------------------------------------------------------------------


async def test_schema_enabled_false_removes_the_openapi_document_and_its_pages(database_url: str) -> None:
    async with serving(database_url, SCHEMA_ENABLED="false") as (client, _):
        responses = [
            await client.get(path) for path in ("/schema", "/schema/openapi.json", "/schema/swagger")
        ]
        health = await client.get("/health/live")

    assert [r.status_code for r in responses] == [404, 404, 404], [r.text[:200] for r in responses]
    assert health.status_code == 200


async def test_production_serves_no_schema_unless_enabled(database_url: str) -> None:
    async with serving(database_url, **PRODUCTION) as (client, _):
        hidden = await client.get("/schema/openapi.json")
    async with serving(database_url, **PRODUCTION, SCHEMA_ENABLED="true") as (client, _):
        shown = await client.get("/schema/openapi.json")

    assert hidden.status_code == 404, hidden.text[:200]
    assert shown.status_code == 200 and shown.json()["openapi"].startswith("3."), shown.text[:200]


async def test_development_serves_the_schema(database_url: str) -> None:
    async with serving(database_url) as (client, _):
        response = await client.get("/schema/openapi.json")

    assert response.status_code == 200, response.text[:200]
    assert "/api/payments/issue" in response.json()["paths"]


# --- security headers ----------------------------------------------------------------------------


DEMO_PAGES = ["/demo/", "/demo/payment/success?transactionId=tx_1", "/demo/payment/fail?code=X&message=no"]
MOCK_ORIGIN = "http://mock-toss.test:8090"


@pytest.mark.parametrize("path", DEMO_PAGES)
async def test_demo_pages_run_under_a_strict_content_security_policy(database_url: str, path: str) -> None:
    async with serving(database_url, TOSS_API_URL=MOCK_ORIGIN) as (client, _):
        page = await client.get(path)
        assert page.status_code == 200, page.text
        found = resources(page.text)
        own = [src for src in found.scripts + found.stylesheets if not urlsplit(src).netloc]
        loaded = {src: await client.get(src) for src in own}

    assert page.headers["content-type"].startswith("text/html")
    directives = csp_directives(page)
    assert directives.get("frame-ancestors") == ["'none'"], directives
    assert page.headers.get("x-frame-options") == "DENY"
    assert page.headers.get("x-content-type-options") == "nosniff"
    assert page.headers.get("cache-control") == "no-store"  # it carries a bearer token
    for kind in ("script-src", "style-src"):
        sources = directives.get(kind, directives.get("default-src", []))
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, (kind, sources)
    # Nothing inline that the policy would block: the page works only through its files.
    assert not found.inline_scripts, found.inline_scripts
    assert found.inline_styles == 0 and not found.event_handlers, page.text
    assert found.scripts, "the page lost its script"
    for url in found.scripts:
        assert allowed_by(directives, "script-src", url), (url, directives)
    for url in found.stylesheets:
        assert allowed_by(directives, "style-src", url), (url, directives)
    for url, response in loaded.items():
        assert response.status_code == 200, (url, response.status_code)
        assert response.headers.get("x-content-type-options") == "nosniff"
        wanted = "javascript" if url in found.scripts else "text/css"
        assert wanted in response.headers["content-type"], (url, response.headers["content-type"])
    assert "connect-src" in directives and allowed_by(directives, "connect-src", "/api/payments/issue")


@pytest.mark.parametrize("path", DEMO_PAGES)
async def test_demo_pages_allow_exactly_their_own_origin_and_the_mocks(database_url: str, path: str) -> None:
    """The SDK's script, its window and the deposit button come from TOSS_API_URL (the mock):
    that origin, and no other, is added to the page policy."""
    async with serving(database_url, TOSS_API_URL=f"{MOCK_ORIGIN}/") as (client, _):
        page = await client.get(path)
        products = await client.get("/api/products")
        schema = await client.get("/schema")

    directives = csp_directives(page)
    assert directives["script-src"] == ["'self'", MOCK_ORIGIN], directives
    assert directives["connect-src"] == ["'self'", MOCK_ORIGIN], directives
    assert directives["frame-src"] == [MOCK_ORIGIN], directives
    assert directives["form-action"] == ["'self'", MOCK_ORIGIN], directives
    for kind in ("style-src", "img-src"):
        assert directives[kind] == ["'self'"], directives
    assert directives["default-src"] == ["'none'"] and directives["base-uri"] == ["'none'"], directives
    every_source = {source for sources in directives.values() for source in sources}
    assert every_source == {"'self'", "'none'", MOCK_ORIGIN}, every_source
    # Other answers keep their own policies: the mock's origin is the demo's alone.
    assert MOCK_ORIGIN not in products.headers["content-security-policy"]
    assert csp_directives(products) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
    assert MOCK_ORIGIN not in schema.headers["content-security-policy"]


async def test_the_shop_page_loads_the_toss_sdk_from_the_mock(database_url: str) -> None:
    async with serving(database_url, TOSS_API_URL=MOCK_ORIGIN) as (client, _):
        page = await client.get("/demo/")

    scripts = resources(page.text).scripts
    assert scripts[0] == f"{MOCK_ORIGIN}/v2/standard", scripts  # before the page's own scripts
    assert all(not urlsplit(src).netloc for src in scripts[1:]), scripts


async def test_the_demo_serves_only_its_own_files(database_url: str) -> None:
    async with serving(database_url) as (client, _):
        answers = {
            name: await client.get(f"/demo/assets/{name}")
            for name in ("common.js", "shop.js", "result.js", "demo.css", "shop.html", "..%2Fdemo.py")
        }

    assert {name: r.status_code for name, r in answers.items()} == {
        "common.js": 200,
        "shop.js": 200,
        "result.js": 200,
        "demo.css": 200,
        "shop.html": 404,
        "..%2Fdemo.py": 404,
    }


async def test_the_demo_pages_hand_their_scripts_a_working_token(database_url: str) -> None:
    async with serving(database_url) as (client, settings):
        pages = [await client.get(path) for path in DEMO_PAGES]
        script = await client.get("/demo/assets/shop.js")
        poller = await client.get("/demo/assets/result.js")

    for page in pages:
        tokens = re.findall(r'data-token="(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)"', page.text)
        assert tokens, f"{page.request.url.path} carries no token for its script"
        caller = TokenAuthority(settings.http.jwt_secret).verify(f"Bearer {tokens[0]}")
        assert caller.user_id == DEVELOPMENT_USER_ID
    for used in ("/api/products", "/api/payments/issue", "Idempotency-Key", "requestPayment"):
        assert used in script.text, used
    for used in ("/status?attempt=", "retryAfterMs", "/_mock/virtual-accounts/"):
        assert used in poller.text, used


async def test_the_result_pages_limit_of_polls_comes_from_the_query(database_url: str) -> None:
    async with serving(database_url) as (client, _):
        default = await client.get("/demo/payment/success?transactionId=tx_1")
        shortened = await client.get("/demo/payment/success?transactionId=tx_1&maxPolls=3")
        nonsense = await client.get("/demo/payment/success?transactionId=tx_1&maxPolls=-1")

    assert 'data-max-polls="25"' in default.text
    assert 'data-max-polls="3"' in shortened.text
    assert 'data-max-polls="25"' in nonsense.text


async def test_the_schema_page_loads_only_what_its_policy_allows(database_url: str) -> None:
    async with serving(database_url) as (client, _):
        page = await client.get("/schema")
        assert page.status_code == 200, page.text[:300]
        found = resources(page.text)
        own = {src: await client.get(src) for src in found.scripts if not urlsplit(src).netloc}

    directives = csp_directives(page)
    assert directives.get("frame-ancestors") == ["'none'"], directives
    assert page.headers.get("x-frame-options") == "DENY"
    assert "'unsafe-inline'" not in directives.get("script-src", []), directives
    assert not found.inline_scripts, found.inline_scripts
    assert found.scripts, page.text[:500]
    for url in found.scripts:
        assert allowed_by(directives, "script-src", url), (url, directives)
    for url in found.stylesheets:
        assert allowed_by(directives, "style-src", url), (url, directives)
    for url, response in own.items():
        assert response.status_code == 200 and "javascript" in response.headers["content-type"], url
    assert allowed_by(directives, "connect-src", "/schema/openapi.json"), directives


async def test_payment_json_is_never_stored_by_caches_errors_included(database_url: str) -> None:
    async with serving(database_url, ENVIRONMENT="test") as (client, settings):
        alice = bearer(settings, "alice")
        answers = {
            "list": await client.get("/api/payments", headers=alice),
            "no token": await client.get("/api/payments"),
            "unknown transaction": await client.get("/api/payments/tx_unknown_1/status", headers=alice),
            "malformed issue": await client.post(
                "/api/payments/issue", headers=alice, json={"productType": "STUDY", "amount": "lots"}
            ),
            "no such route": await client.get("/api/payments/a/b/c/d", headers=alice),
            "wrong method": await client.delete("/api/payments", headers=alice),
        }

    assert answers["list"].status_code == 200, answers["list"].text
    assert answers["no token"].status_code == 401
    assert answers["unknown transaction"].status_code == 404
    assert answers["malformed issue"].status_code == 400
    for name, response in answers.items():
        assert "no-store" in response.headers.get("cache-control", ""), (name, dict(response.headers))
        assert response.headers.get("x-content-type-options") == "nosniff", name


async def test_every_response_says_nosniff(database_url: str) -> None:
    async with serving(database_url, ENVIRONMENT="test") as (client, _):
        answers = [await client.get(path) for path in ("/health/live", "/api/products", "/no/such/path")]

    assert [r.status_code for r in answers] == [200, 200, 404]
    for response in answers:
        assert response.headers.get("x-content-type-options") == "nosniff", response.request.url.path


# --- JWT_SECRET length -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "refused"),
    [("s" * 31, True), ("s" * 32, False), ("é" * 16, False), ("é" * 15 + "s", True)],
)
def test_production_counts_jwt_secret_length_in_bytes(secret: str, refused: bool) -> None:
    settings = load_settings({**PRODUCTION, "JWT_SECRET": secret})

    named = [problem for problem in settings.insecure_defaults() if "JWT_SECRET" in problem]
    assert bool(named) is refused, (len(secret.encode()), named)
    if refused:
        assert "32 bytes" in named[0], named
