/*
 * The mock's TossPayments.js: the part of Toss's browser SDK that a merchant page calls, opening
 * the mock's payment window instead of Toss's. Served at /v2/standard (SDK v2: payment() and
 * widgets()) and /v1 (SDK v1: requestPayment(method, params)); the official loaders
 * (`loadTossPayments(clientKey, { src })`) load it unchanged. mock_toss/README.md lists what is
 * covered. The server puts its settings in place of the marker below.
 */
(function (settings) {
  "use strict";

  var ANONYMOUS = "@@ANONYMOUS";
  var script = document.currentScript;
  var MOCK_ORIGIN = script && script.src ? new URL(script.src).origin : settings.origin;
  var ORDER_ID = /^[A-Za-z0-9_-]{6,64}$/;
  var CUSTOMER_KEY = /^[A-Za-z0-9\-_=.@]{2,50}$/;
  var SECRET_KEY_PREFIXES = ["test_sk_", "live_sk_", "test_gsk_", "live_gsk_"];

  // The window's methods, by every name a page may use (v2 codes, v1 Korean names).
  var WINDOW_METHODS = {
    CARD: "CARD", "카드": "CARD",
    VIRTUAL_ACCOUNT: "VIRTUAL_ACCOUNT", "가상계좌": "VIRTUAL_ACCOUNT",
    TRANSFER: "TRANSFER", "계좌이체": "TRANSFER",
    MOBILE_PHONE: "MOBILE_PHONE", "휴대폰": "MOBILE_PHONE",
    TOSSPAY: "EASY_PAY", "토스페이": "EASY_PAY", "토스결제": "EASY_PAY",
  };
  var EASY_PAY_PROVIDERS = { TOSSPAY: true, "토스페이": true };

  var MESSAGES = {
    INVALID_CLIENT_KEY: "클라이언트 키가 올바르지 않습니다. 모의 서버(mock)에 등록된 키를 사용해주세요.",
    NOT_SUPPORTED_WIDGET_KEY: "결제위젯 연동 키(gck)는 결제창에서 사용할 수 없습니다. API 개별 연동 키(ck)를 사용해주세요.",
    NOT_SUPPORTED_API_INDIVIDUAL_KEY: "API 개별 연동 키(ck)는 결제위젯에서 사용할 수 없습니다. 결제위젯 연동 키(gck)를 사용해주세요.",
    INVALID_CUSTOMER_KEY: "customerKey는 영문 대소문자, 숫자, 특수문자 -, _, =, ., @ 로 이루어진 2자 이상 50자 이하의 문자열이어야 합니다.",
    INSECURE_KEY_USAGE: "시크릿 키를 브라우저에서 사용하면 안 됩니다.",
    NOT_SUPPORTED_METHOD: "지원하지 않는 결제수단입니다.",
    INVALID_AMOUNT_VALUE: "결제 금액(amount)이 올바르지 않습니다. 0 이상의 정수여야 합니다.",
    INVALID_AMOUNT_CURRENCY: "결제 통화(amount.currency)가 올바르지 않습니다. KRW만 지원합니다.",
    BELOW_ZERO_AMOUNT: "결제 금액은 0원 이상이어야 합니다.",
    INVALID_ORDER_ID: "orderId는 영문 대소문자, 숫자, 특수문자 -, _ 로 이루어진 6자 이상 64자 이하의 문자열이어야 합니다.",
    INVALID_ORDER_NAME: "orderName은 1자 이상 100자 이하의 문자열이어야 합니다.",
    INCORRECT_SUCCESS_URL_FORMAT: "successUrl은 오리진을 포함한 http(s) URL이어야 합니다.",
    INCORRECT_FAIL_URL_FORMAT: "failUrl은 오리진을 포함한 http(s) URL이어야 합니다.",
    INVALID_PARAMETERS: "파라미터가 올바르지 않습니다.",
    INVALID_METHOD_TRANSACTION: "이미 다른 결제 요청을 처리 중입니다.",
    USER_CANCEL: "사용자가 결제를 취소하였습니다.",
    NOT_SETUP_AMOUNT: "결제 금액이 설정되지 않았습니다. setAmount()를 먼저 호출해주세요.",
    INVALID_SELECTOR: "selector에 해당하는 엘리먼트를 찾을 수 없습니다.",
    PAYMENT_METHODS_WIDGET_ALREADY_RENDERED: "결제 UI가 이미 렌더링되었습니다.",
    AGREEMENT_WIDGET_ALREADY_RENDERED: "약관 UI가 이미 렌더링되었습니다.",
    NOT_SELECTED_PAYMENT_METHOD: "결제수단이 선택되지 않았습니다.",
    NEED_AGREEMENT_WITH_REQUIRED_TERMS: "필수 약관에 동의해주세요.",
  };

  function TossPaymentsError(code, message) {
    var error = new Error(message || MESSAGES[code] || code);
    error.name = "TossPaymentsError";
    error.code = code;
    return error;
  }

  function fail(code, detail) {
    throw TossPaymentsError(code, detail ? MESSAGES[code] + " (" + detail + ")" : undefined);
  }

  // ------------------------------------------------------------------ checks of the page's input

  function isText(value) {
    return typeof value === "string" && value.length > 0;
  }

  function isAbsoluteHttpUrl(value) {
    if (!isText(value)) return false;
    try {
      var url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:";
    } catch (error) {
      return false;
    }
  }

  function checkClientKey(clientKey, widget) {
    if (!isText(clientKey)) fail("INVALID_CLIENT_KEY");
    var isWidgetKey = settings.widgetClientKeys.indexOf(clientKey) >= 0;
    var isApiKey = settings.clientKeys.indexOf(clientKey) >= 0;
    if (!isWidgetKey && !isApiKey) fail("INVALID_CLIENT_KEY");
    if (widget && !isWidgetKey) fail("NOT_SUPPORTED_API_INDIVIDUAL_KEY");
    if (!widget && isWidgetKey) fail("NOT_SUPPORTED_WIDGET_KEY");
  }

  function checkCustomerKey(params) {
    if (!params || typeof params !== "object") fail("INVALID_PARAMETERS", "customerKey");
    var key = params.customerKey;
    if (!isText(key) || !CUSTOMER_KEY.test(key)) fail("INVALID_CUSTOMER_KEY");
    for (var i = 0; i < SECRET_KEY_PREFIXES.length; i += 1) {
      if (key.indexOf(SECRET_KEY_PREFIXES[i]) === 0) fail("INSECURE_KEY_USAGE");
    }
  }

  // v2's amount is `{ currency: "KRW", value }`; v1's a plain number.
  function amountValue(amount, version) {
    var value = amount;
    if (version === 2) {
      if (!amount || typeof amount !== "object") fail("INVALID_AMOUNT_VALUE");
      if (amount.currency !== "KRW") fail("INVALID_AMOUNT_CURRENCY");
      value = amount.value;
    }
    if (typeof value !== "number" || !isFinite(value) || Math.floor(value) !== value) {
      fail("INVALID_AMOUNT_VALUE");
    }
    if (value < 0) fail("BELOW_ZERO_AMOUNT");
    return value;
  }

  function checkOrder(params) {
    if (!isText(params.orderId) || !ORDER_ID.test(params.orderId)) fail("INVALID_ORDER_ID");
    if (!isText(params.orderName) || !params.orderName.trim() || params.orderName.length > 100) {
      fail("INVALID_ORDER_NAME");
    }
  }

  // Redirect mode needs both URLs; promise mode neither.
  function redirectUrls(params) {
    var hasSuccess = params.successUrl !== undefined && params.successUrl !== null;
    var hasFail = params.failUrl !== undefined && params.failUrl !== null;
    if (hasSuccess && !isAbsoluteHttpUrl(params.successUrl)) fail("INCORRECT_SUCCESS_URL_FORMAT");
    if (hasFail && !isAbsoluteHttpUrl(params.failUrl)) fail("INCORRECT_FAIL_URL_FORMAT");
    if (hasSuccess !== hasFail) fail("INVALID_PARAMETERS", "successUrl과 failUrl은 함께 넘겨야 합니다");
    return hasSuccess ? { success: params.successUrl, fail: params.failUrl } : null;
  }

  function windowMethod(method, card) {
    var resolved = typeof method === "string" ? WINDOW_METHODS[method.trim()] : undefined;
    if (!resolved) fail("NOT_SUPPORTED_METHOD", String(method));
    if (resolved === "CARD" && card && card.easyPay) {
      if (!EASY_PAY_PROVIDERS[card.easyPay]) fail("NOT_SUPPORTED_METHOD", "easyPay " + card.easyPay);
      return "EASY_PAY";
    }
    return resolved;
  }

  // ------------------------------------------------------------------ the payment window

  var busy = false; // one request at a time, as the real SDK (INVALID_METHOD_TRANSACTION)

  function checkoutUrl(order, successUrl, failUrl) {
    var query = new URLSearchParams({
      clientKey: order.clientKey,
      orderId: order.orderId,
      amount: String(order.amount),
      orderName: order.orderName,
      method: order.method,
      successUrl: successUrl,
      failUrl: failUrl,
    });
    if (isText(order.customerName)) query.set("customerName", order.customerName);
    return MOCK_ORIGIN + "/checkout?" + query.toString();
  }

  // Redirect mode: this window goes to the payment window, which sends it on to successUrl or
  // failUrl exactly like Toss (the mock always opens in this window: windowTarget "self").
  function redirect(order, urls) {
    window.location.assign(checkoutUrl(order, urls.success, urls.fail));
    return Promise.resolve();
  }

  // Promise mode: the payment window opens in a layer over the page; its redirect lands on the
  // mock's return page, which posts the outcome back here.
  function openLayer(order, shapeResult) {
    if (busy) return Promise.reject(TossPaymentsError("INVALID_METHOD_TRANSACTION"));
    busy = true;
    var back = "?parentOrigin=" + encodeURIComponent(window.location.origin);
    var url = checkoutUrl(
      order,
      MOCK_ORIGIN + "/_mock/sdk/return/success" + back,
      MOCK_ORIGIN + "/_mock/sdk/return/fail" + back
    );
    return new Promise(function (resolve, reject) {
      var layer = document.createElement("div");
      layer.setAttribute("data-mock-toss", "payment-window");
      var s = layer.style;
      s.position = "fixed"; s.inset = "0"; s.zIndex = "2147483647";
      s.background = "rgba(0,0,0,.45)"; s.display = "flex";
      s.alignItems = "center"; s.justifyContent = "center";
      var frame = document.createElement("iframe");
      frame.title = "토스페이먼츠 결제창 (mock)";
      frame.src = url;
      var f = frame.style;
      f.width = "min(480px, 100vw)"; f.height = "min(720px, 100vh)";
      f.border = "0"; f.borderRadius = "16px"; f.background = "#f2f4f6";
      var close = document.createElement("button");
      close.type = "button";
      close.textContent = "×";
      close.setAttribute("aria-label", "결제창 닫기");
      var c = close.style;
      c.position = "absolute"; c.top = "12px"; c.right = "16px"; c.fontSize = "28px";
      c.color = "#fff"; c.background = "transparent"; c.border = "0"; c.cursor = "pointer";
      layer.appendChild(frame);
      layer.appendChild(close);

      function finish() {
        window.removeEventListener("message", onMessage);
        if (layer.parentNode) layer.parentNode.removeChild(layer);
        busy = false;
      }
      function onMessage(event) {
        if (event.origin !== MOCK_ORIGIN || event.source !== frame.contentWindow) return;
        var data = event.data;
        if (!data || data.type !== "mock-toss:result") return;
        finish();
        var query = data.query || {};
        if (data.outcome === "success") {
          resolve(shapeResult(query));
        } else if (query.code === "PAY_PROCESS_CANCELED") {
          reject(TossPaymentsError("USER_CANCEL"));
        } else {
          reject(TossPaymentsError(query.code || "PAYMENT_REQUEST_FAIL", query.message));
        }
      }
      close.addEventListener("click", function () {
        finish();
        reject(TossPaymentsError("USER_CANCEL"));
      });
      window.addEventListener("message", onMessage);
      document.body.appendChild(layer);
    });
  }

  function v2Result(query) {
    return {
      paymentType: query.paymentType || "NORMAL",
      paymentKey: query.paymentKey,
      orderId: query.orderId,
      amount: { currency: "KRW", value: Number(query.amount) },
    };
  }

  function v1Result(query) {
    return {
      paymentType: query.paymentType || "NORMAL",
      paymentKey: query.paymentKey,
      orderId: query.orderId,
      amount: Number(query.amount),
    };
  }

  // Checks run synchronously; like the SDK's async methods, their failures become rejections.
  function attempt(run) {
    try {
      return run();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  function start(order, urls, shapeResult) {
    if (urls) return redirect(order, urls);
    return openLayer(order, shapeResult);
  }

  // ------------------------------------------------------------------ automatic payments (billing)

  var BILLING_METHODS = { CARD: true, "카드": true };

  // Redirect mode only: this window goes to the mock's card-registration window, which sends it on
  // to successUrl?customerKey&authKey or failUrl?code&message, like Toss's.
  function requestBillingAuth(clientKey, customerKey, method, params) {
    return attempt(function () {
      checkClientKey(clientKey, false);
      if (typeof method !== "string" || !BILLING_METHODS[method.trim()]) {
        fail("NOT_SUPPORTED_METHOD", "자동결제는 카드(CARD)만 지원합니다: " + String(method));
      }
      if (!params || typeof params !== "object") fail("INVALID_PARAMETERS");
      if (customerKey === ANONYMOUS) fail("INVALID_CUSTOMER_KEY", "자동결제에는 ANONYMOUS를 쓸 수 없습니다");
      checkCustomerKey({ customerKey: customerKey });
      var urls = redirectUrls(params);
      if (!urls) fail("INVALID_PARAMETERS", "자동결제 등록창은 successUrl과 failUrl이 필요합니다");
      var query = new URLSearchParams({
        clientKey: clientKey, customerKey: customerKey, successUrl: urls.success, failUrl: urls.fail,
      });
      if (isText(params.customerName)) query.set("customerName", params.customerName);
      if (isText(params.customerEmail)) query.set("customerEmail", params.customerEmail);
      window.location.assign(MOCK_ORIGIN + "/billing-auth?" + query.toString());
      return Promise.resolve();
    });
  }

  // ------------------------------------------------------------------ SDK v2: payment()

  function v2Payment(clientKey, params) {
    checkClientKey(clientKey, false);
    checkCustomerKey(params);
    return {
      requestPayment: function (request) {
        return attempt(function () {
          if (!request || typeof request !== "object") fail("INVALID_PARAMETERS");
          var method = windowMethod(request.method, request.card);
          var value = amountValue(request.amount, 2);
          checkOrder(request);
          var urls = redirectUrls(request);
          var order = {
            clientKey: clientKey, orderId: request.orderId, orderName: request.orderName,
            amount: value, method: method, customerName: request.customerName,
          };
          return start(order, urls, v2Result);
        });
      },
      requestBillingAuth: function (request) {
        return requestBillingAuth(clientKey, params.customerKey, request && request.method, request);
      },
      destroy: function () {
        return Promise.resolve();
      },
    };
  }

  // ------------------------------------------------------------------ SDK v2: widgets()

  var WIDGET_METHODS = [
    { code: "CARD", label: "신용・체크카드" },
    { code: "TOSSPAY", label: "토스페이" },
    { code: "VIRTUAL_ACCOUNT", label: "가상계좌" },
    { code: "TRANSFER", label: "계좌이체" },
    { code: "MOBILE_PHONE", label: "휴대폰" },
  ];

  function element(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function v2Widgets(clientKey, params) {
    checkClientKey(clientKey, true);
    checkCustomerKey(params);
    var state = { amount: null, method: null, methods: null, agreement: null, agreed: true };
    var listeners = { paymentMethodSelect: [], agreementStatusChange: [] };

    function emit(name, value) {
      listeners[name].forEach(function (callback) { callback(value); });
    }
    function subscribe(name) {
      return function (eventName, callback) {
        if (eventName !== name) fail("INVALID_PARAMETERS", "eventName " + eventName);
        if (typeof callback !== "function") fail("INVALID_PARAMETERS", "callback");
        listeners[name].push(callback);
      };
    }
    function target(options) {
      var selector = options && options.selector;
      var node = isText(selector) ? document.querySelector(selector) : null;
      if (!node) fail("INVALID_SELECTOR", String(selector));
      return node;
    }
    function agreementStatus() {
      return {
        agreedRequiredTerms: state.agreed,
        agreements: [{ term: { id: "mock-required-terms", required: true }, agreed: state.agreed }],
      };
    }

    return {
      setAmount: function (amount) {
        return attempt(function () {
          state.amount = amountValue(amount, 2);
          return Promise.resolve();
        });
      },
      renderPaymentMethods: function (options) {
        return attempt(function () {
          if (state.amount === null) fail("NOT_SETUP_AMOUNT");
          if (state.methods) fail("PAYMENT_METHODS_WIDGET_ALREADY_RENDERED");
          var node = target(options);
          var box = element("fieldset");
          box.setAttribute("data-mock-toss", "payment-methods");
          box.style.border = "1px solid #e5e8eb"; box.style.borderRadius = "12px"; box.style.padding = "12px";
          box.appendChild(element("legend", "결제 방법 (mock)"));
          var name = "mock-toss-method-" + Math.random().toString(36).slice(2);
          WIDGET_METHODS.forEach(function (item, index) {
            var label = element("label");
            label.style.display = "block"; label.style.padding = "6px 0";
            var radio = element("input");
            radio.type = "radio"; radio.name = name; radio.value = item.code;
            radio.checked = index === 0;
            radio.addEventListener("change", function () {
              state.method = item.code;
              emit("paymentMethodSelect", { code: item.code });
            });
            label.appendChild(radio);
            label.appendChild(document.createTextNode(" " + item.label));
            box.appendChild(label);
          });
          node.appendChild(box);
          state.methods = box;
          state.method = WIDGET_METHODS[0].code;
          return Promise.resolve({
            on: subscribe("paymentMethodSelect"),
            getSelectedPaymentMethod: function () {
              return Promise.resolve({ code: state.method });
            },
            destroy: function () {
              if (box.parentNode) box.parentNode.removeChild(box);
              state.methods = null;
              state.method = null;
              return Promise.resolve();
            },
          });
        });
      },
      renderAgreement: function (options) {
        return attempt(function () {
          if (state.agreement) fail("AGREEMENT_WIDGET_ALREADY_RENDERED");
          var node = target(options);
          var label = element("label");
          label.setAttribute("data-mock-toss", "agreement");
          label.style.display = "block"; label.style.padding = "8px 0";
          var box = element("input");
          box.type = "checkbox"; box.checked = true;
          box.addEventListener("change", function () {
            state.agreed = box.checked;
            emit("agreementStatusChange", agreementStatus());
          });
          label.appendChild(box);
          label.appendChild(document.createTextNode(" [필수] 결제 서비스 이용 약관, 개인정보 처리 동의"));
          node.appendChild(label);
          state.agreement = label;
          state.agreed = true;
          return Promise.resolve({
            on: subscribe("agreementStatusChange"),
            destroy: function () {
              if (label.parentNode) label.parentNode.removeChild(label);
              state.agreement = null;
              state.agreed = true;
              return Promise.resolve();
            },
          });
        });
      },
      requestPayment: function (request) {
        return attempt(function () {
          if (!request || typeof request !== "object") fail("INVALID_PARAMETERS");
          if (state.amount === null) fail("NOT_SETUP_AMOUNT");
          if (!state.method) fail("NOT_SELECTED_PAYMENT_METHOD");
          if (state.agreement && !state.agreed) fail("NEED_AGREEMENT_WITH_REQUIRED_TERMS");
          checkOrder(request);
          var urls = redirectUrls(request);
          var order = {
            clientKey: clientKey, orderId: request.orderId, orderName: request.orderName,
            amount: state.amount, method: windowMethod(state.method), customerName: request.customerName,
          };
          return start(order, urls, v2Result);
        });
      },
    };
  }

  // ------------------------------------------------------------------ SDK v1

  function v1Instance(clientKey) {
    return {
      requestPayment: function (method, params) {
        return attempt(function () {
          checkClientKey(clientKey, false);
          if (method && typeof method === "object") {
            fail("NOT_SUPPORTED_METHOD", "결제수단 미선택 결제창은 모의 SDK에서 지원하지 않습니다");
          }
          if (!params || typeof params !== "object") fail("INVALID_PARAMETERS");
          var windowName = windowMethod(method, params.flowMode === "DIRECT" ? params : null);
          var value = amountValue(params.amount, 1);
          checkOrder(params);
          var urls = redirectUrls(params);
          var order = {
            clientKey: clientKey, orderId: params.orderId, orderName: params.orderName,
            amount: value, method: windowName, customerName: params.customerName,
          };
          return start(order, urls, v1Result);
        });
      },
      requestBillingAuth: function (method, params) {
        return requestBillingAuth(clientKey, params && params.customerKey, method, params);
      },
    };
  }

  // ------------------------------------------------------------------ window.TossPayments

  var TossPayments;
  if (settings.version === 1) {
    TossPayments = function (clientKey) {
      return v1Instance(clientKey);
    };
  } else {
    TossPayments = function (clientKey) {
      return {
        payment: function (params) { return v2Payment(clientKey, params); },
        widgets: function (params) { return v2Widgets(clientKey, params); },
        brandpay: function () {
          fail("NOT_SUPPORTED_METHOD", "브랜드페이는 모의 SDK에서 지원하지 않습니다");
        },
      };
    };
    TossPayments.ANONYMOUS = ANONYMOUS;
  }
  TossPayments.version = settings.sdkVersion;
  TossPayments.mock = true;
  window.TossPayments = TossPayments;
})(/*MOCK_TOSS_SETTINGS*/ {});
