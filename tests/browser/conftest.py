"""Browser tests: Debian's chromium driven by Playwright (sync API) against real processes.

- `browser` (module): chromium from /usr/bin/chromium (`bash scripts/ensure-browser.sh`
  installs it and the Noto CJK fonts); Playwright's own browser download is never used. Module,
  not session: while the sync API runs, its event loop is the running loop of the main thread,
  so no asyncio.run() and no async test (pytest-asyncio) could run after the browser tests in
  the same pytest run. The launch costs about a second per module.
- `page` (desktop, 1280x900) and `phone_page` (390x844, touch): a fresh browser context each,
  so nothing (cookies, storage) carries over from another test. Uncaught JavaScript errors and
  Content-Security-Policy violations fail the test that caused them.
- `demo_stack` (module): the mock Toss as its own process (`python -m mock_toss`, slow card held
  3 s, webhooks to the API), and the API (`payments serve`, FRONTEND_BASE_URL = its own /demo,
  so the callbacks land on the demo's pages) with an arq worker over MariaDB and Redis.
- `screenshot(page, name)` writes test-reports/screenshots/<name>.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect, sync_playwright

from tests.integration.provisioning.redis_claim import claimed_redis_db
from tests.support.servers import REPO_ROOT, RunningServer, free_port, running_server
from tests.support.stack import Stack, running_stack

CHROMIUM = Path("/usr/bin/chromium")
# A closed network: without the background-networking flags chromium's own calls are refused.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "test-reports" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Every wait is bounded: actions and navigations, and expect() (its own default is 5 s).
ACTION_TIMEOUT_MS = 15_000
NAVIGATION_TIMEOUT_MS = 30_000
EXPECT_TIMEOUT_MS = 15_000
MOCK_SLOW_CONFIRM_SECONDS = 3

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-reports/screenshots/<name>.png (the folder is created)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Session fixtures (mysql_url: asyncio.run() creates the database) are set up before this one.
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium and the Noto CJK fonts. "
            "Install them with `bash scripts/ensure-browser.sh` (apt-get, as root).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class _PageProblems:
    """What went wrong in a page that no assertion looks at: uncaught errors, blocked resources."""

    problems: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")

    def on_page_error(self, error: Error) -> None:
        self.problems.append(f"uncaught: {error.message}")


def _open_page(browser: Browser, *, phone: bool) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=2 if phone else 1,
        locale="ko-KR",
        timezone_id="Asia/Seoul",
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    page = context.new_page()
    seen = _PageProblems()
    page.on("console", seen.on_console)
    page.on("pageerror", seen.on_page_error)
    try:
        yield page
    finally:
        context.close()
    if seen.problems:
        pytest.fail("the page had errors:\n" + "\n".join(seen.problems), pytrace=False)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop page (1280x900) in a new browser context."""
    yield from _open_page(browser, phone=False)


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    """A phone-sized page (390x844, touch) in a new browser context."""
    yield from _open_page(browser, phone=True)


# --- the service under test --------------------------------------------------------------------


@dataclass(frozen=True)
class DemoStack:
    """The API (serving the demo on /demo) with its worker, and the mock Toss it pays through."""

    stack: Stack
    mock: RunningServer

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def mock_url(self) -> str:
        return self.mock.url


@pytest.fixture(scope="module")
def demo_stack(mysql_url: str, redis_url: str) -> Iterator[DemoStack]:
    """One per module: its worker's sweeper looks at the whole shared database, so it is gone
    before the next module's stack starts (like tests/e2e/provisioning's)."""
    mock_port = free_port()
    api_port = free_port()
    while api_port == mock_port:
        api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    mock_args = [
        "mock_toss",
        "--webhook-url",
        f"{api_url}/webhooks/payments/toss",
        "--slow-confirm-seconds",
        str(MOCK_SLOW_CONFIRM_SECONDS),
        "--time-scale",
        "0.001",  # a webhook sent before the API listens is sent again within a second
    ]
    with (
        running_server(mock_args, port=mock_port, health_path="/_mock/health", name="mock-toss") as mock,
        # A Redis database of our own for the queue: another run's worker must not take our jobs.
        claimed_redis_db() as redis_db_url,
        running_stack(
            mysql_url=mysql_url, toss_url=mock.url, apis=0, workers=1, env={"REDIS_URL": redis_db_url}
        ) as stack,
    ):
        stack.start_api(port=api_port, env={"FRONTEND_BASE_URL": f"{api_url}/demo"})
        yield DemoStack(stack=stack, mock=mock)
