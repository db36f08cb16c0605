"""A tiny stand-in for the frontend, served only outside production.

`make run` prints its URL: pick a product, pay in the mock Toss window, and watch the result
page poll the status endpoint with the server's `retryAfterMs` — the whole flow in a browser.

The pages carry no inline script or style: their code and look are files of this controller, so
they run under the strict Content-Security-Policy of app/web_security.py. The shop page hands
its development token to the script in a data attribute.
"""

from __future__ import annotations

import html

from litestar import Controller, MediaType, Response, get

from app.core.auth import DEVELOPMENT_USER_ID, TokenAuthority
from app.core.printable import printable_text

_SCRIPT_PATH = "/demo/assets/demo.js"
_STYLE_PATH = "/demo/assets/demo.css"

_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AsyncSite Payments demo</title>
<link rel="stylesheet" href="{_STYLE_PATH}"></head>
<body {{attributes}}>
<h1>AsyncSite Payments — demo shop</h1>
{{body}}
<script src="{_SCRIPT_PATH}"></script></body></html>"""

_SHOP_BODY = """<p>Signed in as <code>{user}</code> with a development token.</p>
<label>Method <select id="method"><option>CARD</option><option>EASY_PAY</option>
<option>VIRTUAL_ACCOUNT</option></select></label>
<ul id="products"></ul><pre id="log"></pre>"""

_RESULT_BODY = """<h2 id="title">{title}</h2><p id="message">{message}</p>
<p><a href="{shop}">Back to the shop</a></p><pre id="status"></pre>"""

_STYLE = """body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;line-height:1.5}
button{padding:.4rem 1rem} pre{background:#f4f4f4;padding:1rem;overflow:auto}
.ok{color:#087f23} .bad{color:#b00020}
"""

_SCRIPT = """"use strict";
const TOKEN_KEY = "asyncsite-demo-token";

function shop(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  const headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
  async function pay(p) {
    const body = {productType: p.productType, productId: p.productId, amount: p.amount,
                  method: document.getElementById("method").value};
    const r = await fetch("/api/payments/issue", {method: "POST", headers: {...headers,
        "Idempotency-Key": crypto.randomUUID()}, body: JSON.stringify(body)});
    const t = await r.json();
    document.getElementById("log").textContent = JSON.stringify(t, null, 2);
    if (r.ok && t.checkoutUrl) window.location = t.checkoutUrl;
  }
  fetch("/api/products").then(r => r.json()).then(list => {
    for (const p of list.items) {
      const li = document.createElement("li"), b = document.createElement("button");
      b.textContent = "Pay " + p.amount.toLocaleString() + " KRW";
      b.addEventListener("click", () => pay(p));
      li.append(p.name + " ", b); document.getElementById("products").append(li);
    }
  });
}

function result() {
  const id = new URLSearchParams(location.search).get("transactionId");
  const token = sessionStorage.getItem(TOKEN_KEY);
  let attempt = 0;
  async function poll() {
    if (!id || !token) return;
    const r = await fetch(`/api/payments/${encodeURIComponent(id)}/status?attempt=${attempt}`,
                          {headers: {"Authorization": "Bearer " + token}});
    const s = await r.json();
    document.getElementById("status").textContent = JSON.stringify(s, null, 2);
    document.getElementById("message").textContent = s.message || "";
    attempt += 1;
    // Keep polling until provisioning settles too (50), following the server's schedule.
    const done = s.statusCode === 41 || s.statusCode >= 50;
    if (!done && attempt < 40) setTimeout(poll, s.retryAfterMs ?? 2000);
    document.getElementById("title").className = s.statusCode === 41 ? "bad" : "ok";
  }
  poll();
}

if (document.body.dataset.page === "shop") shop(document.body.dataset.token);
else result();
"""


class DemoController(Controller):
    path = "/demo"
    include_in_schema = False

    @get("/", media_type=MediaType.HTML)
    async def shop(self, token_authority: TokenAuthority) -> str:
        token = token_authority.mint(DEVELOPMENT_USER_ID, ttl_seconds=8 * 3600)
        return _PAGE.format(
            attributes=f'data-page="shop" data-token="{html.escape(token)}"',
            body=_SHOP_BODY.format(user=DEVELOPMENT_USER_ID),
        )

    @get("/payment/success", media_type=MediaType.HTML)
    async def success(self) -> str:
        return _PAGE.format(
            attributes='data-page="result"',
            body=_RESULT_BODY.format(title="Payment received", message="Checking…", shop="/demo/"),
        )

    @get("/payment/fail", media_type=MediaType.HTML)
    async def fail(self, code: str | None = None, message: str | None = None) -> str:
        # Anyone can send a browser here with any query: shown as escaped, printable text only.
        return _PAGE.format(
            attributes='data-page="result"',
            body=_RESULT_BODY.format(
                title=f"Payment failed ({html.escape(printable_text(code or '', 64) or 'unknown')})",
                message=html.escape(printable_text(message or "", 510)),
                shop="/demo/",
            ),
        )

    @get("/assets/demo.js", media_type="text/javascript")
    async def script(self) -> Response[str]:
        return Response(_SCRIPT, media_type="text/javascript")

    @get("/assets/demo.css", media_type="text/css")
    async def style(self) -> Response[str]:
        return Response(_STYLE, media_type="text/css")
