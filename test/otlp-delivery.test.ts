import { describe, expect, it } from 'vitest';
import { Delivery, type DeliveryOptions, type SendOutcome } from '../src/sinks/opentelemetry/batching.js';
import { pollUntil, settledFlag } from './support/poll.js';

/** A send function the test answers by hand: each call waits for `answer()`. Segments are arrays of records. */
function manualSend() {
  const calls: { records: number[]; answer: (outcome: SendOutcome) => void }[] = [];
  const send = (segments: number[][]) =>
    new Promise<SendOutcome>((resolve) => calls.push({ records: segments.flat(), answer: resolve }));
  return { calls, send };
}

function recorder() {
  const log: string[] = [];
  return {
    log,
    events: {
      sent: (n: number) => log.push(`sent ${n}`),
      attemptFailed: (n: number, reason: string, attempt: number) => log.push(`failed ${n} #${attempt} ${reason}`),
      rejected: (n: number, reason: string) => log.push(`rejected ${n} ${reason}`),
      undelivered: (n: number) => log.push(`undelivered ${n}`),
    },
  };
}

const options = (overrides: Partial<DeliveryOptions> = {}): DeliveryOptions => ({
  maxEvents: 3,
  batchTimeoutMs: 3_600_000,
  maxInFlight: 2,
  maxPending: 6,
  retry: { maxRetries: Number.POSITIVE_INFINITY, initialBackoffMs: 1, maxBackoffMs: 5 },
  random: () => 0.5,
  ...overrides,
});

