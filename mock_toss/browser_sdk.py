"""The SDK script a merchant page loads (`/v2/standard`, `/v1`) and the page its promise mode lands on.

The script (sdk/tosspayments.js) is one file for both versions; the server fills in its settings:
the SDK version, which client keys exist (the API pair's and the widget pair's), and its own
origin for a page that loads it without `document.currentScript`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from mock_toss.config import MockConfig

_SETTINGS_MARKER = "/*MOCK_TOSS_SETTINGS*/ {}"
_SOURCE = (Path(__file__).parent / "sdk" / "tosspayments.js").read_text(encoding="utf-8")
# What `TossPayments.version` says: the official SDK line each script stands in for.
SDK_VERSIONS = {1: "1-mock", 2: "2-mock"}


def sdk_script(version: int, config: MockConfig, origin: str) -> str:
    """The JavaScript that defines `window.TossPayments` for SDK `version` (1 or 2)."""
    settings = {
        "version": version,
        "sdkVersion": SDK_VERSIONS[version],
        "origin": origin,
        "clientKeys": [config.client_key],
        "widgetClientKeys": [config.widget_client_key],
    }
    # json.dumps of plain strings cannot close the script; `</` is escaped all the same.
    return _SOURCE.replace(_SETTINGS_MARKER, json.dumps(settings).replace("</", "<\\/"), 1)


_RETURN_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>결제 결과 · Mock Toss Payments</title></head>
<body data-outcome="{outcome}" data-parent-origin="{parent_origin}">
<p>결제창을 닫는 중입니다… (closing the payment window)</p>
<script>
(function () {{
  var body = document.body;
  var query = {{}};
  new URLSearchParams(window.location.search).forEach(function (value, key) {{
    if (key !== "parentOrigin") query[key] = value;
  }});
  if (window.parent !== window) {{
    window.parent.postMessage(
      {{ type: "mock-toss:result", outcome: body.dataset.outcome, query: query }},
      body.dataset.parentOrigin
    );
  }}
}})();
</script></body></html>"""


def return_page(outcome: str, parent_origin: str) -> str:
    """Where the window of a promise-mode request lands: it hands the query to the opening page.

    The message goes to `parent_origin` only (the page that opened the layer), never to `*`.
    """
    return _RETURN_PAGE.format(outcome=html.escape(outcome), parent_origin=html.escape(parent_origin))
