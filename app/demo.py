"""A tiny stand-in for the frontend, served only outside production.

`make run` prints its URL: pick a product, pay in the mock Toss window, and watch the result
page poll the status endpoint with the server's `retryAfterMs` — the whole flow in a browser.
"""

from __future__ import annotations

import html

from litestar import Controller, MediaType, get

from app.core.auth import TokenAuthority

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AsyncSite Payments demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;line-height:1.5}}
button{{padding:.4rem 1rem}} pre{{background:#f4f4f4;padding:1rem;overflow:auto}}
.ok{{color:#087f23}} .bad{{color:#b00020}}</style></head><body>
<h1>AsyncSite Payments — demo shop</h1>
{body}
<script>
const TOKEN_KEY = "asyncsite-demo-token";
{script}
</script></body></html>"""

_SHOP_BODY = """<p>Signed in as <code>{user}</code> with a development token.</p>
<label>Method <select id="method"><option>CARD</option><option>EASY_PAY</option>
<option>VIRTUAL_ACCOUNT</option></select></label>
<ul id="products"></ul><pre id="log"></pre>"""

_SHOP_SCRIPT = """sessionStorage.setItem(TOKEN_KEY, {token});
const headers = {{"Authorization": "Bearer " + {token}, "Content-Type": "application/json"}};
async function pay(p) {{
  const body = {{productType: p.productType, productId: p.productId, amount: p.amount,
                method: document.getElementById("method").value}};
  const r = await fetch("/api/payments/issue", {{method: "POST", headers: {{...headers,
      "Idempotency-Key": crypto.randomUUID()}}, body: JSON.stringify(body)}});
  const t = await r.json();
  document.getElementById("log").textContent = JSON.stringify(t, null, 2);
  if (r.ok && t.checkoutUrl) window.location = t.checkoutUrl;
}}
fetch("/api/products").then(r => r.json()).then(list => {{
  for (const p of list.items) {{
    const li = document.createElement("li"), b = document.createElement("button");
    b.textContent = "Pay " + p.amount.toLocaleString() + " KRW"; b.onclick = () => pay(p);
    li.append(p.name + " ", b); document.getElementById("products").append(li);
  }}
}});"""

_RESULT_BODY = """<h2 id="title">{title}</h2><p id="message">{message}</p>
<p><a href="{shop}">Back to the shop</a></p><pre id="status"></pre>"""

_RESULT_SCRIPT = """const id = new URLSearchParams(location.search).get("transactionId");
const token = sessionStorage.getItem(TOKEN_KEY);
let attempt = 0;
async function poll() {{
  if (!id || !token) return;
  const r = await fetch(`/api/payments/${{id}}/status?attempt=${{attempt}}`,
                        {{headers: {{"Authorization": "Bearer " + token}}}});
  const s = await r.json();
  document.getElementById("status").textContent = JSON.stringify(s, null, 2);
  document.getElementById("message").textContent = s.message || "";
  attempt += 1;
  // Keep polling until provisioning settles too (50), following the server's schedule.
  const done = s.statusCode === 41 || s.statusCode >= 50;
  if (!done && attempt < 40) setTimeout(poll, s.retryAfterMs ?? 2000);
  document.getElementById("title").className = s.statusCode === 41 ? "bad" : "ok";
}}
poll();"""


class DemoController(Controller):
    path = "/demo"
    include_in_schema = False

    @get("/", media_type=MediaType.HTML)
    async def shop(self, token_authority: TokenAuthority) -> str:
        token = token_authority.mint("demo-user", ttl_seconds=8 * 3600)
        return _PAGE.format(
            body=_SHOP_BODY.format(user="demo-user"),
            script=_SHOP_SCRIPT.format(token=f'"{token}"'),
        )

    @get("/payment/success", media_type=MediaType.HTML)
    async def success(self) -> str:
        return _PAGE.format(
            body=_RESULT_BODY.format(title="Payment received", message="Checking…", shop="/demo/"),
            script=_RESULT_SCRIPT.format(),
        )

    @get("/payment/fail", media_type=MediaType.HTML)
    async def fail(self, code: str | None = None, message: str | None = None) -> str:
        return _PAGE.format(
            body=_RESULT_BODY.format(
                title=f"Payment failed ({html.escape(code or 'unknown')})",
                message=html.escape(message or ""),
                shop="/demo/",
            ),
            script=_RESULT_SCRIPT.format(),
        )
