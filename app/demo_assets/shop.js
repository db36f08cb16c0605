"use strict";
// The shop: list the products, issue a transaction, open the Toss payment window.
//
//   1. POST /api/payments/issue with an Idempotency-Key (one per attempt, see payAttempt below)
//   2. TossPayments(clientKey).payment({customerKey}).requestPayment({...}) in redirect mode:
//      the SDK sends this window to the payment window, which sends it to our API's successUrl or
//      failUrl; the API confirms the payment and redirects to /demo/payment/success or /fail.

(() => {
  const body = document.body;
  const productList = document.getElementById("products");
  const errorBox = document.getElementById("shop-error");

  // Our method → the SDK's requestPayment fields. Easy pay is a card payment that goes straight
  // to one provider's window (here Toss Pay).
  const SDK_METHODS = {
    CARD: { method: "CARD" },
    EASY_PAY: { method: "CARD", card: { flowMode: "DIRECT", easyPay: "TOSSPAY" } },
    VIRTUAL_ACCOUNT: { method: "VIRTUAL_ACCOUNT" },
    TRANSFER: { method: "TRANSFER" },
  };

  const PRODUCT_TYPES = {
    STUDY: { ko: "스터디", en: "Study" },
    AI_RESUME: { ko: "AI 이력서 크레딧", en: "AI resume credits" },
  };

  // What to tell the buyer for our API's error codes: the page's own words, in its own language
  // (the envelope's message, shown to developers beside the code, follows Accept-Language).
  const API_ERRORS = {
    AUTH_001: { ko: "로그인이 만료되었어요. 페이지를 새로고침해 주세요.", en: "Your session expired: reload the page." },
    RATE_LIMITED: { ko: "요청이 너무 많아요. 잠시 후 다시 시도해 주세요.", en: "Too many attempts: try again in a minute." },
    SERVICE_UNAVAILABLE: {
      ko: "결제 서비스가 잠시 응답하지 않아요. 잠시 후 다시 시도해 주세요.",
      en: "The payment service is briefly unavailable: try again shortly.",
    },
    PAY_008: { ko: "판매하지 않는 상품이에요.", en: "This product is not for sale." },
  };
  const NETWORK_ERROR = {
    ko: "서버에 연결할 수 없어요. 인터넷 연결을 확인해 주세요.",
    en: "Could not reach the server: check your connection.",
  };
  const SDK_MISSING = {
    ko: "결제 모듈(Toss SDK)을 불러오지 못했어요. 잠시 후 다시 시도해 주세요.",
    en: "The payment module (Toss SDK) did not load: try again later.",
  };
  const SDK_FAILED = { ko: "결제창을 열지 못했어요.", en: "The payment window could not be opened." };

  /** Show an error: a {ko, en} text and, for developers, the code and message behind it. */
  function showError(text, code, detail) {
    errorBox.replaceChildren();
    const line = document.createElement("p");
    Demo.setText(line, text);
    errorBox.append(line);
    if (code) {
      const technical = document.createElement("code");
      technical.textContent = detail ? `${code}: ${detail}` : code;
      errorBox.append(technical);
    }
    errorBox.hidden = false;
    errorBox.scrollIntoView({ block: "nearest" });
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.replaceChildren();
  }

  function setBusy(busy) {
    for (const button of productList.querySelectorAll("button.pay")) button.disabled = busy;
  }

  function selectedMethod() {
    return document.querySelector('input[name="method"]:checked').value;
  }

  /** Issue one attempt's transaction. The attempt's Idempotency-Key is reused when its request
   *  must be sent again (no answer, 503, or 409 "the first one still runs"): the server then
   *  answers with the same transaction instead of creating a second one. */
  async function issueTransaction(attempt) {
    const maxTries = 3;
    for (let tries = 1; ; tries += 1) {
      try {
        return await Demo.api("/api/payments/issue", {
          method: "POST",
          body: attempt.body,
          headers: { "Idempotency-Key": attempt.idempotencyKey },
        });
      } catch (error) {
        const sendAgain =
          error instanceof TypeError ||
          (error instanceof Demo.ApiError && (error.status === 503 || error.code === "PAY_010"));
        if (!sendAgain || tries >= maxTries) throw error;
        await Demo.sleep(error.retryAfterMs || 500 * tries);
      }
    }
  }

  function describeApiError(error, fallback) {
    if (error instanceof Demo.ApiError) {
      showError(API_ERRORS[error.code] || fallback, error.code || `HTTP ${error.status}`, error.message);
    } else {
      showError(NETWORK_ERROR, "NETWORK_ERROR", String(error && error.message));
    }
  }

  /** One click on "Pay" is one attempt with its own Idempotency-Key. */
  async function payAttempt(product) {
    clearError();
    setBusy(true);
    const method = selectedMethod();
    const attempt = {
      idempotencyKey: Demo.newIdempotencyKey(),
      body: { productType: product.productType, productId: product.productId, amount: product.amount, method },
    };
    let issued;
    try {
      issued = await issueTransaction(attempt);
    } catch (error) {
      describeApiError(error, { ko: "결제를 시작하지 못했어요.", en: "The payment could not be started." });
      setBusy(false);
      return;
    }
    if (typeof TossPayments !== "function") {
      showError(SDK_MISSING, "SDK_NOT_LOADED");
      setBusy(false);
      return;
    }
    try {
      const tossPayments = TossPayments(issued.clientKey);
      // customerKey: who pays, stable per user and unguessable (the server derives it).
      const payment = tossPayments.payment({ customerKey: body.dataset.customerKey || TossPayments.ANONYMOUS });
      await payment.requestPayment({
        ...SDK_METHODS[method],
        amount: { currency: "KRW", value: issued.amount },
        orderId: issued.transactionId,
        orderName: issued.orderName,
        successUrl: issued.successUrl,
        failUrl: issued.failUrl,
      });
      // Redirect mode: the window is on its way to the payment window; nothing else to do.
    } catch (error) {
      // The SDK rejects with {code, message}: invalid parameters, an unknown client key, …
      showError(SDK_FAILED, (error && error.code) || "SDK_ERROR", error && error.message);
      setBusy(false);
    }
  }

  function productItem(product) {
    const item = document.createElement("li");
    item.className = "product";
    item.dataset.productId = product.productId;

    const info = document.createElement("div");
    info.className = "product-info";
    const type = document.createElement("span");
    type.className = "product-type";
    Demo.setText(type, PRODUCT_TYPES[product.productType] || { ko: product.productType, en: "" });
    const name = document.createElement("span");
    name.className = "product-name";
    name.textContent = product.name;
    const price = document.createElement("span");
    price.className = "price";
    price.textContent = Demo.won(product.amount);
    info.append(type, name, price);

    const button = document.createElement("button");
    button.type = "button";
    button.className = "pay";
    Demo.setText(button, { ko: "결제하기", en: "Pay" });
    button.addEventListener("click", () => payAttempt(product));

    item.append(info, button);
    return item;
  }

  async function loadProducts() {
    try {
      const catalog = await Demo.api("/api/products");
      productList.replaceChildren(...catalog.items.map(productItem));
    } catch (error) {
      productList.replaceChildren();
      describeApiError(error, { ko: "상품을 불러오지 못했어요.", en: "The products could not be loaded." });
    }
  }

  // Back from the payment window with the browser's back button: the page may come from the
  // back-forward cache with its buttons still disabled.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) setBusy(false);
  });

  loadProducts();
})();
