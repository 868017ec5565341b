import { describe, expect, it, onTestFinished } from 'vitest';
import { batchFromLines, type BatchMeta } from '../src/event.js';
import { BatchEncoder, entrySize, framedAsRequest, requestBody } from '../src/sinks/opentelemetry/encode.js';
import { EncodePool, releaseEncoded, type FallbackReason } from '../src/sinks/opentelemetry/pool.js';

const encoder = new TextEncoder();
const META: BatchMeta = {
  sourceId: 'app',
  sourceType: 'file',
  file: '/var/log/app.log',
  host: 'h',
  timestampMs: 1_700_000_000_000,
  format: 'json',
};
const batch = (lines: string[], meta: BatchMeta = META) => batchFromLines(lines.map((l) => encoder.encode(l)), meta);

function pool(options: { filename?: string } = {}) {
  const fallbacks: [FallbackReason, string][] = [];
  const instance = new EncodePool({ serviceName: 'svc', onFallback: (reason, detail) => fallbacks.push([reason, detail]), ...options });
  onTestFinished(() => instance.close());
  return { pool: instance, fallbacks };
}

describe('EncodePool', () => {
  it('encodes in a worker thread exactly as on the main thread, framed as a whole request; both buffers go back and forth by transfer', async () => {
    const { pool: p, fallbacks } = pool();
    await p.start();
    expect(p.threaded).toBe(true); // requires `npm run build`
    const lines = ['{"msg":"a","level":"warn","ts":"2024-05-06T07:08:09Z"}', 'text', '{"n":[1,2.5,null]}'];
    const input = batch(lines);
    const { data, offsets } = input;
    const encoded = await p.encode(input);
    expect(data.buffer.byteLength).toBe(0);
    expect(offsets.buffer.byteLength).toBe(0);
    const local = new BatchEncoder('svc').encode(batch(lines));
    expect(encoded).toEqual(framedAsRequest(new BatchEncoder('svc').encode(batch(lines))));
    // The worker's bytes are the request for the whole batch (sent as they are), and any part of
    // it still makes the same request as the main thread's encoding.
    expect(encoded.request).toBeDefined();
    expect(requestBody([{ batch: encoded, from: 0, to: 3 }])).toBe(encoded.bytes);
    for (const [from, to] of [[0, 3], [0, 1], [1, 3], [2, 2]] as const) {
      expect(Buffer.from(requestBody([{ batch: encoded, from, to }]))).toEqual(Buffer.from(requestBody([{ batch: local, from, to }])));
      expect(entrySize({ batch: encoded, from, to })).toBe(entrySize({ batch: local, from, to }));
    }
    expect(fallbacks).toEqual([]);
  });

  it('releaseEncoded detaches the buffers of a batch a worker encoded, once, and leaves main-thread encodings alone', async () => {
    const { pool: p } = pool();
    await p.start();
    const encoded = await p.encode(batch(['{"msg":"a"}', 'b']));
    const { bytes, offsets } = encoded;
    expect(bytes.byteLength).toBeGreaterThan(0);
    releaseEncoded(encoded);
    expect(bytes.buffer.byteLength).toBe(0);
    expect(offsets.buffer.byteLength).toBe(0);
    releaseEncoded(encoded); // a second call has nothing left to do and does not throw

    // A main-thread encoding may sit in a pooled buffer shared with other Buffers: never detached.
    const { pool: inline } = pool({ filename: '/nonexistent/logwasm-otlp-worker.js' });
    await inline.start();
    const local = await inline.encode(batch(['x']));
    const size = local.bytes.buffer.byteLength;
    releaseEncoded(local);
    expect(local.bytes.buffer.byteLength).toBe(size);
  });

  it('without a worker script every batch is encoded on the main thread, and each one is reported', async () => {
    const { pool: p, fallbacks } = pool({ filename: '/nonexistent/logwasm-otlp-worker.js' });
    await p.start();
    expect(p.threaded).toBe(false);
    const first = await p.encode(batch(['x']));
    await p.encode(batch(['y']));
    expect(first).toEqual(new BatchEncoder('svc').encode(batch(['x'])));
    expect(fallbacks.map(([reason]) => reason)).toEqual(['worker_missing', 'worker_missing']);
    expect(fallbacks[0]![1]).toContain('/nonexistent/logwasm-otlp-worker.js');
  });

  it('an encoding that throws in the worker hands the batch back: it is retried on the main thread', async () => {
    const { pool: p, fallbacks } = pool();
    // A meta the encoder cannot read (no file path) makes it throw, in the worker and here alike.
    const broken = { ...META, file: undefined as unknown as string };
    await expect(p.encode(batch(['x'], broken))).rejects.toThrow(TypeError);
    expect(fallbacks.map(([reason]) => reason)).toEqual(['worker_failed']);
    expect(fallbacks[0]![1]).toMatch(/path/);
    // The pool still works afterwards.
    const encoded = await p.encode(batch(['ok']));
    expect(encoded.offsets.length).toBe(2);
  });
});