describe('Delivery', () => {
  it('cuts requests of max_events across writes and resolves each write when all its records are sent', async () => {
    const { calls, send } = manualSend();
    const { log, events } = recorder();
    const delivery = new Delivery(send, options(), events);
    const a = delivery.write([1]);
    // Bigger than a request: split to fill one.
    const b = delivery.write([2, 3, 4, 5]);
    await pollUntil('one request', () => calls.length === 1 || undefined);
    expect(calls[0]!.records).toEqual([1, 2, 3]);
    calls[0]!.answer({ status: 'sent' });
    await a;
    const fb = settledFlag(b);
    await Promise.resolve();
    expect(fb.settled).toBe(false); // records 4 and 5 are still buffered
    const stopped = delivery.stop();
    await pollUntil('the flushed remainder', () => calls.length === 2 || undefined);
    expect(calls[1]!.records).toEqual([4, 5]);
    calls[1]!.answer({ status: 'sent' });
    await Promise.all([b, stopped]);
    expect(log).toEqual(['sent 3', 'sent 2']);
  });

  it('expedite() sends a partial request at once, and later writes as they come, without stopping', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options({ batchTimeoutMs: 3_600_000 }), recorder().events);
    const a = delivery.write([1]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toHaveLength(0); // a partial request waits for more, or for the hour-long timeout
    delivery.expedite();
    await pollUntil('the partial request', () => calls.length === 1 || undefined);
    expect(calls[0]!.records).toEqual([1]);
    const b = delivery.write([2]);
    await pollUntil('the next write, alone', () => calls.length === 2 || undefined);
    expect(calls[1]!.records).toEqual([2]);
    for (const call of calls) call.answer({ status: 'sent' });
    await Promise.all([a, b]);
    await delivery.stop();
  });

  it('does not split a write that fits a request of its own: the request before it goes short', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options(), recorder().events);
    const a = delivery.write([1, 2]);
    const b = delivery.write([3, 4]);
    await pollUntil('one request', () => calls.length === 1 || undefined);
    expect(calls[0]!.records).toEqual([1, 2]);
    calls[0]!.answer({ status: 'sent' });
    await a;
    const stopped = delivery.stop();
    await pollUntil('the second write, whole', () => calls.length === 2 || undefined);
    expect(calls[1]!.records).toEqual([3, 4]);
    calls[1]!.answer({ status: 'sent' });
    await Promise.all([b, stopped]);
  });

  it('at most maxInFlight requests; write() waits when maxPending records are queued', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options(), recorder().events);
    const first = delivery.write([1, 2, 3, 4, 5, 6]); // fills both slots: pending 6 = maxPending
    await pollUntil('two requests', () => calls.length === 2 || undefined);
    const second = delivery.write([7]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(delivery.pending).toBe(6); // [7] is not admitted yet
    expect(calls).toHaveLength(2);
    calls[0]!.answer({ status: 'sent' });
    await pollUntil('[7] admitted', () => delivery.pending === 4 || undefined, { describe: () => `${delivery.pending}` });
    calls[1]!.answer({ status: 'sent' });
    await first;
    const stopping = delivery.stop();
    await pollUntil('third request', () => calls.length === 3 || undefined);
    expect(calls[2]!.records).toEqual([7]);
    calls[2]!.answer({ status: 'sent' });
    await Promise.all([second, stopping]);
  });

  it('retries the same request with growing backoff; gives up after retry_attempts', async () => {
    const { calls, send } = manualSend();
    const { log, events } = recorder();
    const delivery = new Delivery(send, options({ retry: { maxRetries: 2, initialBackoffMs: 1, maxBackoffMs: 5 } }), events);
    const written = delivery.write([1, 2, 3]);
    for (let i = 0; i < 3; i++) {
      await pollUntil(`attempt ${i + 1}`, () => calls.length === i + 1 || undefined);
      expect(calls[i]!.records).toEqual([1, 2, 3]);
      calls[i]!.answer({ status: 'retry', reason: 'HTTP 500' });
    }
    await written;
    expect(log).toEqual(['failed 3 #1 HTTP 500', 'failed 3 #2 HTTP 500', 'rejected 3 gave up after 3 attempts: HTTP 500']);
    expect(delivery.backoff(1)).toBe(1);
    expect(delivery.backoff(3)).toBe(4);
    expect(delivery.backoff(20)).toBe(5);
  });

  it('stop with a deadline: in-flight, buffered and waiting records all reported undelivered, writes resolve', async () => {
    const { calls, send } = manualSend();
    const { log, events } = recorder();
    const delivery = new Delivery(send, options({ maxInFlight: 1 }), events);
    const writes = [delivery.write([1, 2, 3]), delivery.write([4, 5, 6]), delivery.write([7])];
    await pollUntil('first request', () => calls.length === 1 || undefined);
    await delivery.stop(20);
    await Promise.all(writes);
    expect(log.reduce((sum, line) => sum + Number(line.split(' ')[1]), 0)).toBe(7);
    expect(log.every((line) => line.startsWith('undelivered'))).toBe(true);
    // A late answer for an abandoned request changes nothing.
    calls[0]!.answer({ status: 'sent' });
    await delivery.write([8]);
    expect(log.at(-1)).toBe('undelivered 1');
    expect(log.some((line) => line.startsWith('sent'))).toBe(false);
  });

  it('writeLater: segments enter the queue in admission order, whatever order they are produced in', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options({ maxEvents: 4 }), recorder().events);
    let finishFirst!: (records: number[]) => void;
    const first = delivery.writeLater(2, () => new Promise<number[]>((resolve) => (finishFirst = resolve)));
    const second = delivery.writeLater(2, () => [3, 4]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toHaveLength(0); // [3, 4] waits behind the first write
    finishFirst([1, 2]);
    await pollUntil('one request', () => calls.length === 1 || undefined);
    expect(calls[0]!.records).toEqual([1, 2, 3, 4]);
    calls[0]!.answer({ status: 'sent' });
    await Promise.all([first, second]);
  });

  it('writeLater: produce runs only once the records have room (backpressure before the work)', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options(), recorder().events);
    const first = delivery.write([1, 2, 3, 4, 5, 6]);
    let produced = false;
    const second = delivery.writeLater(1, () => {
      produced = true;
      return [7];
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(produced).toBe(false);
    await pollUntil('two requests', () => calls.length === 2 || undefined);
    calls[0]!.answer({ status: 'sent' });
    await pollUntil('[7] produced', () => produced || undefined);
    calls[1]!.answer({ status: 'sent' });
    await first;
    const stopping = delivery.stop();
    await pollUntil('third request', () => calls.length === 3 || undefined);
    calls[2]!.answer({ status: 'sent' });
    await Promise.all([second, stopping]);
  });

  it('writeLater: a failed production is reported as rejected and does not hold back later writes', async () => {
    const { calls, send } = manualSend();
    const { log, events } = recorder();
    const delivery = new Delivery(send, options({ maxEvents: 2 }), events);
    const failed = delivery.writeLater(3, () => Promise.reject(new Error('worker died')));
    const next = delivery.write([8, 9]);
    await failed;
    await pollUntil('one request', () => calls.length === 1 || undefined);
    expect(calls[0]!.records).toEqual([8, 9]);
    calls[0]!.answer({ status: 'sent' });
    await next;
    expect(log).toEqual(['rejected 3 could not encode: worker died', 'sent 2']);
    expect(delivery.pending).toBe(0);
  });

  it('holdUntil: a retry waits for the collector\'s Retry-After even when the backoff is shorter', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options({ maxEvents: 1 }), recorder().events);
    const done = delivery.write([1]);
    await pollUntil('first attempt', () => calls.length === 1 || undefined);
    const holdUntil = Date.now() + 300;
    delivery.holdUntil(holdUntil);
    delivery.holdUntil(Date.now() + 10); // an earlier hint never shortens it
    calls[0]!.answer({ status: 'retry', reason: 'HTTP 429' });
    await pollUntil('the retry', () => calls.length === 2 || undefined, { describe: () => `${calls.length} calls` });
    expect(Date.now()).toBeGreaterThanOrEqual(holdUntil);
    calls[1]!.answer({ status: 'sent' });
    await done;
  });

  it('a write larger than maxPending does not wait for the batch timeout behind a partial request', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options(), recorder().events);
    // 7 records, maxEvents 3: two requests and one record left for a partial one.
    const first = delivery.write([1, 2, 3, 4, 5, 6, 7]);
    // 1 buffered + 7 > maxPending 6: this write can only go in once the queue is empty, which
    // the buffered record would delay until the (hour-long) batch timeout.
    const second = delivery.write([8, 9, 10, 11, 12, 13, 14]);
    await pollUntil('the first two requests', () => calls.length === 2 || undefined);
    for (const call of calls.splice(0)) call.answer({ status: 'sent' });
    await pollUntil('the partial request, sent without waiting for the timeout', () => calls.length === 1 || undefined, {
      describe: () => `${calls.length} calls`,
    });
    expect(calls[0]!.records).toEqual([7]);
    calls[0]!.answer({ status: 'sent' });
    await first;
    await pollUntil('the second write\'s requests', () => calls.length === 3 || undefined, { describe: () => `${calls.length} calls` });
    expect(calls.map((c) => c.records)).toEqual([[7], [8, 9, 10], [11, 12, 13]]);
    for (const call of calls.slice(1)) call.answer({ status: 'sent' });
    const stopped = delivery.stop();
    await pollUntil('the last record', () => calls.length === 4 || undefined);
    calls[3]!.answer({ status: 'sent' });
    await Promise.all([second, stopped]);
  });

  it('a write resolves true only when every request carrying its records was sent', async () => {
    const { calls, send } = manualSend();
    const delivery = new Delivery(send, options({ retry: { maxRetries: 0, initialBackoffMs: 1, maxBackoffMs: 1 } }), recorder().events);
    const sent = delivery.write([1, 2, 3]);
    await pollUntil('the first request', () => calls.length === 1 || undefined);
    calls[0]!.answer({ status: 'sent' });
    expect(await sent).toBe(true);
    // Two requests: [4, 5, 6] now, [7] at stop.
    const split = delivery.write([4, 5, 6, 7]);
    await pollUntil('the second request', () => calls.length === 2 || undefined);
    calls[1]!.answer({ status: 'retry', reason: 'HTTP 503' }); // no retries left: given up
    const stopped = delivery.stop();
    await pollUntil('the last record', () => calls.length === 3 || undefined);
    calls[2]!.answer({ status: 'sent' });
    expect(await split).toBe(false); // 3 records sent, 1 given up
    await stopped;
    expect(await delivery.write([8])).toBe(false); // after stop: undelivered
  });

  it('whenFull = drop_newest: a write that does not fit is dropped at once and reported; nothing waits', async () => {
    const { calls, send } = manualSend();
    const dropped: number[] = [];
    const delivery = new Delivery(send, options({ whenFull: 'drop_newest' }), {
      ...recorder().events,
      dropped: (n: number) => dropped.push(n),
    });
    const first = delivery.write([1, 2, 3, 4, 5]);
    const second = delivery.write([6, 7]); // 5 + 2 > maxPending 6
    await second; // resolves at once
    expect(dropped).toEqual([2]);
    expect(delivery.pending).toBe(5);
    const third = delivery.write([8]); // fits: 6
    expect(dropped).toEqual([2]);
    await pollUntil('two requests of 3', () => calls.length === 2 || undefined);
    expect(calls.map((c) => c.records)).toEqual([[1, 2, 3], [4, 5, 8]]);
    for (const call of calls) call.answer({ status: 'sent' });
    await Promise.all([first, third, delivery.stop()]);
    expect(dropped).toEqual([2]);
  });
});
