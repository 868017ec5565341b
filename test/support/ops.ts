/**
 * Helpers for the operations tests (health, metrics, reload, replay): reading the CLI's structured
 * stderr logs, finding the address a server bound to, plain HTTP GETs.
 */
import { pollUntil } from './poll.js';
import type { CliRun } from './cli.js';

export interface LoggedRecord {
  level: string;
  event: string;
  message: string;
  component?: string;
}

/** The JSON log records in a stderr text; other lines (summaries) are skipped. */
export function logRecords(stderr: string): LoggedRecord[] {
  const out: LoggedRecord[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LoggedRecord);
    } catch {
      // A line cut by a chunk boundary; the next read completes it.
    }
  }
  return out;
}

/** Waits for a log record of `event` whose message holds `http://HOST:PORT` and returns that URL. */
export async function loggedUrl(run: CliRun, event: string, component?: string): Promise<string> {
  return pollUntil(
    `a "${event}" log line with a URL`,
    () => {
      const record = logRecords(run.stderr()).find((r) => r.event === event && (component === undefined || r.component === component));
      return record === undefined ? undefined : /http:\/\/[^\s/]+/.exec(record.message)?.[0];
    },
    { describe: () => `stderr: ${run.stderr()}` },
  );
}

/** GET; resolves with status and body text, or rejects on a connection error. */
export async function httpGet(url: string): Promise<{ status: number; body: string; contentType: string }> {
  const res = await fetch(url, { headers: { connection: 'close' } });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}
