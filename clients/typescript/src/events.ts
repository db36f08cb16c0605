/**
 * The status stream: GET /api/payments/{transactionId}/events?streamToken=… as an `EventSource`.
 *
 * Each `status` event's data is the status answer (`StatusResponse`), its id the event's sequence.
 * The stream is closed here on 41, 50 or 95 (the server ends it there too). When the stream cannot
 * be used (a proxy that buffers it, an expired token, a network that drops it) `onFallback` says
 * so: poll the status instead (`PaymentsClient.pollUntilTerminal`), which is always the truth.
 * `followPayment` does both for you.
 */
import { isTerminal, type PaymentsClient, type StatusResponse } from "./client.js";

export type FallbackReason =
  /** No event within `firstEventTimeoutMs`: something between us buffers the stream. */
  | "no-events"
  /** The browser gave up reconnecting (an expired token, 4xx/5xx) before a terminal status. */
  | "closed"
  /** The connection failed `maxErrors` times in a row. */
  | "unreachable"
  /** This browser has no EventSource. */
  | "unsupported";

export interface PaymentEventsOptions {
  /** The API's origin, e.g. `https://pay.asyncsite.com`. */
  baseUrl: string;
  /** `streamToken` of the issue or status answer (EventSource cannot send a bearer token). */
  streamToken: string;
  /** Every status, the first one (the current state) included. */
  onStatus: (status: StatusResponse) => void;
  /** The stream cannot be used: poll the status instead. Called at most once; the stream is closed. */
  onFallback?: (reason: FallbackReason, lastStatus: StatusResponse | null) => void;
  /** Default 10 000 ms. */
  firstEventTimeoutMs?: number;
  /** Consecutive connection errors before giving up; default 3. */
  maxErrors?: number;
  /** How many times to reopen a stream the browser closed, with the freshest streamToken; default 2. */
  maxReopens?: number;
  /** Another EventSource implementation (tests, a polyfill). */
  eventSource?: typeof EventSource;
}

export interface PaymentEvents {
  /** Stop listening (idempotent). */
  close(): void;
  /** The last status received, or null. */
  readonly lastStatus: StatusResponse | null;
}

export function statusEventsUrl(
  baseUrl: string,
  transactionId: string,
  streamToken: string,
  lastEventId?: string,
): string {
  const url = new URL(`${baseUrl.replace(/\/+$/, "")}/api/payments/${encodeURIComponent(transactionId)}/events`);
  url.searchParams.set("streamToken", streamToken);
  if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
  return url.toString();
}

/** Listen to a transaction's status events until a terminal status, `close()` or a fallback. */
export function subscribeToPayment(transactionId: string, options: PaymentEventsOptions): PaymentEvents {
  const Source = options.eventSource ?? globalThis.EventSource;
  const maxErrors = options.maxErrors ?? 3;
  const maxReopens = options.maxReopens ?? 2;
  let source: EventSource | null = null;
  let lastStatus: StatusResponse | null = null;
  let lastEventId = "";
  let token = options.streamToken;
  let errors = 0;
  let reopens = 0;
  let done = false;
  let firstEventTimer: ReturnType<typeof setTimeout> | undefined;

  const finish = (fallback?: FallbackReason): void => {
    if (done) return;
    done = true;
    clearTimeout(firstEventTimer);
    source?.close();
    source = null;
    if (fallback) options.onFallback?.(fallback, lastStatus);
  };

  const open = (): void => {
    source = new Source(statusEventsUrl(options.baseUrl, transactionId, token, lastEventId));
    // Only the first connection must deliver an event soon (the current state comes at once). A
    // reopen with Last-Event-ID stays silent until something changes: that is not a failure.
    if (lastStatus === null) {
      firstEventTimer = setTimeout(() => finish("no-events"), options.firstEventTimeoutMs ?? 10_000);
    }
    source.addEventListener("status", (event: MessageEvent<string>) => {
      clearTimeout(firstEventTimer);
      errors = 0;
      const status = JSON.parse(event.data) as StatusResponse;
      lastStatus = status;
      lastEventId = event.lastEventId || lastEventId;
      if (status.streamToken) token = status.streamToken; // fresher: for a reopen
      options.onStatus(status);
      if (isTerminal(status)) finish();
    });
    source.addEventListener("error", () => {
      if (done || source === null) return;
      if (source.readyState === Source.CLOSED) {
        // The browser will not reconnect (a 204 after the end, a 401 for an expired token, …).
        if (lastStatus !== null && isTerminal(lastStatus)) return finish();
        if (reopens < maxReopens) {
          reopens += 1;
          clearTimeout(firstEventTimer);
          source.close();
          return open();
        }
        return finish("closed");
      }
      errors += 1; // CONNECTING: the browser retries by itself, after the server's `retry:`
      if (errors >= maxErrors) finish("unreachable");
    });
  };

  if (typeof Source !== "function") {
    queueMicrotask(() => finish("unsupported"));
  } else {
    open();
  }
  return {
    close: () => finish(),
    get lastStatus() {
      return lastStatus;
    },
  };
}

/**
 * The status of a checkout until it is terminal: the event stream while it works, polling
 * (`client.pollUntilTerminal`) when it does not. Resolves with the terminal status.
 */
export function followPayment(
  client: PaymentsClient,
  transactionId: string,
  options: Omit<PaymentEventsOptions, "onFallback" | "onStatus"> & {
    onStatus?: (status: StatusResponse) => void;
    signal?: AbortSignal | undefined;
  },
): Promise<StatusResponse> {
  return new Promise((resolve, reject) => {
    const onStatus = (status: StatusResponse): void => {
      options.onStatus?.(status);
      if (isTerminal(status)) resolve(status);
    };
    const events = subscribeToPayment(transactionId, {
      ...options,
      onStatus,
      onFallback: () => {
        client.pollUntilTerminal(transactionId, { onStatus, signal: options.signal }).then(resolve, reject);
      },
    });
    options.signal?.addEventListener("abort", () => {
      events.close();
      reject(options.signal?.reason);
    });
  });
}
