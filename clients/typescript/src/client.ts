/**
 * A small typed client for the AsyncSite Payments API: issue, status, detail, list, refund.
 *
 * Every type comes from `schema.d.ts`, generated from the service's OpenAPI document
 * (`make client`), so a change of the contract is a type error here and in your code.
 */
import type { components, operations } from "./schema";

type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;

export type Schemas = components["schemas"];
export type IssueRequest = Json<operations["issuePayment"]["requestBody"]>;
export type IssueResponse = Json<operations["issuePayment"]["responses"][201]>;
export type StatusResponse = Json<operations["getPaymentStatus"]["responses"][200]>;
export type TransactionDetail = Json<operations["getPayment"]["responses"][200]>;
export type TransactionList = Json<operations["listPayments"]["responses"][200]>;
export type RefundRequest = Json<operations["refundPayment"]["requestBody"]>;
export type Transaction = Json<operations["refundPayment"]["responses"][202]>;
export type ListQuery = NonNullable<operations["listPayments"]["parameters"]["query"]>;

/** The one error envelope of the API: `{code, message, details}`. */
export type ErrorBody = Schemas["ErrorBody"];
/** Every code the API answers with (PAY_000 … PAY_010, AUTH_001, AUTH_002, RATE_LIMITED, …). */
export type ErrorCode = ErrorBody["code"];
export type StatusName = StatusResponse["status"];
export type StatusCode = StatusResponse["statusCode"];

/** The statuses after which a checkout page stops waiting: failed, granted, refunded. */
export const TERMINAL_STATUS_CODES: readonly StatusCode[] = [41, 50, 95];

export function isTerminal(status: Pick<StatusResponse, "statusCode">): boolean {
  return TERMINAL_STATUS_CODES.includes(status.statusCode);
}

/**
 * An answer that was not a success. `code` is the envelope's (`UNEXPECTED_RESPONSE` when the
 * answer was not our envelope at all: a proxy's error page, a network failure), `status` the HTTP
 * status (0 without an answer), `retryAfterSeconds` the `Retry-After` of a 429 or 503.
 */
export class PaymentsApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode | "UNEXPECTED_RESPONSE";
  readonly details: unknown;
  readonly retryAfterSeconds: number | null;

  constructor(
    status: number,
    body: ErrorBody | null,
    retryAfterSeconds: number | null,
    fallbackMessage = "Unexpected response",
  ) {
    super(body?.message ?? fallbackMessage);
    this.name = "PaymentsApiError";
    this.status = status;
    this.code = body?.code ?? "UNEXPECTED_RESPONSE";
    this.details = body?.details ?? null;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** Worth retrying later (with the same Idempotency-Key for issue and refund). */
  get retryable(): boolean {
    return this.status === 0 || this.code === "RATE_LIMITED" || this.code === "SERVICE_UNAVAILABLE";
  }
}

export interface PaymentsClientOptions {
  /** The API's origin, e.g. `https://pay.asyncsite.com` (no trailing slash needed). */
  baseUrl: string;
  /** The bearer token (a JWT), or a function that returns the current one. */
  token: string | (() => string | Promise<string>);
  /** `en` for English messages; Korean otherwise (the API's default). */
  language?: "ko" | "en";
  /** Another fetch (tests, Node < 18). */
  fetch?: typeof fetch;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

export interface IdempotentCallOptions extends CallOptions {
  /**
   * Sent as `Idempotency-Key`. One per user action: retry a failed or timed-out call with the
   * same key and the API answers the first result again (never twice the work). A new key is made
   * when none is given.
   */
  idempotencyKey?: string | undefined;
}

export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

export class PaymentsClient {
  readonly #baseUrl: string;
  readonly #token: PaymentsClientOptions["token"];
  readonly #language: "ko" | "en" | undefined;
  readonly #fetch: typeof fetch;

  constructor(options: PaymentsClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#language = options.language;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** POST /api/payments/issue: a CREATED transaction priced by the catalog (201). */
  issue(body: IssueRequest, options: IdempotentCallOptions = {}): Promise<IssueResponse> {
    return this.#call("POST", "/api/payments/issue", {
      body,
      idempotencyKey: options.idempotencyKey ?? newIdempotencyKey(),
      signal: options.signal,
    });
  }

