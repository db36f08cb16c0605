"""Every text a client reads from us, in Korean and in English, in one place.

`Accept-Language` chooses the language (`language_of`): Korean, the platform's language, unless
the client prefers English. A `Text` holds both; the HTTP layer picks one per request. Error
envelopes take their `message` from here (by code, or a more precise text of that code), the
validation reasons of `details[].reason` too, and so do the status answer's `message` and our
`failure.message`. A PG's own words never come from here: they stay in `failure.pgMessage`.

Stored failure messages are the English texts below (the database keeps one language);
`buyer_text` finds their Korean twin again when a failure is shown.

A leaf module: it imports nothing of ours, so every layer (core, gateway, http) may use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Lang = Literal["ko", "en"]
LANGUAGES: tuple[Lang, ...] = ("ko", "en")
DEFAULT_LANGUAGE: Lang = "ko"


@dataclass(frozen=True, slots=True)
class Text:
    """One text in both languages."""

    ko: str
    en: str

    def __call__(self, lang: Lang) -> str:
        return self.en if lang == "en" else self.ko

    def format(self, **params: object) -> Text:
        """Fill `{name}` placeholders; a parameter that is a Text fills each language with its own."""
        ko = {k: v.ko if isinstance(v, Text) else v for k, v in params.items()}
        en = {k: v.en if isinstance(v, Text) else v for k, v in params.items()}
        return Text(self.ko.format(**ko), self.en.format(**en))


# --- Accept-Language -----------------------------------------------------------------------------

_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
_CACHE: dict[str, Lang] = {}
_CACHE_SIZE = 1024
_CACHEABLE_LENGTH = 200  # longer headers are parsed every time, and never kept
_MAX_RANGES = 32  # language ranges read from one header


def language_of(accept_language: str | None) -> Lang:
    """The language of our texts for an `Accept-Language` header (RFC 9110 §12.5.4): the one of
    ours with the highest q-value (the first listed on a tie; `en-US` counts as `en`; `*` as any
    language not named, Korean first); Korean when the header names neither, or is absent or
    malformed. `en-US,en;q=0.9,ko;q=0.8` is English, `fr` Korean, `ko;q=0, en;q=0.1` English.

    Polls carry the same header every time: answers are remembered (bounded), so the status hot
    path pays a dictionary lookup."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    known = _CACHE.get(accept_language)
    if known is not None:
        return known
    lang = _parse_accept_language(accept_language)
    if len(accept_language) <= _CACHEABLE_LENGTH:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[accept_language] = lang
    return lang


