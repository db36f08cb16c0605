"""Security headers on every HTTP answer, and an OpenAPI page that runs without inline script.

Added in a `before_send` hook rather than a middleware: Litestar runs middleware only around a
matched route, while `before_send` also sees the router's own 404/405 answers and unhandled errors.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

# Our own pages (the demo) load only their own files and call only this origin.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Anything that is not a page (JSON, redirects, metrics) must never render or be framed.
NON_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'"
# Money state is per user and changes under the client: no browser or proxy may keep a copy.
_NO_STORE_PREFIX = "/api/payments"


def schema_page_policy() -> str:
    """The Swagger page: Swagger UI's bundle and stylesheet, its start-up script and the document,
    all from us (SwaggerPage serves the files the swagger-ui-bundle package installed): it works
    without the internet, and loads nothing from anywhere else.

    Swagger UI sets inline styles at run time, so styles (not scripts) allow 'unsafe-inline'.
    """
    return (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def pg_page_policy(pg_origin: str) -> str:
    """A checkout page that loads a PG's browser SDK (the demo, app/demo.py): PAGE_POLICY plus
    `pg_origin` (scheme://host[:port]) for the SDK's script, its payment window (a frame or a form
    post) and calls to it. Set by the page's handler, which the hook below leaves in place."""
    return (
        f"default-src 'none'; script-src 'self' {pg_origin}; style-src 'self'; img-src 'self'; "
        f"connect-src 'self' {pg_origin}; frame-src {pg_origin}; base-uri 'none'; "
        f"form-action 'self' {pg_origin}; frame-ancestors 'none'"
    )


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


_REPLACED = frozenset({b"x-content-type-options", b"x-frame-options", b"referrer-policy"})
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def security_headers(*, schema_path: str | None, schema_policy: str | None) -> BeforeMessageSendHookHandler:
    """The hook that adds the headers; `schema_path` pages get `schema_policy` instead of PAGE_POLICY.

    Plain tuple work rather than MutableScopeHeaders: it runs on every answer, the status poll's too.
    """
    page_policy, non_page_policy = PAGE_POLICY.encode(), NON_PAGE_POLICY.encode()
    schema_page = schema_policy.encode() if schema_policy else page_policy

    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        path = scope.get("path", "")
        no_store = _is_under(path, _NO_STORE_PREFIX)
        content_type, has_policy = b"", False
        headers: list[tuple[bytes, bytes]] = []
        for name, value in message.get("headers", ()):
            lowered = name.lower()
            if lowered in _REPLACED or (no_store and lowered == b"cache-control"):
                continue
            if lowered == b"content-type":
                content_type = value
            elif lowered == b"content-security-policy":
                has_policy = True  # a handler's own policy stands
            headers.append((name, value))
        headers.extend(_ALWAYS)
        if no_store:
            headers.append((b"cache-control", b"no-store"))
        if not has_policy:
            if not content_type.startswith(b"text/html"):
                policy = non_page_policy
            elif schema_path and _is_under(path, schema_path):
                policy = schema_page
            else:
                policy = page_policy
            headers.append((b"content-security-policy", policy))
        message["headers"] = headers

    return add_security_headers


_SWAGGER_INIT = """"use strict";
// Started from a file so that the page's Content-Security-Policy needs no inline script.
const container = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: container.dataset.specUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


# Swagger UI's files as the swagger-ui-bundle-v2 package installed them, served by us at
# /schema/swagger/assets/<name>: only these, each with its type.
SWAGGER_ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
SWAGGER_ASSETS_PATH = "/swagger/assets"  # under the schema router's /schema


class SwaggerPage(SwaggerRenderPlugin):
    """Swagger UI at /schema/swagger (and /schema) reading /schema/openapi.json: its bundle and
    stylesheet from our own /schema/swagger/assets/ (installed with the package, no CDN), its
    start-up script from a file; no inline code."""

    init_script_path = "/swagger-init.js"

    def __init__(self) -> None:
        # No inline <style>: nothing on the page but Swagger UI's files and our script.
        super().__init__(
            path=["/swagger", "/"],
            js_url=f"/schema{SWAGGER_ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"/schema{SWAGGER_ASSETS_PATH}/swagger-ui.css",
            favicon=f'<link rel="icon" type="image/png" href="/schema{SWAGGER_ASSETS_PATH}/favicon-32x32.png">',
            style="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec_url = self.get_openapi_json_route(request)
        init_url = request.app.route_reverse("swagger-init")
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{self.favicon}
<link rel="stylesheet" href="{self.css_url}">
<script src="{self.js_url}"></script></head>
<body><div id="swagger-ui" data-spec-url="{spec_url}"></div>
<script src="{init_url}"></script></body></html>""".encode()

    def receive_router(self, router: Router) -> None:
        # Instead of Swagger's OAuth2 redirect page (inline script; we use bearer tokens only).
        router.register(get(self.init_script_path, name="swagger-init", sync_to_thread=False)(_swagger_init))
        router.register(
            get(f"{SWAGGER_ASSETS_PATH}/{{name:str}}", name="swagger-asset", sync_to_thread=False)(
                _swagger_asset
            )
        )


def _swagger_init() -> Response[str]:
    return Response(_SWAGGER_INIT, media_type="text/javascript")


@lru_cache(maxsize=len(SWAGGER_ASSETS))
def _swagger_file(name: str) -> bytes:
    from swagger_ui_bundle import swagger_ui_path

    return (Path(str(swagger_ui_path)) / name).read_bytes()


def _swagger_asset(name: str) -> Response[bytes]:
    """One of SWAGGER_ASSETS, read once; its version is the package's, so caches may keep it a day."""
    media_type = SWAGGER_ASSETS.get(name)
    if media_type is None:
        raise NotFoundException()
    return Response(
        _swagger_file(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )
