"use strict";
// The result page (/demo/payment/success and /demo/payment/fail): follows
// GET /api/payments/{id}/status until the outcome is known, showing exactly one state:
//
//   checking         the first status request is in flight
//   confirming       10/30: the PG is being asked (or asked again by reconciliation)
//   waiting-deposit  30 with a virtual account: bank, account number, due date
//   success          40/45 "preparing your purchase", 50 "ready"
//   failure          41 (declined, cancelled, expired…), 51 (grant failed, refunded), 90/95 refunds
//   delayed          the polling schedule ran out before the outcome was known
//   error            no answer, or 401/403/404 from the API
//
// Polls wait what the server says (retryAfterMs), or the schedule 1-2-3-5 s when it says
// nothing (a paid transaction whose grant is still running). #payment-result carries the
// current state in data-current-state (the CSS shows that section only) and every state it
// went through in data-seen-states.
//
// Pushed, not polled, where it can: the first status answer carries a streamToken, with which the
// page opens the event stream (EventSource on GET /api/payments/{id}/events?streamToken=…; an
// EventSource cannot send the bearer token). Each `status` event is a status answer, shown by the
// same apply() as a poll's. When the stream fails (an error before any event, or it ends without
// a final state: a proxy, an expired token, the server's time limit), the page polls again from
// there, waiting the last answer's retryAfterMs. data-transport says which one brought the state
// shown: "sse" or "polling". The limit of polls (maxPolls) becomes a time limit on the stream: as
// long as those polls would have taken on the schedule.

(() => {
  const body = document.body;
  const root = document.getElementById("payment-result");
  const transactionId = body.dataset.transactionId || "";
  const mockUrl = body.dataset.mockUrl || ""; // development only: the mock Toss, for the deposit button
  const maxPolls = Number.parseInt(body.dataset.maxPolls, 10) || 25; // ~2 minutes on the schedule
  const isFailPage = body.dataset.kind === "fail";
  // What the fail redirect says: the PG's code (or ours), its message, and our PAY_… code.
  const redirect = {
    code: body.dataset.code || "",
    message: body.dataset.message || "",
    errorCode: body.dataset.errorCode || "",
  };

  const SCHEDULE_MS = [1000, 2000, 3000, 5000];
  const MAX_FAILED_REQUESTS = 3; // no answer or 5xx this many times in a row → the error state
  const BUYER_CANCELED = "PAY_PROCESS_CANCELED"; // the PG's code when the buyer closed the window
  const OUR_CODE = /^PAY_\d{3}$/;

  let attempt = 0; // status requests made so far (the API's ?attempt=)
  let stream = null; // the EventSource while the page follows the event stream
  let streamFailed = false; // once the stream failed, the page polls
  let lastStatus = null; // the last status answer or event
  let lastStep = null; // what apply() said about it: "poll", "wait" or "stop"
  let giveUpTimer = null;
  const startedAt = Date.now();
  let failedInRow = 0;
  let timer = null;
  let productType = null; // from the transaction's detail, to say what is being prepared

  // --- texts ------------------------------------------------------------------------------------

  const FAILED_TITLE = { ko: "결제하지 못했어요", en: "The payment did not go through" };
  const FAILURES = {
    canceled: {
      title: { ko: "결제를 취소했어요", en: "You cancelled the payment" },
      reason: {
        ko: "결제창에서 결제를 취소하셨어요. 청구된 금액은 없어요.",
        en: "You cancelled in the payment window. You have not been charged.",
      },
    },
    PAY_002: { reason: { ko: "결제 시간이 지나 주문이 만료되었어요.", en: "The order expired before it was paid." } },
    PAY_003: {
      reason: {
        ko: "카드사 또는 결제사에서 결제를 승인하지 않았어요. 다른 결제수단으로 다시 시도해 주세요.",
        en: "The card company or the payment provider declined the payment. Try another payment method.",
      },
    },
    PAY_004: { reason: { ko: "잔액 또는 카드 한도가 부족해요.", en: "Insufficient balance or card limit." } },
    PAY_005: {
      reason: {
        ko: "결제사 시스템 문제로 결제하지 못했어요. 잠시 후 다시 시도해 주세요.",
        en: "The payment provider could not process the payment. Try again in a moment.",
      },
    },
    PAY_007: {
      reason: {
        ko: "결제 금액이 주문 금액과 달라 결제를 진행하지 않았어요.",
        en: "The paid amount did not match the order, so the payment was not accepted.",
      },
    },
    PAY_000: { reason: { ko: "결제 요청이 올바르지 않아요.", en: "The payment request was not valid." } },
    PAY_008: { reason: { ko: "주문을 찾을 수 없어요.", en: "We could not find this order." } },
    provisionFailed: {
      title: { ko: "구매를 처리하지 못했어요", en: "We could not complete your purchase" },
      reason: {
        ko: "결제는 되었지만 상품을 지급하지 못했어요. 결제 금액은 자동으로 환불돼요.",
        en: "You were charged, but we could not grant the purchase: the amount is refunded automatically.",
      },
    },
    refunding: {
      title: { ko: "환불을 진행하고 있어요", en: "Refund in progress" },
      reason: { ko: "결제 금액을 환불하고 있어요.", en: "The payment is being refunded." },
    },
    refunded: {
      title: { ko: "환불이 완료되었어요", en: "The payment was refunded" },
      reason: { ko: "결제 금액이 환불되었어요.", en: "The amount was returned to you." },
    },
    unknown: {
      reason: { ko: "결제를 완료하지 못했어요. 다시 시도해 주세요.", en: "The payment could not be completed. Try again." },
    },
  };

  const PROVISIONING = {
    preparing: {
      STUDY: { ko: "스터디 참여를 준비하고 있어요…", en: "Preparing your study…" },
      AI_RESUME: { ko: "AI 이력서 크레딧을 지급하고 있어요…", en: "Adding your AI resume credits…" },
      other: { ko: "구매하신 상품을 준비하고 있어요…", en: "Preparing your purchase…" },
    },
    ready: {
      STUDY: { ko: "준비 완료! 스터디에 참여할 수 있어요.", en: "Ready: your study is waiting for you." },
      AI_RESUME: { ko: "준비 완료! 크레딧이 지급되었어요.", en: "Ready: your credits are in your account." },
      other: { ko: "준비 완료! 구매하신 상품을 이용할 수 있어요.", en: "Ready: your purchase is available." },
    },
    slow: {
      other: {
        ko: "결제는 완료되었고 상품 지급이 늦어지고 있어요. 잠시 후 주문 내역에서 확인해 주세요.",
        en: "Paid. Granting your purchase is taking longer than usual: check your order history in a few minutes.",
      },
    },
  };

  const ERRORS = {
    missingId: {
      ko: "주소에 주문번호가 없어요. 쇼핑으로 돌아가 다시 시도해 주세요.",
      en: "This link has no transaction id. Go back to the shop and try again.",
    },
    401: {
      ko: "로그인이 만료되었어요. 다시 로그인한 뒤 주문 내역에서 확인해 주세요.",
      en: "Your session expired. Sign in again and check your order history.",
    },
    403: { ko: "이 결제를 볼 권한이 없어요.", en: "This payment belongs to another account." },
    404: { ko: "이 결제를 찾을 수 없어요.", en: "We could not find this payment." },
    400: { ko: "주문번호가 올바르지 않아요.", en: "The transaction id in this link is not valid." },
    network: {
      ko: "서버에 연결할 수 없어요. 인터넷 연결을 확인한 뒤 다시 확인해 주세요.",
      en: "We could not reach the server. Check your connection and try again.",
    },
    unexpected: { ko: "알 수 없는 결제 상태예요.", en: "The payment is in a state this page does not know." },
  };

  const BANKS = {
    "02": { ko: "KDB산업은행", en: "KDB" },
    "03": { ko: "IBK기업은행", en: "IBK" },
    "06": { ko: "KB국민은행", en: "KB Kookmin Bank" },
    "07": { ko: "Sh수협은행", en: "Suhyup Bank" },
    11: { ko: "NH농협은행", en: "NongHyup Bank" },
    20: { ko: "우리은행", en: "Woori Bank" },
    23: { ko: "SC제일은행", en: "SC First Bank" },
    31: { ko: "iM뱅크(대구)", en: "iM Bank (Daegu)" },
    32: { ko: "부산은행", en: "Busan Bank" },
    34: { ko: "광주은행", en: "Gwangju Bank" },
    35: { ko: "제주은행", en: "Jeju Bank" },
    37: { ko: "전북은행", en: "Jeonbuk Bank" },
    39: { ko: "경남은행", en: "Kyongnam Bank" },
    45: { ko: "새마을금고", en: "MG Community Credit" },
    71: { ko: "우체국예금보험", en: "Korea Post" },
    81: { ko: "하나은행", en: "Hana Bank" },
    88: { ko: "신한은행", en: "Shinhan Bank" },
    89: { ko: "케이뱅크", en: "K Bank" },
    90: { ko: "카카오뱅크", en: "KakaoBank" },
    92: { ko: "토스뱅크", en: "Toss Bank" },
  };

  // --- showing a state ----------------------------------------------------------------------------

  function show(state) {
    root.dataset.currentState = state;
    const seen = root.dataset.seenStates ? root.dataset.seenStates.split(" ") : [];
    if (seen[seen.length - 1] !== state) root.dataset.seenStates = [...seen, state].join(" ");
  }

  function fill(field, text) {
    for (const element of root.querySelectorAll(`[data-field="${field}"]`)) element.textContent = text;
  }

  function showFailure({ canceled, code, pgCode, message }, statusCode) {
    let failure = FAILURES[code] || FAILURES.unknown;
    if (canceled) failure = FAILURES.canceled;
    else if (statusCode === 51) failure = FAILURES.provisionFailed;
    else if (statusCode === 90) failure = FAILURES.refunding;
    else if (statusCode === 95) failure = FAILURES.refunded;
    Demo.setText(document.getElementById("failure-title"), failure.title || FAILED_TITLE);
    Demo.setText(document.getElementById("failure-reason"), failure.reason);
    // The PG's own message (or ours) under the reason; nothing more for a buyer who cancelled.
    document.getElementById("failure-pg-message").textContent = canceled ? "" : message || "";
    root.dataset.failureCode = canceled ? BUYER_CANCELED : code || pgCode || "";
    show("failure");
  }

  function showSuccess(status, stage) {
    const texts = PROVISIONING[stage];
    const provisioning = document.getElementById("provisioning");
    provisioning.dataset.provisioning = stage;
    Demo.setText(provisioning, texts[productType] || texts.other);
    fill("amount", Demo.won(status.amount));
    document.getElementById("paid-at").textContent = Demo.dateTime(status.completedAt);
    show("success");
  }

  function showDeposit(status) {
    const account = status.virtualAccount;
    const bank = BANKS[account.bankCode];
    const bankCell = document.getElementById("va-bank");
    if (bank) Demo.setText(bankCell, bank);
    else bankCell.textContent = account.bankCode;
    document.getElementById("va-account").textContent = account.accountNumber;
    document.getElementById("va-due").textContent = Demo.dateTime(account.dueDate);
    fill("amount", Demo.won(status.amount));
    document.getElementById("simulate-deposit").hidden = !mockUrl;
    show("waiting-deposit");
  }

  function showError(text, { canRetry = false } = {}) {
    Demo.setText(document.getElementById("error-reason"), text);
    document.getElementById("retry-status").hidden = !canRetry;
    show("error");
  }

  /** For developers: what the last answer said, as a list (never raw JSON). */
  function showDetails(entries) {
    const list = document.getElementById("developer-details");
    list.replaceChildren();
    for (const [name, value] of entries) {
      if (value === null || value === undefined || value === "") continue;
      const term = document.createElement("dt");
      term.textContent = name;
      const description = document.createElement("dd");
      description.className = "mono";
      description.textContent = String(value);
      list.append(term, description);
    }
  }

  // --- the fail redirect's query ------------------------------------------------------------------

  function failureFromRedirect() {
    // New redirects: code = the PG's code (or ours), errorCode = ours. Older ones: code = ours.
    let ours = "";
    if (OUR_CODE.test(redirect.errorCode)) ours = redirect.errorCode;
    else if (OUR_CODE.test(redirect.code)) ours = redirect.code;
    const pgCode = redirect.code && redirect.code !== ours ? redirect.code : "";
    return { canceled: pgCode === BUYER_CANCELED, code: ours, pgCode, message: redirect.message };
  }

  function failureFromStatus(status) {
    const failure = status.failure || {};
    const fromRedirect = failureFromRedirect();
    return {
      canceled: failure.pgCode === BUYER_CANCELED || (status.statusCode === 41 && fromRedirect.canceled),
      code: failure.code || fromRedirect.code,
      pgCode: failure.pgCode || fromRedirect.pgCode,
      // The PG's own words (the card company's, in Korean) when it gave some, else ours.
      message: failure.pgMessage || failure.message || fromRedirect.message || "",
    };
  }

  // --- polling --------------------------------------------------------------------------------------

  function scheduleStep() {
    return SCHEDULE_MS[Math.min(attempt - 1, SCHEDULE_MS.length - 1)];
  }

  /** How long maxPolls polls take on the schedule: the stream's time limit for the same answer. */
  function pollingBudgetMs() {
    let total = 0;
    for (let made = 1; made < maxPolls; made += 1) total += SCHEDULE_MS[Math.min(made - 1, SCHEDULE_MS.length - 1)];
    return total;
  }

  function statusDetails(status, transport) {
    return [
      ["transactionId", status.transactionId],
      ["status", `${status.statusCode} ${status.status}`],
      ["message", status.message],
      ["failure.code", status.failure && status.failure.code],
      ["failure.pgCode", status.failure && status.failure.pgCode],
      ["redirect code", redirect.code],
      ["redirect errorCode", redirect.errorCode],
      ["retryAfterMs", status.retryAfterMs],
      ["transport", transport],
      ["attempt", attempt],
    ];
  }

  function pollIn(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  /** Apply one status answer; says whether to poll again ("poll", counted against maxPolls),
   *  keep waiting for a deposit ("wait", not counted: a deposit may take days) or stop. */
  function apply(status) {
    const code = status.statusCode;
    if (code === 30 && status.virtualAccount) {
      showDeposit(status);
      return "wait";
    }
    if (code === 10 && isFailPage) {
      // The PG reported no payment going on: the redirect's failure stands.
      showFailure(failureFromRedirect(), 41);
      return "stop";
    }
    if (code === 10 || code === 30) {
      show("confirming");
      return "poll";
    }
    if (code === 40 || code === 45 || code === 50) {
      if (productType === null) loadProductType();
      showSuccess(status, code === 50 ? "ready" : "preparing");
      return code === 50 ? "stop" : "poll";
    }
    if (code === 41 || code === 51 || code === 90 || code === 95) {
      showFailure(failureFromStatus(status), code);
      return "stop";
    }
    showError(ERRORS.unexpected);
    return "stop";
  }

  function giveUp() {
    if (root.dataset.currentState === "success") {
      // Paid: only the grant is slow. Say so, and stop asking.
      const provisioning = document.getElementById("provisioning");
      provisioning.dataset.provisioning = "slow";
      Demo.setText(provisioning, PROVISIONING.slow.other);
    } else {
      show("delayed");
    }
  }

  async function poll() {
    attempt += 1;
    let status;
    try {
      status = await Demo.api(
        `/api/payments/${encodeURIComponent(transactionId)}/status?attempt=${attempt - 1}`,
      );
    } catch (error) {
      onPollError(error);
      return;
    }
    failedInRow = 0;
    root.dataset.transport = "polling";
    showDetails(statusDetails(status, "polling"));
    lastStatus = status;
    const next = apply(status);
    lastStep = next;
    if (next === "stop") return;
    if (next === "poll" && attempt >= maxPolls) {
      giveUp();
      return;
    }
    if (!streamFailed && status.streamToken && typeof EventSource === "function") {
      follow(status.streamToken);
      return;
    }
    pollIn(status.retryAfterMs ?? scheduleStep());
  }

  // --- the event stream -------------------------------------------------------------------------------

  function follow(streamToken) {
    const url =
      `/api/payments/${encodeURIComponent(transactionId)}/events` +
      `?streamToken=${encodeURIComponent(streamToken)}`;
    const source = new EventSource(url);
    stream = source;
    source.addEventListener("status", (event) => {
      if (stream !== source) return;
      let status;
      try {
        status = JSON.parse(event.data);
      } catch {
        return; // not ours; the next event or the fallback will tell
      }
      root.dataset.transport = "sse";
      showDetails(statusDetails(status, "sse"));
      lastStatus = status;
      const next = apply(status);
      lastStep = next;
      if (next === "stop") {
        closeStream(); // before the server closes it: a closed EventSource does not reconnect
      } else if (next === "poll" && Date.now() - startedAt >= pollingBudgetMs()) {
        closeStream();
        giveUp();
      }
    });
    // An error before any event (refused, unreachable) or after some (the stream ended without a
    // final state, the network went away): EventSource would reconnect; the page polls instead.
    source.onerror = () => {
      if (stream !== source) return;
      closeStream();
      streamFailed = true;
      root.dataset.transport = "polling";
      pollIn((lastStatus && lastStatus.retryAfterMs) ?? scheduleStep());
    };
    clearTimeout(giveUpTimer);
    giveUpTimer = setTimeout(
      () => {
        if (stream === source && lastStep === "poll") {
          closeStream();
          giveUp();
        }
      },
      Math.max(0, startedAt + pollingBudgetMs() - Date.now()),
    );
  }

  function closeStream() {
    clearTimeout(giveUpTimer);
    if (stream !== null) {
      stream.close();
      stream = null;
    }
  }

  function onPollError(error) {
    const status = error instanceof Demo.ApiError ? error.status : null;
    const final = status === 400 || status === 401 || status === 403 || status === 404;
    showDetails([
      ["transactionId", transactionId],
      ["error", status ? `HTTP ${status} ${error.code}` : "no answer"],
      ["message", error.message],
      ["attempt", attempt],
    ]);
    if (isFailPage && root.dataset.currentState === "failure") {
      // The redirect already said what happened: keep showing it (the details say the rest).
      return;
    }
    if (final) {
      showError(ERRORS[status]);
      return;
    }
    failedInRow += 1;
    if (failedInRow >= MAX_FAILED_REQUESTS) {
      showError(ERRORS.network, { canRetry: true });
      return;
    }
    pollIn(error.retryAfterMs || scheduleStep());
  }

  /** What was bought, for the success texts ("preparing your study"); a nicety, so errors are ignored. */
  async function loadProductType() {
    productType = "";
    try {
      const detail = await Demo.api(`/api/payments/${encodeURIComponent(transactionId)}`);
      productType = detail.productType;
      document.getElementById("order-name").textContent = detail.orderName;
      const provisioning = document.getElementById("provisioning");
      const stage = provisioning.dataset.provisioning;
      if (stage === "preparing" || stage === "ready") {
        Demo.setText(provisioning, PROVISIONING[stage][productType] || PROVISIONING[stage].other);
      }
    } catch {
      // keep the generic texts
    }
  }

  // --- development: pay into the virtual account at the mock --------------------------------------

  async function simulateDeposit() {
    const button = document.getElementById("simulate-deposit");
    const note = document.getElementById("deposit-note");
    button.disabled = true;
    note.hidden = false;
    Demo.setText(note, { ko: "입금하는 중…", en: "Depositing…" });
    try {
      const response = await fetch(
        `${mockUrl}/_mock/virtual-accounts/${encodeURIComponent(transactionId)}/deposit`,
        { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" },
      );
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        Demo.setText(note, {
          ko: `입금하지 못했어요 (${answer.code || response.status}).`,
          en: `The mock refused the deposit (${answer.code || response.status}).`,
        });
        button.disabled = false;
        return;
      }
      Demo.setText(note, { ko: "입금했어요. 결제를 확인하고 있어요…", en: "Deposited. Waiting for the confirmation…" });
      if (stream === null) pollIn(500); // the deposit webhook moves the payment on in a moment: ask soon
    } catch {
      Demo.setText(note, { ko: "Mock Toss에 연결할 수 없어요.", en: "Could not reach the mock Toss." });
      button.disabled = false;
    }
  }

  document.getElementById("simulate-deposit").addEventListener("click", simulateDeposit);
  document.getElementById("retry-status").addEventListener("click", () => {
    failedInRow = 0;
    show("checking");
    poll();
  });

  // --- start ----------------------------------------------------------------------------------------

  if (isFailPage) {
    // The redirect's code and message at once; then, when it names a transaction, its status.
    if (!transactionId) document.getElementById("failure-facts").hidden = true;
    showFailure(failureFromRedirect(), 41);
    if (transactionId) poll();
  } else if (!transactionId) {
    showError(ERRORS.missingId);
  } else {
    fill("order-number", transactionId);
    show("checking");
    poll();
  }
})();
