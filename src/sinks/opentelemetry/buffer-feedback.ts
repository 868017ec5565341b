/**
 * What the collector's responses tell the delivery queue, read where the OpenTelemetry export
 * delegate would otherwise swallow it:
 *
 * - `Retry-After` on a 429/503 (seconds or an HTTP-date). The delegate's transport honours it for
 *   its own few quick retries (up to 5, within `request.timeout_secs`) and then reports a plain
 *   failure without the header; `observeRetryAfter` sees every HTTP response on the transport's
 *   agent, so our own retry loop (`Delivery.holdUntil`) waits as told too.
 * - OTLP partial success (`rejected_log_records`, `error_message`) in a 2xx body: the delegate
 *   only writes it to the OTel diag log; `partialSuccessOf` reads it from the decoded response.
 */
import type { Agent, ClientRequest, IncomingMessage } from 'node:http';

/** Agent factory as the OTel node-http options carry it. */
export type AgentFactory = (protocol: string) => Agent | Promise<Agent>;

/** Statuses whose Retry-After is honoured: too many requests, unavailable. */
export const RETRY_AFTER_STATUSES: readonly number[] = [429, 503];

/** A Retry-After longer than this is capped (a misbehaving collector must not park us for days). */
export const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/**
 * Milliseconds to wait from `nowMs` for a `Retry-After` value: delay-seconds (`"120"`) or an
 * HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`). Undefined when absent or unreadable; a date in
 * the past gives 0. Capped at `MAX_RETRY_AFTER_MS`.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Math.min(MAX_RETRY_AFTER_MS, Number(text) * 1000);
  if (!/[a-z]/i.test(text)) return undefined; // an HTTP-date names its day and month
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - nowMs));
}

/**
 * Wraps an agent factory so that every response on its agents is looked at: a 429/503 with a
 * readable Retry-After calls `onRetryAfter(status, ms)`. Works whatever options (TLS, keep-alive)
 * the agents were made with; the requests themselves are untouched.
 */
export function observeRetryAfter(
  factory: AgentFactory,
  onRetryAfter: (status: number, delayMs: number) => void,
): AgentFactory {
  const hooked = new WeakSet<Agent>();
  return async (protocol) => {
    const agent = await factory(protocol);
    if (hooked.has(agent)) return agent;
    hooked.add(agent);
    // addRequest is how http.request hands every ClientRequest to its agent.
    const target = agent as unknown as { addRequest: (req: ClientRequest, options: unknown) => void };
    const addRequest = target.addRequest.bind(agent);
    target.addRequest = (req, options) => {
      req.once('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (!RETRY_AFTER_STATUSES.includes(status)) return;
        const delayMs = parseRetryAfter(res.headers['retry-after'], Date.now());
        if (delayMs !== undefined) onRetryAfter(status, delayMs);
      });
      addRequest(req, options);
    };
    return agent;
  };
}

export interface PartialSuccess {
  rejected: number;
  message: string;
}

/**
 * The partial success of a decoded `ExportLogsServiceResponse` (as the OTel serializers return it:
 * `partialSuccess.rejectedLogRecords` a number, string or Long), when it rejected something or
 * carries a message; undefined for a full success.
 */
export function partialSuccessOf(response: unknown): PartialSuccess | undefined {
  const partial = (response as { partialSuccess?: unknown } | undefined)?.partialSuccess as
    | { rejectedLogRecords?: unknown; errorMessage?: unknown }
    | undefined;
  if (partial === undefined || partial === null) return undefined;
  const raw = partial.rejectedLogRecords;
  const rejected = raw === undefined || raw === null ? 0 : Number(typeof raw === 'object' ? String(raw) : raw);
  const message = typeof partial.errorMessage === 'string' ? partial.errorMessage : '';
  if (!(rejected > 0) && message === '') return undefined;
  return { rejected: Number.isFinite(rejected) && rejected > 0 ? rejected : 0, message };
}
