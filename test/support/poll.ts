/**
 * Waiting in tests without blind sleeps: `pollUntil` re-runs a probe until it returns a value
 * (anything but `undefined`, `null` or `false`) or a deadline passes. On timeout it fails with
 * what it was waiting for and what it saw last, so a red test explains itself.
 *
 *   const records = await pollUntil('3 records at the receiver', () =>
 *     receiver.records.length >= 3 ? receiver.records : undefined,
 *     { describe: () => `${receiver.records.length} records` });
 */

export interface PollOptions {
  /** Give up after this many ms. */
  timeoutMs?: number;
  /** Wait this long between probes. */
  intervalMs?: number;
  /** What the test currently sees, for the failure message. */
  describe?: () => string;
}

/** Default deadline of `pollUntil`: generous, since CI machines stall. */
export const POLL_TIMEOUT_MS = 10_000;
/** Default pause between probes. */
export const POLL_INTERVAL_MS = 10;

export async function pollUntil<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: PollOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? POLL_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? POLL_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const seen = options.describe ? options.describe() : lastError ? String(lastError) : 'no value';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last saw: ${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Whether a promise has settled, without waiting for it: for asserting "not yet resolved". */
export function settledFlag(promise: Promise<unknown>): { readonly settled: boolean } {
  const flag = { settled: false };
  promise.then(
    () => (flag.settled = true),
    () => (flag.settled = true),
  );
  return flag;
}