def _parse_accept_language(header: str) -> Lang:
    named: dict[Lang, tuple[float, int]] = {}  # q, position of the first range naming it
    wildcard = 0.0
    for position, item in enumerate(header.split(",")[:_MAX_RANGES]):
        tag, *params = item.split(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else 0.0  # a malformed weight counts for nothing
        if tag == "*":
            wildcard = max(wildcard, q)
            continue
        primary = tag.split("-", 1)[0]
        for lang in LANGUAGES:
            if primary == lang:
                earlier = named.get(lang)
                named[lang] = (max(q, earlier[0]), earlier[1]) if earlier else (q, position)
    candidates = [(q, -position, lang) for lang, (q, position) in named.items() if q > 0]
    if candidates:
        return max(candidates)[2]
    if wildcard > 0:
        for lang in (DEFAULT_LANGUAGE, *LANGUAGES):
            if lang not in named:  # named with q=0: refused
                return lang
    return DEFAULT_LANGUAGE


# --- the envelope's message of each code ----------------------------------------------------------
# Keyed by code; the list of codes with their HTTP status is app.http.errors.ApiError.

ERROR_MESSAGES: Mapping[str, Text] = {
    "PAY_000": Text("요청 형식이 올바르지 않습니다.", "The request is malformed."),
    "PAY_001": Text(
        "거래가 지금 상태에서는 이 요청을 처리할 수 없습니다.",
        "The transaction is not in a state that allows this.",
    ),
    "PAY_002": Text("결제 시간이 지나 거래가 만료되었습니다.", "The transaction has expired."),
    "PAY_003": Text("결제를 확인하지 못했습니다.", "The payment could not be verified."),
    "PAY_004": Text("잔액 또는 카드 한도가 부족합니다.", "Insufficient balance or card limit."),
    "PAY_005": Text(
        "결제 대행사가 결제를 처리하지 못했습니다.", "The payment provider could not process the payment."
    ),
    "PAY_006": Text(
        "구매 항목을 지급하지 못했습니다. 환불이 진행됩니다.",
        "We could not grant your purchase; a refund is on its way.",
    ),
    "PAY_007": Text("금액이 상품 가격과 다릅니다.", "The amount differs from the product's price."),
    "PAY_008": Text("거래를 찾을 수 없습니다.", "No such transaction."),
    "PAY_009": Text(
        "이 Idempotency-Key는 다른 요청에 이미 사용되었습니다.",
        "This Idempotency-Key was used with a different request.",
    ),
    "PAY_010": Text(
        "이 Idempotency-Key로 보낸 요청을 아직 처리하고 있습니다. 잠시 뒤에 다시 시도해 주세요.",
        "A request with this Idempotency-Key is still in progress; retry later.",
    ),
    "AUTH_001": Text(
        "인증 토큰이 없거나 올바르지 않거나 만료되었습니다.", "Missing, invalid or expired bearer token."
    ),
    "AUTH_002": Text("이 요청을 수행할 권한이 없습니다.", "You are not allowed to do this."),
    "NOT_FOUND": Text("요청한 주소가 없습니다.", "There is no such endpoint."),
    "METHOD_NOT_ALLOWED": Text(
        "이 주소는 이 HTTP 메서드를 지원하지 않습니다. Allow 헤더를 확인해 주세요.",
        "This endpoint does not accept this HTTP method; the Allow header lists those it does.",
    ),
    "PAYLOAD_TOO_LARGE": Text(
        "요청 본문이 너무 큽니다. 65,535바이트 이하로 보내 주세요.",
        "The body is too large: at most 65,535 bytes.",
    ),
    "RATE_LIMITED": Text(
        "요청이 너무 많습니다. 잠시 뒤에 다시 시도해 주세요.", "Too many requests; retry later."
    ),
    "SERVICE_UNAVAILABLE": Text(
        "서비스를 잠시 사용할 수 없어 아무것도 처리하지 않았습니다. 잠시 뒤에 다시 시도해 주세요.",
        "The service is briefly unavailable; nothing was done. Retry shortly.",
    ),
    "NOT_READY": Text("의존 서비스에 연결할 수 없습니다.", "A dependency is unreachable."),
    "INTERNAL_ERROR": Text(
        "서버에서 문제가 발생했습니다. 잠시 뒤에 다시 시도해 주세요.", "Something went wrong on our side."
    ),
}

# --- PAY_000: what is wrong with a request, field by field ------------------------------------------
# `{field}` is the field as the client sent it: `amount`, `refundReceiveAccount.bank`, the
# `Idempotency-Key` header, the `cursor` query parameter, the `transactionId` path parameter.

BODY_EMPTY = Text(
    "요청 본문이 비어 있습니다. JSON 객체를 보내 주세요.", "The body is empty: it must be a JSON object."
)
BODY_NOT_JSON = Text("요청 본문이 올바른 JSON이 아닙니다.", "The body is not valid JSON.")
BODY_NOT_OBJECT = Text("요청 본문은 JSON 객체여야 합니다.", "The body must be a JSON object.")
BODY_TOO_DEEP = Text("요청 본문의 JSON 중첩이 너무 깊습니다.", "The JSON body is nested too deeply.")
CONTENT_LENGTH_INVALID = Text(
    "Content-Length 헤더 값이 올바르지 않습니다.", "The Content-Length header is not a valid length."
)

REQUIRED = Text("{field} 값이 필요합니다.", "{field} is required.")
UNKNOWN_FIELD = Text(
    "알 수 없는 필드입니다: {field}. 이 요청에 없는 필드는 보낼 수 없습니다.",
    "{field} is not a field of this request.",
)
WRONG_TYPE = Text("{field} 값은 {kind} 합니다.", "{field} must be {kind}.")
INT_POSITIVE = Text("{field} 값은 0보다 큰 정수여야 합니다.", "{field} must be an integer greater than 0.")
INT_AT_LEAST = Text("{field} 값은 {n} 이상의 정수여야 합니다.", "{field} must be an integer of at least {n}.")
INT_AT_MOST = Text("{field} 값은 {n} 이하의 정수여야 합니다.", "{field} must be an integer of at most {n}.")
STR_EMPTY = Text("{field} 값이 비어 있습니다.", "{field} must not be empty.")
STR_AT_LEAST = Text("{field} 값은 {n}자 이상이어야 합니다.", "{field} must be at least {n} characters long.")
STR_AT_MOST = Text("{field} 값은 {n}자 이하여야 합니다.", "{field} must be at most {n} characters long.")
ONE_OF = Text("{field} 값은 {values} 중 하나여야 합니다.", "{field} must be one of {values}.")
MATCHES = Text("{field} 값은 {format} 합니다.", "{field} must be {format}.")
BAD_FORMAT = Text("{field} 값의 형식이 올바르지 않습니다.", "{field} is not in the expected format.")
OUT_OF_RANGE = Text("{field} 값이 허용 범위를 벗어났습니다.", "{field} is out of range.")
INVALID = Text("{field} 값이 올바르지 않습니다.", "{field} is not valid.")
UNPRINTABLE = Text(
    "{field} 값에는 제어 문자나 보이지 않는 서식 문자를 넣을 수 없습니다.",
    "{field} must not contain control or format characters.",
)
BLANK = Text("{field} 값에 보이는 글자가 없습니다.", "{field} must not be blank.")
JSON_TOO_LARGE = Text(
    "{field} 값은 JSON으로 {n}바이트 이하여야 합니다.", "{field} must be at most {n} bytes of JSON."
)
JSON_TOO_DEEP = Text(
    "{field} 값은 {n}단계 이하로만 중첩할 수 있습니다.", "{field} must be nested at most {n} levels deep."
)

# The kinds of value WRONG_TYPE names, by msgspec's names of JSON types (Korean: with its copula).
KINDS: Mapping[str, Text] = {
    "int": Text("정수여야", "an integer"),
    "str": Text("문자열이어야", "a string"),
    "object": Text("JSON 객체여야", "a JSON object"),
    "array": Text("JSON 배열이어야", "a JSON array"),
    "bool": Text("true나 false여야", "true or false"),
    "float": Text("숫자여야", "a number"),
    "null": Text("null이어야", "null"),
}
# Formats MATCHES names, by the pattern a field must match (Korean: with its copula).
FORMATS: Mapping[str, Text] = {
    "^[0-9]{1,20}$": Text("숫자 1~20자리여야", "1 to 20 digits"),
}

# Parameters whose every refusal reads the same, by (where, name).
IDEMPOTENCY_KEY_INVALID = Text(
    "Idempotency-Key 헤더는 제어 문자 없이 1~255자여야 합니다.",
    "Idempotency-Key must be 1–255 printable characters.",
)
TRANSACTION_ID_INVALID = Text(
    "transactionId 값은 1~64자의 거래 ID여야 합니다.",
    "transactionId must be a transaction id of 1–64 characters.",
)
CURSOR_INVALID = Text(
    "cursor 값이 올바르지 않습니다. 이전 페이지가 준 nextCursor 값을 그대로 보내 주세요.",
    "cursor is not valid: send the nextCursor of the previous page as it is.",
)
LIMIT_INVALID = Text("limit 값은 1부터 100까지의 정수여야 합니다.", "limit must be an integer from 1 to 100.")
ATTEMPT_INVALID = Text(
    "attempt 값은 10,000 이하의 정수여야 합니다.", "attempt must be an integer of at most 10,000."
)
STATUS_FILTER_INVALID = Text(
    "status 값은 쉼표로 구분한 상태 이름이나 코드여야 합니다(예: PAYMENT_FAILED,41). 알 수 없는 값: '{value}'",
    "status must be status names or codes, comma-separated (e.g. PAYMENT_FAILED,41); '{value}' is neither.",
)
PARAMETER_TEXTS: Mapping[tuple[str, str], Text] = {
    ("header", "Idempotency-Key"): IDEMPOTENCY_KEY_INVALID,
    ("path", "transactionId"): TRANSACTION_ID_INVALID,
    ("query", "cursor"): CURSOR_INVALID,
    ("query", "limit"): LIMIT_INVALID,
    ("query", "attempt"): ATTEMPT_INVALID,
}

REFUND_AMOUNT_OVER_BALANCE = Text(
    "amount {amount}원이 환불 가능한 잔액 {balance}원보다 많습니다.",
    "amount {amount} exceeds the refundable balance, {balance} KRW.",
)
REFUND_ACCOUNT_REQUIRED = Text(
    "가상계좌 결제를 환불하려면 환불받을 계좌(refundReceiveAccount)가 필요합니다.",
    "refundReceiveAccount is required to refund a virtual-account payment.",
)

# Webhook deliveries the gateway cannot read (PAY_000) or believe (AUTH_001).
WEBHOOK_NOT_JSON = Text("웹훅 본문이 JSON이 아닙니다.", "The webhook body is not JSON.")
WEBHOOK_NOT_OBJECT = Text("웹훅 본문은 JSON 객체여야 합니다.", "The webhook body must be a JSON object.")
WEBHOOK_UNKNOWN_SHAPE = Text("알 수 없는 형식의 웹훅입니다.", "Unknown webhook shape.")
WEBHOOK_UNKNOWN_PROVIDER = Text(
    "이 결제 대행사의 웹훅은 받지 않습니다.", "No webhooks are read for this provider."
)
WEBHOOK_FIELD_REQUIRED = Text("{event} 웹훅에는 {field} 값이 필요합니다.", "{event} needs {field}.")
WEBHOOK_RETRY_COUNT_INVALID = Text(
    "{field} 헤더는 1~9자리 ASCII 숫자여야 합니다.", "{field} must be a count (1 to 9 ASCII digits)."
)
WEBHOOK_SIGNATURE_INVALID = Text(
    "X-Toss-Signature 헤더가 없거나 올바르지 않습니다.", "X-Toss-Signature is missing or wrong."
)
WEBHOOK_SECRET_MISMATCH = Text(
    "웹훅의 secret 값이 결제와 일치하지 않습니다.", "The webhook's secret does not match the payment."
)
WEBHOOK_SECRET_MISSING = Text(
    "DEPOSIT_CALLBACK 웹훅에는 가상계좌의 secret 값이 있어야 합니다.",
    "A DEPOSIT_CALLBACK must carry the virtual account's secret.",
)

# --- PAY_001 ------------------------------------------------------------------------------------

REFUND_NOT_PAID = Text(
    "{status} 상태의 거래는 환불할 수 없습니다. 결제가 끝난 거래만 환불할 수 있습니다.",
    "A transaction in {status} cannot be refunded; only paid ones can.",
)
REFUND_NOTHING_LEFT = Text("환불할 금액이 남아 있지 않습니다.", "Nothing is left to refund.")
REFUND_AUTOMATIC_AFTER_FAILED_GRANT = Text(
    "자동 환불은 지급에 실패한 거래에만 합니다.", "Automatic refunds follow a failed grant only."
)
REFUND_FULL_BEFORE_GRANT = Text(
    "아직 구매 항목이 지급되지 않아 지금은 전액 환불만 할 수 있습니다.",
    "The purchase is not granted yet: only a full refund is possible now.",
)
REFUND_RACED = Text(
    "환불하는 동안 거래가 바뀌어 아무것도 처리하지 않았습니다.",
    "The transaction changed while refunding; nothing was done.",
)

# --- PAY_007, PAY_008 ----------------------------------------------------------------------------

AMOUNT_DIFFERS = Text(
    "amount {amount}원이 상품 {product}의 가격 {price}원과 다릅니다.",
    "amount {amount} differs from the price of {product}, {price} KRW.",
)
PRODUCT_NOT_FOUND = Text("상품을 찾을 수 없습니다: {type} '{id}'", "No {type} product with id '{id}'.")
NO_SUCH_PRODUCT = Text("상품을 찾을 수 없습니다.", "No such product.")

# --- AUTH_001, AUTH_002 ----------------------------------------------------------------------------

TOKEN_MISSING = Text("인증 토큰이 없습니다.", "Missing bearer token.")
TOKEN_NOT_BEARER = Text(
    "Authorization 헤더는 'Bearer <토큰>' 형식이어야 합니다.",
    "The Authorization header must be 'Bearer <token>'.",
)
TOKEN_EXPIRED = Text("인증 토큰이 만료되었습니다.", "The bearer token has expired.")
TOKEN_INVALID = Text("인증 토큰이 올바르지 않습니다.", "The bearer token is invalid.")
TOKEN_NO_USER = Text("인증 토큰에 올바른 사용자가 없습니다.", "The bearer token names no valid user.")
METRICS_TOKEN_REQUIRED = Text(
    "메트릭을 보려면 메트릭 전용 토큰이 필요합니다.", "The metrics need the metrics bearer token."
)
# The status stream's streamToken (app.core.stream_tokens) and its per-user cap (RATE_LIMITED).
STREAM_TOKEN_INVALID = Text("스트림 토큰이 올바르지 않습니다.", "The streamToken is invalid.")
STREAM_TOKEN_EXPIRED = Text(
    "스트림 토큰이 만료되었습니다. 상태 응답에서 새 토큰을 받아 주세요.",
    "The streamToken has expired: take a new one from the status answer.",
)
STREAM_TOKEN_OTHER_TRANSACTION = Text(
    "이 스트림 토큰은 다른 거래의 토큰입니다.", "This streamToken is for another transaction."
)
STREAM_BEARER_IN_URL = Text(
    "인증 토큰은 URL로 받지 않습니다. Authorization 헤더로 보내거나 상태 응답의 streamToken을 사용해 주세요.",
    "A bearer token is never accepted in the URL: send it in the Authorization header, or use the "
    "streamToken of a status answer.",
)
STREAMS_PER_USER = Text(
    "상태 스트림은 사용자당 {limit}개까지 열 수 있습니다. 다른 스트림을 닫은 뒤 다시 시도해 주세요.",
    "At most {limit} open status streams per user; close one and retry.",
)

REFUND_STUDY_STARTED = Text(
    "스터디가 시작된 지 7일이 지나 더 이상 환불할 수 없습니다.",
    "The study started more than 7 days ago; it can no longer be refunded.",
)
REFUND_SHARE_TAKEN = Text(
    "환불 정책에 따른 환불액 {share}원은 이미 환불되었습니다.",
    "The policy refunds {share} KRW of this purchase, and that was refunded already.",
)
REFUND_WINDOW_PASSED = Text(
    "결제 후 {days}일 안에만 환불할 수 있습니다.", "Refunds are possible within {days} days of payment."
)
REFUND_EXACT_AMOUNT = Text(
    "이 구매는 정확히 {allowed}원만 환불할 수 있습니다.",
    "You may refund exactly {allowed} KRW of this purchase.",
)

# --- RATE_LIMITED, SERVICE_UNAVAILABLE ----------------------------------------------------------------

RATE_LIMIT_EXCEEDED = Text(
    "{action} 요청은 1분에 {limit}번까지 보낼 수 있습니다. {seconds}초 뒤에 다시 시도해 주세요.",
    "At most {limit} {action} requests per minute; retry in {seconds} s.",
)
RATE_LIMITED_ACTIONS: Mapping[str, Text] = {
    "issue": Text("결제 생성", "issue"),
    "refund": Text("환불", "refund"),
    "webhook": Text("웹훅", "webhook"),
}
DATABASE_UNAVAILABLE = Text(
    "데이터베이스에 잠시 연결할 수 없습니다. 잠시 뒤에 다시 시도해 주세요.",
    "The database is briefly unreachable. Retry shortly.",
)
IDEMPOTENCY_UNAVAILABLE = Text(
    "지금은 Idempotency-Key를 확인할 수 없어 아무것도 처리하지 않았습니다. 잠시 뒤에 다시 시도해 주세요.",
    "Idempotency-Key cannot be checked right now; nothing was done. Retry shortly.",
)

# --- for the buyer: the status answer's `message`, our `failure.message`, the fail page's `message` ----

STATUS_TEXTS: Mapping[int, Text] = {  # by status code
    10: Text("결제를 기다리고 있습니다.", "Waiting for the buyer to pay."),
    30: Text(
        "결제 대행사와 결제를 확인하고 있습니다.", "The payment is being confirmed with the payment provider."
    ),
    40: Text(
        "결제가 확인되었습니다. 구매 항목을 준비하고 있습니다.", "Payment confirmed; preparing your purchase."
    ),
    41: Text("결제에 실패했습니다.", "The payment failed."),
    45: Text(
        "결제가 확인되었습니다. 구매 항목을 지급하고 있습니다.",
        "Payment confirmed; your purchase is being granted.",
    ),
    50: Text(
        "결제가 끝났습니다. 구매 항목을 사용할 수 있습니다.", "Payment complete. Your purchase is ready."
    ),
    51: Text(
        "구매 항목을 지급하지 못했습니다. 환불이 진행됩니다.",
        "We could not grant your purchase; a refund is on its way.",
    ),
    90: Text("환불을 처리하고 있습니다.", "A refund is being processed."),
    95: Text("결제가 환불되었습니다.", "The payment was refunded."),
}
WAITING_FOR_DEPOSIT = Text(
    "가상계좌 입금을 기다리고 있습니다.", "Waiting for your deposit to the virtual account."
)

# Failures (stored in English as `failure_message`; `buyer_text` finds the Korean again).
PAYMENT_FAILED = STATUS_TEXTS[41]
PAYMENT_DECLINED = Text("결제가 거절되었습니다.", "The payment was declined.")
PAYMENT_CANCELED_IN_WINDOW = Text(
    "결제창에서 결제가 취소되었습니다.", "The payment was cancelled in the payment window."
)
INSUFFICIENT_FUNDS = ERROR_MESSAGES["PAY_004"]
PROVIDER_FAILED = ERROR_MESSAGES["PAY_005"]
SESSION_EXPIRED = Text(
    "결제가 승인되기 전에 결제 세션이 만료되었습니다.", "The payment session expired before it was confirmed."
)
PROVIDER_DOES_NOT_KNOW = Text(
    "결제 대행사에 이 결제가 없습니다.", "The payment provider does not know this payment."
)
PROVIDER_REFUSED_CONFIRM = Text(
    "결제 대행사가 결제 승인을 거부했습니다.", "The payment provider refused the confirmation."
)
PROVIDER_REFUSED_CREDENTIALS = Text(
    "결제 대행사가 가맹점 인증 정보를 거부했습니다.", "The payment provider refused our credentials."
)
PROVIDER_REFUSED_REQUEST = Text(
    "결제 대행사가 요청을 거부했습니다.", "The payment provider refused the request."
)
ALREADY_CANCELED = Text("이미 취소된 결제입니다.", "The payment was already cancelled.")
NOT_COMPLETED = Text("결제가 완료되지 않았습니다.", "The payment was not completed.")
NOT_APPROVED_BY_PROVIDER = Text(
    "결제 대행사가 결제를 승인하지 않았습니다.", "The payment was not approved by the payment provider."
)
CANCELED_AT_PROVIDER = Text(
    "결제 대행사에서 결제가 취소되었습니다.", "The payment was cancelled at the payment provider."
)
TRANSACTION_EXPIRED = ERROR_MESSAGES["PAY_002"]
VIRTUAL_ACCOUNT_EXPIRED = Text(
    "입금 기한이 지나 가상계좌가 만료되었습니다.", "The virtual account expired before the deposit."
)
NOT_VERIFIED = ERROR_MESSAGES["PAY_003"]
PG_PAYMENT_MISMATCH = Text(
    "결제 대행사의 결제 정보가 거래와 일치하지 않습니다.", "The PG's payment does not match the transaction."
)
PAID_AMOUNT_MISMATCH = Text(
    "결제된 금액이 거래 금액과 일치하지 않습니다.", "The paid amount does not match the transaction amount."
)
CALLBACK_INCOMPLETE = Text(
    "결제 콜백에 paymentKey나 orderId가 없습니다.", "The payment callback is missing paymentKey or orderId."
)
CALLBACK_KEY_INVALID = Text(
    "결제 콜백의 paymentKey가 올바르지 않습니다.", "The payment callback's paymentKey is not valid."
)
CALLBACK_NAMES_NO_TRANSACTION = Text(
    "실패 콜백에 거래가 지정되지 않았습니다.", "The failure callback names no transaction."
)
TRANSACTION_NOT_FOUND = ERROR_MESSAGES["PAY_008"]
PROVISIONING_FAILED_PREFIX = "Provisioning failed: "  # + the reason, in English (a log's words)

_BUYER_TEXTS: Mapping[str, Text] = {
    text.en: text
    for text in (
        PAYMENT_FAILED,
        PAYMENT_DECLINED,
        PAYMENT_CANCELED_IN_WINDOW,
        INSUFFICIENT_FUNDS,
        PROVIDER_FAILED,
        SESSION_EXPIRED,
        PROVIDER_DOES_NOT_KNOW,
        PROVIDER_REFUSED_CONFIRM,
        PROVIDER_REFUSED_CREDENTIALS,
        PROVIDER_REFUSED_REQUEST,
        ALREADY_CANCELED,
        NOT_COMPLETED,
        NOT_APPROVED_BY_PROVIDER,
        CANCELED_AT_PROVIDER,
        TRANSACTION_EXPIRED,
        VIRTUAL_ACCOUNT_EXPIRED,
        NOT_VERIFIED,
        PG_PAYMENT_MISMATCH,
        PAID_AMOUNT_MISMATCH,
        CALLBACK_INCOMPLETE,
        CALLBACK_KEY_INVALID,
        CALLBACK_NAMES_NO_TRANSACTION,
        TRANSACTION_NOT_FOUND,
    )
}


def buyer_text(stored: str) -> Text:
    """Our failure message as stored (its English text) in both languages. A failed grant's
    message carries its reason, a log's words: in Korean it is the PAY_006 text. Anything else
    (messages stored before they were ours) is shown as it is, in either language."""
    text = _BUYER_TEXTS.get(stored)
    if text is not None:
        return text
    if stored.startswith(PROVISIONING_FAILED_PREFIX):
        return Text(ERROR_MESSAGES["PAY_006"].ko, stored)
    return Text(stored, stored)
