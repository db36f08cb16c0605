"""The API's documentation page works without the internet: Swagger UI and its stylesheet come
from the API itself (the swagger-ui-bundle package's files), and the page renders every operation
of /schema/openapi.json while every request that would leave 127.0.0.1 is refused and recorded.

The API runs as `payments serve` on its embedded default (a SQLite file, no Redis): the page needs
nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from app.migrate import upgrade_database
from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.support.servers import RunningServer, running_server


@pytest.fixture(scope="module")
def docs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    database = tmp_path_factory.mktemp("api-docs") / "payments.sqlite3"
    url = f"sqlite+aiosqlite:///{database}"
    upgrade_database(url)
    env = {"ENVIRONMENT": "development", "DATABASE_URL": url, "REDIS_URL": "", "SCHEMA_ENABLED": "true"}
    with running_server(["app.cli", "serve"], health_path="/health/live", env=env, name="api-docs") as api:
        yield api


def _stay_on_loopback(page: Page) -> list[str]:
    """Refuse every request that is not for 127.0.0.1; the list names them."""
    left: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            left.append(url)
            route.abort()

    page.route("**/*", route)
    return left


def _operations(api: RunningServer) -> list[tuple[str, str, str]]:
    """(method, path, Swagger UI's element id: operations-<tag>-<operationId>) of each operation."""
    document = httpx.get(f"{api.url}/schema/openapi.json", timeout=10).json()
    return [
        (method.upper(), path, f"operations-{operation['tags'][0]}-{operation['operationId']}")
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize("entry", ["/schema/swagger", "/schema"])
def test_the_api_docs_render_every_operation_offline(docs_api: RunningServer, page: Page, entry: str) -> None:
    left = _stay_on_loopback(page)
    operations = _operations(docs_api)

    page.goto(f"{docs_api.url}{entry}")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AsyncSite Payments")
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(operations))
    for method, path, element_id in operations:
        block = page.locator(f"#{element_id}")
        expect(block).to_have_count(1)
        expect(block.locator(".opblock-summary-method")).to_have_text(method)
        expect(block.locator(".opblock-summary-path")).to_have_attribute("data-path", path)
    # The guide of info.description is rendered (Markdown), with the checkout's steps.
    expect(page.locator(".swagger-ui .info h2").first).to_have_text("A checkout, step by step")
    assert not left, f"requests that would have left 127.0.0.1: {left}"
    if entry == "/schema/swagger":
        path = screenshot(page, "api-docs-offline")
        assert path.stat().st_size > 10_000


def test_an_operation_opens_with_its_examples_offline(docs_api: RunningServer, page: Page) -> None:
    """Expanding the issue operation shows the real request example and the error codes it can answer."""
    left = _stay_on_loopback(page)
    page.goto(f"{docs_api.url}/schema/swagger#/payments/issuePayment")

    block = page.locator("#operations-payments-issuePayment")
    expect(block.locator(".opblock-body")).to_be_visible()
    expect(block.locator(".body-param__example, .microlight").first).to_contain_text("study_123")
    responses = block.locator(".responses-table").first
    for status in ("201", "400", "401", "404", "409", "413", "422", "429", "503"):
        expect(responses.locator(f"tr.response[data-code='{status}']")).to_have_count(1)
    expect(responses.locator("tr.response[data-code='403']")).to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    block.screenshot(path=str(SCREENSHOTS / "api-docs-issue-operation.png"))
    assert not left, f"requests that would have left 127.0.0.1: {left}"


def test_swagger_assets_come_from_the_installed_package(docs_api: RunningServer) -> None:
    from swagger_ui_bundle import swagger_ui_path

    page = httpx.get(f"{docs_api.url}/schema/swagger", timeout=10)
    bundle = httpx.get(f"{docs_api.url}/schema/swagger/assets/swagger-ui-bundle.js", timeout=10)
    other = httpx.get(f"{docs_api.url}/schema/swagger/assets/index.html", timeout=10)

    policy = page.headers["content-security-policy"]
    assert "http" not in policy, policy  # 'self' only: no CDN origin
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    assert bundle.content == (Path(str(swagger_ui_path)) / "swagger-ui-bundle.js").read_bytes()
    assert other.status_code == 404
