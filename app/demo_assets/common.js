"use strict";
// Shared by the demo's pages: calls to our API with the page's bearer token, bilingual text,
// and formatting. Plain JavaScript, no build step: copy what you need.

const Demo = (() => {
  // The page's bearer token. A real frontend has its own session; the demo's pages get a
  // development token from the server in a data attribute (nothing is kept in storage, so any
  // page works in a fresh tab).
  const token = document.body.dataset.token || "";

  /** An answer of our API that is not 2xx: its HTTP status and the error envelope {code, message}. */
  class ApiError extends Error {
    constructor(status, envelope, retryAfterSeconds) {
      super((envelope && envelope.message) || `HTTP ${status}`);
      this.name = "ApiError";
      this.status = status;
      this.code = (envelope && envelope.code) || "";
      this.retryAfterMs = retryAfterSeconds === null ? null : Number(retryAfterSeconds) * 1000;
    }
  }

  /** Our API: JSON in and out, the bearer token added. Throws ApiError (an answer that is not
   *  2xx) or TypeError (no answer at all: network down, server unreachable). */
  async function api(path, { method = "GET", body, headers = {} } = {}) {
    const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null; // an HTML error page of a proxy, say: the status says enough
    }
    if (!response.ok) throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    return data;
  }

  /** Put a {ko, en} text into `element`: Korean first, English after it (smaller, by the CSS). */
  function setText(element, text) {
    const ko = document.createElement("span");
    ko.className = "ko";
    ko.textContent = text.ko;
    const en = document.createElement("span");
    en.className = "en";
    en.lang = "en";
    en.textContent = text.en;
    element.replaceChildren(ko, " ", en);
  }

  /** A random Idempotency-Key (works on plain http too, where crypto.randomUUID is missing). */
  function newIdempotencyKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const wonFormat = new Intl.NumberFormat("ko-KR");
  const dateFormat = new Intl.DateTimeFormat("ko-KR", {
    dateStyle: "long",
    timeStyle: "short",
    timeZone: "Asia/Seoul",
  });

  /** 50000 → "50,000원". */
  function won(amount) {
    return `${wonFormat.format(amount)}원`;
  }

  /** An ISO timestamp of the API → "2026년 11월 26일 오후 3:04 (KST)"; "—" when there is none. */
  function dateTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "—" : `${dateFormat.format(date)} (KST)`;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  return { api, ApiError, setText, newIdempotencyKey, won, dateTime, sleep };
})();
