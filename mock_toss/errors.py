"""Toss error codes: code → (HTTP status, Korean message, English message), and the error type.

Messages follow docs.tosspayments.com/reference/error-codes; English ones are the docs' English
page where it exists, otherwise a plain translation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Language = Literal["ko", "en"]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How Toss answers one error code."""

    status: int
    message_ko: str
    message_en: str

    def message(self, language: Language) -> str:
        """The message in the caller's language."""
        return self.message_en if language == "en" else self.message_ko


_TEMPORARY_KO = "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요."
_TEMPORARY_EN = "A temporary error occurred. Please try again later."
_INTERNAL_KO = "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요."
_INTERNAL_EN = "Internal system processing failed. Please try again later."

ERRORS: dict[str, ErrorSpec] = {
    # Authentication and request format.
    "UNAUTHORIZED_KEY": ErrorSpec(
        401,
        "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
        "This is an unauthenticated secret key or client key.",
    ),
    "INCORRECT_BASIC_AUTH_FORMAT": ErrorSpec(
        403,
        "잘못된 요청입니다. ':' 를 포함해 인코딩해주세요.",
        "Invalid request. Encode the key including ':'.",
    ),
    "INVALID_API_KEY": ErrorSpec(
        400, "잘못된 시크릿키 연동 정보 입니다.", "Invalid secret key integration information."
    ),
    "INVALID_REQUEST": ErrorSpec(400, "잘못된 요청입니다.", "Invalid request."),
    "INVALID_REQUIRED_PARAM": ErrorSpec(
        400, "필수 파라미터가 누락되었습니다.", "A required parameter is missing."
    ),
    "INVALID_TEST_CODE": ErrorSpec(400, "유효하지 않은 테스트 코드입니다.", "The test code is not valid."),
    "API_VERSION_UPDATE_NEEDED": ErrorSpec(
        400, "API 버전 업데이트가 필요합니다.", "The API version needs to be updated."
    ),
    "FORBIDDEN_REQUEST": ErrorSpec(403, "허용되지 않은 요청입니다.", "This request is not allowed."),
    "FORBIDDEN_CONSECUTIVE_REQUEST": ErrorSpec(
        403,
        "반복적인 요청은 허용되지 않습니다. 잠시 후 다시 시도해주세요.",
        "Repeated requests are not allowed. Please try again later.",
    ),
    "NOT_FOUND": ErrorSpec(404, "존재하지 않는 정보 입니다.", "The requested information does not exist."),
    "NOT_FOUND_HTTP_METHOD": ErrorSpec(
        404, "존재하지 않는 HTTP 메소드 접근입니다.", "This HTTP method is not allowed on this path."
    ),
    # Idempotency.
    "INVALID_IDEMPOTENCY_KEY": ErrorSpec(
        400, "멱등키는 300자 이하여야 합니다.", "The idempotency key must be 300 characters or fewer."
    ),
    "IDEMPOTENT_REQUEST_PROCESSING": ErrorSpec(
        409, "이전 멱등 요청이 처리중입니다.", "The previous idempotent request is still being processed."
    ),
    "DUPLICATED_REQUEST": ErrorSpec(400, "중복된 요청입니다.", "This is a duplicated request."),
    # Payment lookup and confirm.
    "NOT_FOUND_PAYMENT": ErrorSpec(404, "존재하지 않는 결제 정보 입니다.", "The payment does not exist."),
    "NOT_FOUND_PAYMENT_SESSION": ErrorSpec(
        404,
        "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다.",
        "Payment session does not exist because the session time has expired.",
    ),
    "ALREADY_PROCESSED_PAYMENT": ErrorSpec(
        400, "이미 처리된 결제 입니다.", "The payment has already been processed."
    ),
    "PROVIDER_ERROR": ErrorSpec(400, _TEMPORARY_KO, _TEMPORARY_EN),
    "EXCEED_MAX_CARD_INSTALLMENT_PLAN": ErrorSpec(
        400,
        "설정 가능한 최대 할부 개월 수를 초과했습니다.",
        "The maximum number of installment months was exceeded.",
    ),
    "NOT_ALLOWED_POINT_USE": ErrorSpec(
        400,
        "포인트 사용이 불가한 카드로 카드 포인트 결제에 실패했습니다.",
        "Card point payment failed: this card cannot use points.",
    ),
    "INVALID_REJECT_CARD": ErrorSpec(
        400,
        "카드 사용이 거절되었습니다. 카드사 문의가 필요합니다.",
        "The card was refused. Please contact the card company.",
    ),
    "BELOW_MINIMUM_AMOUNT": ErrorSpec(
        400,
        "신용카드는 결제금액이 100원 이상, 계좌는 200원이상부터 결제가 가능합니다.",
        "Card payments need at least 100 KRW and account payments at least 200 KRW.",
    ),
    "BELOW_ZERO_AMOUNT": ErrorSpec(400, "금액은 0보다 커야 합니다.", "The amount must be greater than 0."),
    "REQUIRED_AMOUNT": ErrorSpec(400, "금액은 필수 입력값입니다.", "The amount is required."),
    "INVALID_CARD_EXPIRATION": ErrorSpec(
        400,
        "카드 정보를 다시 확인해주세요. (유효기간)",
        "Please check the card information. (expiration date)",
    ),
    "INVALID_STOPPED_CARD": ErrorSpec(400, "정지된 카드 입니다.", "The card has been suspended."),
    "EXCEED_MAX_DAILY_PAYMENT_COUNT": ErrorSpec(
        400, "하루 결제 가능 횟수를 초과했습니다.", "The daily payment count limit was exceeded."
    ),
    "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT": ErrorSpec(
        400,
        "할부가 지원되지 않는 카드 또는 가맹점 입니다.",
        "This card or merchant does not support installments.",
    ),
    "INVALID_CARD_INSTALLMENT_PLAN": ErrorSpec(
        400, "할부 개월 정보가 잘못되었습니다.", "The installment plan is invalid."
    ),
    "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN": ErrorSpec(
        400, "할부가 지원되지 않는 카드입니다.", "This card does not support installments."
    ),
    "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN_BELOW_AMOUNT": ErrorSpec(
        400,
        "할부가 지원되지 않는 금액입니다.",
        "Installments are not supported below this amount.",
    ),
    "EXCEED_MAX_PAYMENT_AMOUNT": ErrorSpec(
        400, "하루 결제 가능 금액을 초과했습니다.", "The daily payment amount limit was exceeded."
    ),
    "NOT_FOUND_TERMINAL_ID": ErrorSpec(
        400,
        "단말기번호(Terminal Id)가 없습니다. 토스페이먼츠로 문의 바랍니다.",
        "There is no terminal ID. Please contact Toss Payments.",
    ),
    "INVALID_AUTHORIZE_AUTH": ErrorSpec(
        400, "유효하지 않은 인증 방식입니다.", "The authentication method is invalid."
    ),
    "INVALID_CARD_LOST_OR_STOLEN": ErrorSpec(
        400, "분실 혹은 도난 카드입니다.", "The card was reported lost or stolen."
    ),
    "RESTRICTED_TRANSFER_ACCOUNT": ErrorSpec(
        400,
        "계좌는 등록 후 12시간 뒤부터 결제할 수 있습니다. 관련 정책은 해당 은행으로 문의해주세요.",
        "An account can be used 12 hours after registration. Please contact the bank.",
    ),
    "INVALID_CARD_NUMBER": ErrorSpec(400, "카드번호를 다시 확인해주세요.", "Please check the card number."),
    "INVALID_UNREGISTERED_SUBMALL": ErrorSpec(
        400,
        "등록되지 않은 서브몰입니다. 서브몰이 없는 가맹점이라면 안내받은 서브몰 ID를 확인해주세요.",
        "The sub-mall is not registered.",
    ),
    "NOT_REGISTERED_BUSINESS": ErrorSpec(
        400, "등록되지 않은 사업자 번호입니다.", "The business registration number is not registered."
    ),
    "EXCEED_MAX_ONE_DAY_WITHDRAW_AMOUNT": ErrorSpec(
        400, "1일 출금 한도를 초과했습니다.", "The daily withdrawal limit was exceeded."
    ),
    "EXCEED_MAX_ONE_TIME_WITHDRAW_AMOUNT": ErrorSpec(
        400, "1회 출금 한도를 초과했습니다.", "The one-time withdrawal limit was exceeded."
    ),
    "CARD_PROCESSING_ERROR": ErrorSpec(
        400, "카드사에서 오류가 발생했습니다.", "The card company reported an error."
    ),
    "EXCEED_MAX_AMOUNT": ErrorSpec(
        400, "거래금액 한도를 초과했습니다.", "The transaction amount limit was exceeded."
    ),
    "INVALID_ACCOUNT_INFO_RE_REGISTER": ErrorSpec(
        400,
        "유효하지 않은 계좌입니다. 계좌 재등록 후 시도해주세요.",
        "The account is not valid. Please register the account again.",
    ),
    "NOT_AVAILABLE_PAYMENT": ErrorSpec(
        400, "결제가 불가능한 시간대입니다", "Payments are not available at this time."
    ),
    "UNAPPROVED_ORDER_ID": ErrorSpec(
        400, "아직 승인되지 않은 주문번호입니다.", "The order has not been approved yet."
    ),
    "EXCEED_MAX_MONTHLY_PAYMENT_AMOUNT": ErrorSpec(
        400,
        "당월 결제 가능금액인 1,000,000원을 초과 하셨습니다.",
        "The monthly payment limit of 1,000,000 KRW was exceeded.",
    ),
    "REJECT_ACCOUNT_PAYMENT": ErrorSpec(
        403, "잔액부족으로 결제에 실패했습니다.", "The payment failed due to insufficient balance."
    ),
    "REJECT_CARD_PAYMENT": ErrorSpec(
        403,
        "한도초과 혹은 잔액부족으로 결제에 실패했습니다.",
        "The payment failed because of the limit or insufficient balance.",
    ),
    "REJECT_CARD_COMPANY": ErrorSpec(
        403, "결제 승인이 거절되었습니다.", "The payment approval was rejected."
    ),
    "REJECT_TOSSPAY_INVALID_ACCOUNT": ErrorSpec(
        403,
        "선택하신 출금 계좌가 출금이체 등록이 되어 있지 않아요. 계좌를 다시 등록해 주세요.",
        "The selected withdrawal account is not registered for transfers.",
    ),
    "EXCEED_MAX_AUTH_COUNT": ErrorSpec(
        403,
        "최대 인증 횟수를 초과했습니다. 카드사로 문의해주세요.",
        "The maximum number of authentications was exceeded. Please contact the card company.",
    ),
    "EXCEED_MAX_ONE_DAY_AMOUNT": ErrorSpec(403, "일일 한도를 초과했습니다.", "The daily limit was exceeded."),
    "NOT_AVAILABLE_BANK": ErrorSpec(
        403, "은행 서비스 시간이 아닙니다.", "The bank service is not available now."
    ),
    "INVALID_PASSWORD": ErrorSpec(
        403, "결제 비밀번호가 일치하지 않습니다.", "The payment password does not match."
    ),
    "FDS_ERROR": ErrorSpec(
        403,
        "[토스페이먼츠] 위험거래가 감지되어 결제가 제한됩니다. 발송된 문자에 포함된 링크를 통해 본인인증 후 결제가 가능합니다.",
        "[Toss Payments] A risky transaction was detected and the payment is restricted.",
    ),
    "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": ErrorSpec(
        500,
        "결제가 완료되지 않았어요. 다시 시도해주세요.",
        "The payment was not completed. Please try again.",
    ),
    "FAILED_INTERNAL_SYSTEM_PROCESSING": ErrorSpec(500, _INTERNAL_KO, _INTERNAL_EN),
    "UNKNOWN_PAYMENT_ERROR": ErrorSpec(
        500,
        "결제에 실패했어요. 같은 문제가 반복된다면 은행이나 카드사로 문의해주세요.",
        "The payment failed. If it happens again, contact the bank or card company.",
    ),
    "FAILED_CARD_COMPANY_RESPONSE": ErrorSpec(
        500,
        "카드사에서 에러가 발생했습니다. 잠시 후 다시 시도해 주세요.",
        "The card company returned an error.",
    ),
    "FAILED_DB_PROCESSING": ErrorSpec(
        500, "잘못된 요청 값으로 처리 중 DB 에러가 발생했습니다.", "A database error occurred."
    ),
    "COMMON_ERROR": ErrorSpec(500, _TEMPORARY_KO, _TEMPORARY_EN),
    "UNKNOWN_ERROR": ErrorSpec(
        500,
        "확인되지 않은 오류입니다. 잠시 후 다시 시도해주세요.",
        "An unknown error occurred. Please try again later.",
    ),
    # Order and payment-window input.
    "DUPLICATED_ORDER_ID": ErrorSpec(
        400,
        "이미 승인 및 취소가 진행된 중복된 주문번호 입니다. 다른 주문번호로 진행해주세요.",
        "This order ID was already approved or canceled. Please use a different order ID.",
    ),
    "INVALID_ORDER_ID": ErrorSpec(
        400,
        "orderId는 영문 대소문자, 숫자, 특수문자(-, _)만 허용합니다. 6자 이상 64자 이하여야 합니다.",
        "orderId allows only letters, digits, '-' and '_', 6 to 64 characters.",
    ),
    "INVALID_ORDER_NAME": ErrorSpec(
        400,
        "주문명은 100자 이하여야 합니다.",
        "The order name is required and must be 100 characters or fewer.",
    ),
    "INVALID_PAYMENT_KEY": ErrorSpec(400, "잘못된 paymentKey 입니다.", "The paymentKey is invalid."),
    "INVALID_CURRENCY": ErrorSpec(400, "잘못된 통화 값입니다.", "The currency is invalid."),
    "INVALID_DATE": ErrorSpec(400, "날짜 데이터가 잘못 되었습니다.", "The date is invalid."),
    # Transactions: an unknown `startingAfter` cursor (message as observed from Toss).
    "INVALID_TRANSACTION_KEY": ErrorSpec(400, "잘못된 페이징 키 입니다.", "The paging key is invalid."),
    "INVALID_ISO_DATE_FORMAT": ErrorSpec(
        400, "ISO 8601 형식의 날짜가 아닙니다.", "The date is not in ISO 8601 format."
    ),
    "NOT_SUPPORTED_METHOD": ErrorSpec(
        400, "지원되지 않는 결제수단입니다.", "This payment method is not supported."
    ),
    "MAINTAINED_METHOD": ErrorSpec(
        400, "결제수단이 점검중입니다.", "The payment method is under maintenance."
    ),
    "INVALID_CLIENT_KEY": ErrorSpec(
        400, "잘못된 클라이언트 키 입니다.", "The client key is invalid or not a test client key."
    ),
    "INCORRECT_SUCCESS_URL_FORMAT": ErrorSpec(
        400,
        "successUrl은 http:// 또는 https:// 로 시작하는 절대 경로여야 합니다.",
        "successUrl must be an absolute URL starting with http:// or https://.",
    ),
    "INCORRECT_FAIL_URL_FORMAT": ErrorSpec(
        400,
        "failUrl은 http:// 또는 https:// 로 시작하는 절대 경로여야 합니다.",
        "failUrl must be an absolute URL starting with http:// or https://.",
    ),
    "PAY_PROCESS_CANCELED": ErrorSpec(
        400, "사용자에 의해 결제가 취소되었습니다.", "The payment was canceled by the user."
    ),
    "PAY_PROCESS_ABORTED": ErrorSpec(
        400,
        "결제 진행 중 승인에 실패하여 결제가 중단되었습니다.",
        "The payment was aborted because approval failed during the process.",
    ),
    "NOT_FOUND_MERCHANT": ErrorSpec(404, "존재하지 않는 가맹점 정보 입니다.", "The merchant does not exist."),
    "NOT_FOUND_METHOD": ErrorSpec(
        404, "존재하지 않는 결제수단 입니다.", "The payment method does not exist."
    ),
    "NOT_FOUND_BILLING": ErrorSpec(
        404,
        "존재하지 않는 빌링 결제 인증 정보 입니다.",
        "The billing payment authentication information does not exist.",
    ),
    # Virtual accounts.
    "INVALID_BANK": ErrorSpec(400, "유효하지 않은 은행입니다.", "The bank is not valid."),
    "INVALID_REGISTRATION_NUMBER_TYPE": ErrorSpec(
        400, "유효하지 않은 등록 번호 타입입니다.", "The registration number type is invalid."
    ),
    "EXCEED_MAX_DUE_DATE": ErrorSpec(
        400,
        "가상 계좌의 최대 유효만료 기간을 초과했습니다.",
        "The maximum due date of the virtual account was exceeded.",
    ),
    "EXCEED_MAX_VALID_HOURS": ErrorSpec(
        400,
        "가상 계좌의 최대 유효시간을 초과했습니다.",
        "The maximum valid hours of the virtual account were exceeded.",
    ),
    "INVALID_VALID_HOURS_WITH_DUE_DATE_AND_SINGLE": ErrorSpec(
        400,
        "validHours와 dueDate 중 하나만 입력해야 합니다.",
        "Only one of validHours and dueDate can be given.",
    ),
    # Cancel.
    "ALREADY_CANCELED_PAYMENT": ErrorSpec(
        400, "이미 취소된 결제 입니다.", "The payment has already been canceled."
    ),
    "INVALID_REFUND_ACCOUNT_INFO": ErrorSpec(
        400,
        "환불 계좌번호와 예금주명이 일치하지 않습니다.",
        "The refund account number and the account holder's name do not match.",
    ),
    "EXCEED_CANCEL_AMOUNT_DISCOUNT_AMOUNT": ErrorSpec(
        400,
        "즉시할인금액보다 적은 금액은 부분취소가 불가능합니다.",
        "A partial cancel below the instant discount amount is not possible.",
    ),
    "INVALID_REFUND_ACCOUNT_NUMBER": ErrorSpec(
        400, "잘못된 환불 계좌번호입니다.", "The refund account number is invalid."
    ),
    "NOT_MATCHES_REFUNDABLE_AMOUNT": ErrorSpec(
        400, "잔액 결과가 일치하지 않습니다.", "The refundable amount does not match the balance."
    ),
    "REFUND_REJECTED": ErrorSpec(
        400,
        "환불이 거절됐습니다. 결제사에 문의 부탁드립니다.",
        "The refund was rejected. Please contact the provider.",
    ),
    "ALREADY_REFUND_PAYMENT": ErrorSpec(
        400, "이미 환불된 결제입니다.", "The payment has already been refunded."
    ),
    "FORBIDDEN_BANK_REFUND_REQUEST": ErrorSpec(
        400, "고객 계좌가 입금이 되지 않는 상태입니다.", "The customer's account cannot receive deposits."
    ),
    "NOT_CANCELABLE_AMOUNT": ErrorSpec(
        403, "취소 할 수 없는 금액 입니다.", "This amount cannot be canceled."
    ),
    "NOT_CANCELABLE_PAYMENT": ErrorSpec(
        403, "취소 할 수 없는 결제 입니다.", "This payment cannot be canceled."
    ),
    "EXCEED_MAX_REFUND_DUE": ErrorSpec(
        403, "환불 가능한 기간이 지났습니다.", "The refund period has passed."
    ),
    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT": ErrorSpec(
        403,
        "입금 대기중인 결제는 부분 환불이 불가합니다.",
        "A payment waiting for its deposit cannot be partially refunded.",
    ),
    "NOT_ALLOWED_PARTIAL_REFUND": ErrorSpec(
        403,
        "에스크로 주문, 현금 카드 결제일 때는 부분 환불이 불가합니다. 이외 다른 결제 수단에서 부분 취소가 되지 않을 때는 토스페이먼츠에 문의해 주세요.",
        "Partial refunds are not possible for escrow orders or cash-card payments.",
    ),
    "NOT_CANCELABLE_PAYMENT_FOR_DORMANT_USER": ErrorSpec(
        403, "휴면 처리된 회원의 결제는 취소할 수 없습니다.", "Payments of dormant users cannot be canceled."
    ),
    "EXCEED_CANCEL_LIMIT": ErrorSpec(
        403, "취소 한도 금액을 초과 하였습니다.", "The cancel limit was exceeded."
    ),
    "FAILED_REFUND_PROCESS": ErrorSpec(
        500, "은행 응답시간 지연이나 일시적인 오류로 환불요청에 실패했습니다.", "The refund request failed."
    ),
    "FAILED_METHOD_HANDLING_CANCEL": ErrorSpec(
        500,
        "취소 중 결제 시 사용한 결제 수단 처리과정에서 일시적인 오류가 발생했습니다.",
        "Canceling the method failed.",
    ),
    "FAILED_PARTIAL_REFUND": ErrorSpec(
        500, "은행 점검, 해약 계좌 등의 사유로 부분 환불이 실패했습니다.", "The partial refund failed."
    ),
    # Key-in payments (card checks Toss runs in its payment window too).
    "INVALID_CARD_PASSWORD": ErrorSpec(
        400, "카드 정보를 다시 확인해주세요. (비밀번호)", "Please check the card password."
    ),
    "INVALID_CARD_IDENTITY": ErrorSpec(
        400,
        "입력하신 주민번호/사업자번호가 카드 소유주 정보와 일치하지 않습니다.",
        "The identity does not match the card owner.",
    ),
    "INVALID_BIRTH_DAY_FORMAT": ErrorSpec(
        400,
        "생년월일 정보는 6자리의 yyMMdd 형식이어야 합니다. 사업자등록번호는 10자리의 숫자여야 합니다.",
        "The birth date must be 6 digits (yyMMdd), a business number 10 digits.",
    ),
    "NOT_SUPPORTED_CARD_TYPE": ErrorSpec(
        400, "지원되지 않는 카드 종류입니다.", "This card type is not supported."
    ),
    "INVALID_EMAIL": ErrorSpec(
        400, "이메일 주소 형식에 맞지 않습니다.", "The email address is not in a valid format."
    ),
    # Billing (automatic payments).
    "INVALID_CUSTOMER_KEY": ErrorSpec(
        400,
        "customerKey는 영문 대소문자, 숫자, 특수문자 -, _, =, ., @로 2자 이상 300자 이하여야 합니다.",
        "customerKey must be 2 to 300 letters, digits or the characters - _ = . , @.",
    ),
    "INVALID_BILL_KEY_REQUEST": ErrorSpec(
        400,
        "빌링키 인증이 완료되지 않았거나 유효하지 않은 빌링 거래 건입니다.",
        "Billing key authentication has not been completed or is an invalid billing transaction.",
    ),
    "NOT_MATCHES_CUSTOMER_KEY": ErrorSpec(
        400,
        "빌링 인증 고객키와 결제 요청 고객키가 일치하지 않습니다.",
        "The billing authentication customer key and the payment request customer key do not match.",
    ),
    "BILLING_KEY_NOT_FOUND": ErrorSpec(400, "빌링키가 존재하지 않습니다.", "The billing key does not exist."),
    # Cash receipts.
    "DUPLICATED_CASH_RECEIPT": ErrorSpec(
        400, "이미 현금영수증이 발급된 주문입니다.", "A cash receipt was already issued for this order."
    ),
    "INVALID_CASH_RECEIPT_INFO": ErrorSpec(
        400, "현금 영수증 정보가 잘못되었습니다.", "Cash receipt information is incorrect."
    ),
    "EXCEED_MAX_QUERY_LIMIT": ErrorSpec(
        400, "최대 조회 개수를 초과했습니다.", "The maximum number of records per query was exceeded."
    ),
    "INVALID_PAGING_KEY": ErrorSpec(400, "잘못된 페이징 키 입니다.", "The paging key is invalid."),
    # Only ever a Payment.failure code (observed on EXPIRED payments), never an API answer.
    "EXPIRED_PAYMENT": ErrorSpec(
        400, "결제가 만료되었습니다. 다시 시도해주세요.", "The payment has expired. Please try again."
    ),
    # The mock's own test controls (not Toss codes).
    "EXPIRED_VIRTUAL_ACCOUNT": ErrorSpec(
        400, "입금 기한이 지난 가상계좌입니다.", "The virtual account's due date has passed."
    ),
    "NOT_WAITING_FOR_DEPOSIT": ErrorSpec(
        400,
        "입금 대기중인 가상계좌 결제가 아닙니다.",
        "The payment is not a virtual account waiting for its deposit.",
    ),
}