  /**
   * GET /api/payments/{transactionId}/status: the polling endpoint. Pass `attempt` (how many polls
   * you made before this one) and wait `retryAfterMs` before the next; see `pollUntilTerminal`.
   */
  status(transactionId: string, options: CallOptions & { attempt?: number | undefined } = {}): Promise<StatusResponse> {
    const query = options.attempt === undefined ? undefined : { attempt: String(options.attempt) };
    return this.#call("GET", `/api/payments/${encodeURIComponent(transactionId)}/status`, {
      query,
      signal: options.signal,
    });
  }

  /** GET /api/payments/{transactionId}: the transaction with its history and refunds. */
  detail(transactionId: string, options: CallOptions = {}): Promise<TransactionDetail> {
    return this.#call("GET", `/api/payments/${encodeURIComponent(transactionId)}`, { signal: options.signal });
  }

  /** GET /api/payments: the caller's transactions, newest first; follow `nextCursor`. */
  list(
    query: { status?: StatusName[] | string; cursor?: string; limit?: number } = {},
    options: CallOptions = {},
  ): Promise<TransactionList> {
    const params: Record<string, string> = {};
    if (query.status !== undefined) {
      params.status = Array.isArray(query.status) ? query.status.join(",") : query.status;
    }
    if (query.cursor !== undefined) params.cursor = query.cursor;
    if (query.limit !== undefined) params.limit = String(query.limit);
    return this.#call("GET", "/api/payments", { query: params, signal: options.signal });
  }

  /** POST /api/payments/{transactionId}/refund: 202 with status 90; poll for 95. */
  refund(transactionId: string, body: RefundRequest, options: IdempotentCallOptions = {}): Promise<Transaction> {
    return this.#call("POST", `/api/payments/${encodeURIComponent(transactionId)}/refund`, {
      body,
      idempotencyKey: options.idempotencyKey ?? newIdempotencyKey(),
      signal: options.signal,
    });
  }

  /**
   * Poll the status on the API's schedule (0 → 1 → 2 → 3 → 5 s, `retryAfterMs`) until 41, 50 or
   * 95, calling `onStatus` with every answer; resolves with the terminal one. A transaction whose
   * outcome is known (40, 45) is polled on the same schedule until it is granted.
   */
  async pollUntilTerminal(
    transactionId: string,
    options: CallOptions & { onStatus?: (status: StatusResponse) => void; maxPolls?: number } = {},
  ): Promise<StatusResponse> {
    const maxPolls = options.maxPolls ?? 200;
    for (let attempt = 0; ; attempt += 1) {
      const status = await this.status(transactionId, { attempt, signal: options.signal });
      options.onStatus?.(status);
      if (isTerminal(status) || attempt + 1 >= maxPolls) return status;
      await sleep(status.retryAfterMs ?? SCHEDULE_MS[Math.min(attempt + 1, SCHEDULE_MS.length - 1)] ?? 5000, options.signal);
    }
  }

  async #call<T>(
    method: "GET" | "POST",
    path: string,
    request: {
      body?: unknown;
      query?: Record<string, string> | undefined;
      idempotencyKey?: string;
      signal?: AbortSignal | undefined;
    },
  ): Promise<T> {
    const url = new URL(this.#baseUrl + path);
    for (const [name, value] of Object.entries(request.query ?? {})) url.searchParams.set(name, value);
    const token = typeof this.#token === "function" ? await this.#token() : this.#token;
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    if (this.#language) headers["Accept-Language"] = this.#language;
    if (request.idempotencyKey !== undefined) headers["Idempotency-Key"] = request.idempotencyKey;
    const init: RequestInit = { method, headers };
    if (request.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(request.body);
    }
    if (request.signal) init.signal = request.signal;
    let response: Response;
    try {
      response = await this.#fetch(url, init);
    } catch (error) {
      if (request.signal?.aborted) throw error;
      throw new PaymentsApiError(0, null, null, error instanceof Error ? error.message : String(error));
    }
    const text = await response.text();
    if (response.ok) return JSON.parse(text) as T;
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    throw new PaymentsApiError(
      response.status,
      parseEnvelope(text),
      Number.isFinite(retryAfter) ? retryAfter : null,
      `HTTP ${response.status}`,
    );
  }
}

/** The schedule the API's retryAfterMs follows, for when it gave none. */
const SCHEDULE_MS = [0, 1000, 2000, 3000, 5000] as const;

function parseEnvelope(text: string): ErrorBody | null {
  try {
    const body: unknown = JSON.parse(text);
    if (body && typeof body === "object" && "code" in body && "message" in body) return body as ErrorBody;
  } catch {
    // not JSON: a proxy's page
  }
  return null;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
