"""A reference checkout, served only outside production (app/main.py imports it only then).

`make run` prints its URL: pick a product and a payment method, pay in the mock Toss's window
through the Toss SDK (loaded from the mock, `{TOSS_BROWSER_URL or TOSS_API_URL}/v2/standard`), and
watch the result page follow the status to "ready": pushed by the event stream (EventSource with the
first status answer's `streamToken`), or polled with the server's `retryAfterMs` when the stream fails.

The pages are files in app/demo_assets/: two HTML templates filled in here, and the JavaScript
and CSS a frontend developer would copy (plain files, no build step). They carry no inline script
or style, so they run under a strict Content-Security-Policy: app/web_security.py's page policy
plus the mock's origin, which the SDK's script, its window and the "simulate deposit" button need.

Each page acts as DEVELOPMENT_USER_ID (the user of `payments dev`'s banner token) with a token
minted here and handed to the script in a data attribute, so a page works in a fresh tab.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from litestar import Controller, MediaType, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import Dependency, Parameter

from app.bootstrap import Core
from app.core.auth import DEVELOPMENT_USER_ID, TokenAuthority
from app.core.printable import printable_text
from app.web_security import pg_page_policy

_ASSETS = Path(__file__).with_name("demo_assets")
# The files the pages load, read once: only these are served.
_STATIC: dict[str, tuple[str, str]] = {
    name: ((_ASSETS / name).read_text(encoding="utf-8"), media_type)
    for name, media_type in (
        ("common.js", "text/javascript"),
        ("shop.js", "text/javascript"),
        ("result.js", "text/javascript"),
        ("demo.css", "text/css"),
    )
}
_SHOP_PAGE = (_ASSETS / "shop.html").read_text(encoding="utf-8")
_RESULT_PAGE = (_ASSETS / "result.html").read_text(encoding="utf-8")

TOKEN_TTL_SECONDS = 8 * 3600
# Polls before the result page says "still processing" (~2 minutes on the 1-2-3-5 s schedule).
# `?maxPolls=N` on a result page's URL overrides it (tests use a small N).
DEFAULT_MAX_POLLS = 25
MAX_POLLS_LIMIT = 1000
# A code from the query (the PG's or ours) is shown only if it looks like one.
_CODE = re.compile(r"[A-Za-z0-9_]{1,64}")

# The app's services (app.main's `services` dependency): a dataclass Litestar must not try to validate.
ServicesDependency = Annotated[Core, Dependency(skip_validation=True)]
# The query parameters of the result pages, named as the redirects spell them.
TransactionIdQuery = Annotated[str | None, Parameter(query="transactionId", required=False)]
MaxPollsQuery = Annotated[str | None, Parameter(query="maxPolls", required=False)]
ErrorCodeQuery = Annotated[str | None, Parameter(query="errorCode", required=False)]


def customer_key(secret: str, user_id: str) -> str:
    """Toss's `customerKey` for a user: stable, and not guessable from the user id (Toss asks for
    that), 2–50 of A–Z a–z 0–9 `-_=.@`. An HMAC of the user id under a server secret."""
    digest = hmac.new(secret.encode(), f"toss-customer:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"user_{digest[:40]}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _fill(template: str, **values: str) -> str:
    """The template with every value HTML-escaped (quotes too: some go into attributes)."""
    return template.format(**{name: html.escape(value, quote=True) for name, value in values.items()})


def _page(content: str, pg_origin: str) -> Response[str]:
    # The page's own policy stands (the security-headers hook keeps it). It carries a bearer token:
    # no cache may keep it.
    return Response(
        content,
        media_type=MediaType.HTML,
        headers={"Content-Security-Policy": pg_page_policy(pg_origin), "Cache-Control": "no-store"},
    )


def _max_polls(raw: str | None) -> int:
    if raw is not None and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_POLLS_LIMIT:
        return int(raw)
    return DEFAULT_MAX_POLLS


def _code(raw: str | None) -> str:
    return raw if raw is not None and _CODE.fullmatch(raw) else ""


class DemoController(Controller):
    path = "/demo"
    include_in_schema = False

    @get("/")
    async def shop(self, services: ServicesDependency, token_authority: TokenAuthority) -> Response[str]:
        settings = services.settings
        return _page(
            _fill(
                _SHOP_PAGE,
                token=token_authority.mint(DEVELOPMENT_USER_ID, ttl_seconds=TOKEN_TTL_SECONDS),
                customer_key=customer_key(settings.http.jwt_secret, DEVELOPMENT_USER_ID),
                user=DEVELOPMENT_USER_ID,
                sdk_url=f"{settings.toss.browser_base_url}/v2/standard",
            ),
            _origin(settings.toss.browser_base_url),
        )

    @get("/payment/success")
    async def success(
        self,
        services: ServicesDependency,
        token_authority: TokenAuthority,
        transaction_id: TransactionIdQuery = None,
        max_polls: MaxPollsQuery = None,
    ) -> Response[str]:
        return self._result(services, token_authority, "success", transaction_id, max_polls)

    @get("/payment/fail")
    async def fail(
        self,
        services: ServicesDependency,
        token_authority: TokenAuthority,
        transaction_id: TransactionIdQuery = None,
        code: str | None = None,
        message: str | None = None,
        error_code: ErrorCodeQuery = None,
        max_polls: MaxPollsQuery = None,
    ) -> Response[str]:
        # Anyone can send a browser here with any query: codes only if they look like codes,
        # the message as printable text, everything escaped.
        return self._result(
            services,
            token_authority,
            "fail",
            transaction_id,
            max_polls,
            code=_code(code),
            message=printable_text(message or "", 510),
            error_code=_code(error_code),
        )

    @staticmethod
    def _result(
        services: Core,
        token_authority: TokenAuthority,
        kind: str,
        transaction_id: str | None,
        max_polls: str | None,
        *,
        code: str = "",
        message: str = "",
        error_code: str = "",
    ) -> Response[str]:
        settings = services.settings
        return _page(
            _fill(
                _RESULT_PAGE,
                kind=kind,
                state="failure" if kind == "fail" else "checking",
                token=token_authority.mint(DEVELOPMENT_USER_ID, ttl_seconds=TOKEN_TTL_SECONDS),
                transaction_id=printable_text(transaction_id or "", 64),
                max_polls=str(_max_polls(max_polls)),
                mock_url=settings.toss.browser_base_url,
                code=code,
                message=message,
                error_code=error_code,
            ),
            _origin(settings.toss.browser_base_url),
        )

    @get("/assets/{name:str}")
    async def asset(self, name: str) -> Response[str]:
        if name not in _STATIC:
            raise NotFoundException()
        content, media_type = _STATIC[name]
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})
