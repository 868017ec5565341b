/** Batches for the OTLP encoder and sink tests: one meta with per-file defaults, lines as strings or bytes. */
import { batchFromLines, type BatchMeta, type LineBatch } from '../../src/event.js';

const utf8 = new TextEncoder();

/** `meta()` and `batch()` whose metadata starts from `defaults` (a file source's batch otherwise). */
export function batchHelpers(defaults: Partial<BatchMeta> = {}): {
  meta: (overrides?: Partial<BatchMeta>) => BatchMeta;
  batch: (lines: (string | Uint8Array)[], overrides?: Partial<BatchMeta>) => LineBatch;
} {
  const meta = (overrides: Partial<BatchMeta> = {}): BatchMeta => ({
    sourceId: 'app',
    sourceType: 'file',
    file: '/var/log/app/service.log',
    host: 'node-1',
    timestampMs: Date.UTC(2024, 0, 2, 3, 4, 5, 678),
    format: 'json',
    ...defaults,
    ...overrides,
  });
  const batch = (lines: (string | Uint8Array)[], overrides: Partial<BatchMeta> = {}): LineBatch =>
    batchFromLines(
      lines.map((line) => (typeof line === 'string' ? utf8.encode(line) : line)),
      meta(overrides),
    );
  return { meta, batch };
}