# Codes that are not Toss API answers, so TossPayments-Test-Code refuses them.
NOT_TEST_CODES = frozenset({"EXPIRED_PAYMENT", "EXPIRED_VIRTUAL_ACCOUNT", "NOT_WAITING_FOR_DEPOSIT"})


class TossError(Exception):
    """An error answered with Toss's `{code, message}` body and the code's HTTP status."""

    def __init__(self, code: str, message_ko: str | None = None, message_en: str | None = None) -> None:
        if code not in ERRORS:
            raise KeyError(f"unknown Toss error code {code}")
        super().__init__(code)
        self.code = code
        self.spec = ERRORS[code]
        self._message_ko = message_ko
        self._message_en = message_en

    @property
    def status(self) -> int:
        """The HTTP status Toss uses for this code."""
        return self.spec.status

    def message(self, language: Language) -> str:
        """The message in the caller's language (a specific detail when one was given)."""
        if language == "en":
            return self._message_en or self._message_ko or self.spec.message_en
        return self._message_ko or self.spec.message_ko

    def body(self, language: Language) -> dict[str, str]:
        """Toss's error body."""
        return {"code": self.code, "message": self.message(language)}


def error_message(code: str, language: Language) -> str:
    """The table's message for a code (Korean by default)."""
    return ERRORS[code].message(language)


def language_of(accept_language: str | None) -> Language:
    """English when the caller asks for it (`Accept-Language: en-US`), Korean otherwise."""
    if accept_language and accept_language.strip().lower().startswith("en"):
        return "en"
    return "ko"
