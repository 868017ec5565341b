/**
 * The delivery engine of the opentelemetry sink: accumulates records across writes into requests
 * of up to `maxEvents` records and `maxBytes` bytes, sends at most `maxInFlight` requests at a time, retries a failed request
 * with exponential backoff and jitter, and resolves each `write()` only when every one of its
 * records was accepted (or given up on, and reported through `DeliveryEvents`).
 *
 * It knows nothing of OTLP: records travel in segments (an array of records, or a run of an
 * encoded batch) that `SegmentOps` can count and cut, and `send` is any function that tries one
 * request made of segments and says how it went. Nothing is done per record.
 * `write()` waits before queueing when `maxPending` records are already queued: that is the
 * backpressure a source feels, and nothing is dropped because a queue is full unless the
 * `whenFull = "drop_newest"` option says so (counted).
 */

export type SendOutcome =
  | { status: 'sent' }
  /** Transient: try the same request again later. */
  | { status: 'retry'; reason: string }
  /** Permanent: the receiver refused these records; retrying would not help. */
  | { status: 'rejected'; reason: string };

/** Tries to deliver one request: the segments in order. Must not reject. */
export type Send<S> = (segments: S[]) => Promise<SendOutcome>;

/** How the engine counts and cuts segments of records. */
export interface SegmentOps<S> {
  count(segment: S): number;
  /** Records `[from, to)` of `segment`, as a segment. */
  slice(segment: S, from: number, to: number): S;
  /**
   * Bytes `segment` adds to a request body, for `maxBytes`. It must grow with the records a
   * slice holds (a request is cut at the largest prefix that fits). Without it, sizes are ignored.
   */
  bytes?(segment: S): number;
  /** Bytes of a request body before any segment (e.g. a JSON envelope). */
  baseBytes?: number;
}

/** Segments that are plain arrays of records. */
export const ARRAY_SEGMENTS: SegmentOps<readonly unknown[]> = {
  count: (segment) => segment.length,
  slice: (segment, from, to) => segment.slice(from, to),
};

export interface RetryPolicy {
  /** Attempts after the first one; `Infinity` retries until stopped. */
  maxRetries: number;
  /** Base delay before the first retry; it doubles each time, with ±50 % jitter. */
  initialBackoffMs: number;
  /** No wait between attempts is longer than this. */
  maxBackoffMs: number;
}

export interface DeliveryOptions {
  maxEvents: number;
  /**
   * Most bytes in one request body (as `SegmentOps.bytes` counts them): a request is cut before
   * the record that would take it beyond. A record bigger than this on its own goes alone.
   */
  maxBytes?: number;
  /** A partly filled request leaves this long after its first record arrived. */
  batchTimeoutMs: number;
  maxInFlight: number;
  /** Records queued (buffered, waiting or in flight) beyond which `write()` waits. */
  maxPending: number;
  retry: RetryPolicy;
  /**
   * What `write()` does when `maxPending` records are already queued: `block` (the default) waits
   * for room, so backpressure reaches the source; `drop_newest` drops the write's records at once
   * (reported through `DeliveryEvents.dropped`) and resolves.
   */
  whenFull?: 'block' | 'drop_newest';
  /** For tests; Math.random by default. */
  random?: () => number;
}

/** What happened to records, for counters and logs. Called once per request outcome. */
export interface DeliveryEvents {
  sent(count: number): void;
  /** An attempt failed and will be retried after `delayMs`. */
  attemptFailed(count: number, reason: string, attempt: number, delayMs: number): void;
  /** Refused permanently, or retries exhausted: given up. */
  rejected(count: number, reason: string): void;
  /** Still queued when the stop deadline passed, or written after stop. */
  undelivered(count: number, reason: string): void;
  /** Dropped on arrival because the queue was full and `whenFull` is `drop_newest`. */
  dropped?(count: number): void;
}

interface Ticket {
  remaining: number;
  /** Set once any of the write's records ended other than sent. */
  failed: boolean;
  resolve: (allSent: boolean) => void;
}

/** `count` records of one write. */
interface Share {
  ticket: Ticket;
  count: number;
}

interface Buffered<S> {
  segment: S;
  count: number;
  /** What `segment` adds to a request (0 when sizes are not counted). */
  bytes: number;
  ticket: Ticket;
}

interface Request<S> {
  segments: S[];
  count: number;
  owners: Share[];
  attempts: number;
  timer?: NodeJS.Timeout;
  abandoned: boolean;
}

interface SpaceWaiter {
  count: number;
  admit: (reserved: boolean) => void;
}

/** A write admitted to the queue whose segment is still being produced (encoded). */
interface Arrival<S> {
  count: number;
  segment: S | undefined;
  ready: boolean;
  /** Why production failed, when it did. */
  failure?: string;
  ticket: Ticket;
}

export class Delivery<S> {
  private buffer: Buffered<S>[] = [];
  private bufferCount = 0;
  /** Sum of the buffered segments' `bytes`. */
  private bufferBytes = 0;
  /** `maxBytes`, when the segments can be sized; otherwise sizes are not computed at all. */
  private readonly maxBytes: number | undefined;
  /** Admitted writes in admission order; they enter `buffer` in this order once produced. */
  private readonly arrivals: Arrival<S>[] = [];
  private batchTimer: NodeJS.Timeout | undefined;
  private readonly ready: Request<S>[] = [];
  private readonly inFlight = new Set<Request<S>>();
  private readonly waiters: SpaceWaiter[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private pendingCount = 0;
  private stopping = false;
  /** Set by expedite(): buffered records go out as they arrive. */
  private expedited = false;
  private stopped = false;
  private readonly random: () => number;
  /** Epoch ms before which no retry starts (the collector's Retry-After). */
  private notBefore = 0;

  constructor(
    private readonly send: Send<S>,
    private readonly options: DeliveryOptions,
    private readonly events: DeliveryEvents,
    private readonly ops: SegmentOps<S> = ARRAY_SEGMENTS as unknown as SegmentOps<S>,
  ) {
    this.random = options.random ?? Math.random;
    this.maxBytes = ops.bytes !== undefined ? options.maxBytes : undefined;
  }

  /** Records queued: buffered, waiting for a request slot, or in flight (including backoff). */
  get pending(): number {
    return this.pendingCount;
  }

  /**
   * Resolves when every record of `segment` is delivered or given up on: true when every one was
   * sent (the collector answered 2xx to every request carrying them). Never rejects.
   */
  write(segment: S): Promise<boolean> {
    return this.writeLater(this.ops.count(segment), () => segment);
  }

  /**
   * Like `write()`, for a segment that costs something to make: `produce` runs only once the
   * `count` records have room in the queue (so backpressure holds before the work is done), and
   * segments enter the queue in the order their writes were admitted, whatever order they are
   * produced in. `produce` should not reject; if it does, the records are reported as rejected.
   */
  async writeLater(count: number, produce: () => S | Promise<S>): Promise<boolean> {
    if (count === 0) return true;
    if (this.stopped) {
      this.events.undelivered(count, 'written after the sink stopped');
      return false;
    }
    if (this.options.whenFull === 'drop_newest' && !(this.waiters.length === 0 && this.hasSpaceFor(count))) {
      this.events.dropped?.(count);
      return false;
    }
    // The records' place in the queue is reserved here (counted in `pending`) before they are made.
    const reserved = await this.reserve(count);
    if (!reserved || this.stopped) {
      if (reserved) this.pendingCount -= count;
      this.events.undelivered(count, 'written after the sink stopped');
      return false;
    }
    return new Promise<boolean>((resolve) => {
      const arrival: Arrival<S> = { count, segment: undefined, ready: false, ticket: { remaining: count, failed: false, resolve } };
      this.arrivals.push(arrival);
      let made: Promise<S>;
      try {
        made = Promise.resolve(produce());
      } catch (error) {
        made = Promise.reject(error);
      }
      made.then(
        (segment) => {
          arrival.segment = segment;
          arrival.ready = true;
          this.admitArrivals();
        },
        (error: unknown) => {
          arrival.ready = true;
          arrival.failure = describe(error);
          this.admitArrivals();
        },
      );
    });
  }

  /** Moves produced segments, in admission order, into the buffer and cuts full requests. */
  private admitArrivals(): void {
    while (this.arrivals.length > 0 && this.arrivals[0]!.ready) {
      const arrival = this.arrivals.shift()!;
      if (this.stopped) {
        // Abandoned while being produced (a failure then is the stop's doing, e.g. a closed pool).
        this.events.undelivered(arrival.count, 'the sink stopped before they were delivered');
        this.release([{ ticket: arrival.ticket, count: arrival.count }], false);
        continue;
      }
      if (arrival.segment === undefined) {
        this.events.rejected(arrival.count, `could not encode: ${arrival.failure ?? 'no segment produced'}`);
        this.release([{ ticket: arrival.ticket, count: arrival.count }], false);
        continue;
      }
      const bytes = this.bytesOf(arrival.segment);
      this.buffer.push({ segment: arrival.segment, count: arrival.count, bytes, ticket: arrival.ticket });
      this.bufferCount += arrival.count;
      this.bufferBytes += bytes;
    }
    while (this.bufferCount >= this.options.maxEvents || this.bytesFull()) this.cut(this.options.maxEvents);
    if (this.stopping || this.expedited || this.bufferBlocksWaiter()) this.flush();
    this.armBatchTimer();
    this.pump();
  }

  /**
   * From now on, sends what is buffered as soon as it arrives instead of waiting for a full
   * request or the batch timeout (nothing more is coming but what is in flight). Unlike `stop`,
   * writes are still accepted.
   */
  expedite(): void {
    if (this.expedited) return;
    this.expedited = true;
    this.flush();
    this.armBatchTimer();
    this.pump();
  }

  /**
   * Sends what is buffered, waits for every request to finish. After `deadlineMs` (if given)
   * stops waiting: what is left is reported as undelivered and its writes resolve.
   */
  async stop(deadlineMs?: number): Promise<void> {
    this.stopping = true;
    this.flush();
    this.armBatchTimer();
    this.pump();
    const idle = new Promise<void>((resolve) => {
      if (this.isIdle()) resolve();
      else this.idleWaiters.push(resolve);
    });
    if (deadlineMs === undefined) {
      await idle;
    } else {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), deadlineMs);
      });
      const timedOut = await Promise.race([idle.then(() => false), expired]);
      clearTimeout(timer);
      if (timedOut) this.abandonAll('the sink stopped before they were delivered');
    }
    this.stopped = true;
  }

  /** Resolves true once `count` records fit in the queue (and counts them), false if stopped first. */
  private reserve(count: number): Promise<boolean> {
    if (this.waiters.length === 0 && this.hasSpaceFor(count)) {
      this.pendingCount += count;
      return Promise.resolve(true);
    }
    const admitted = new Promise<boolean>((admit) => this.waiters.push({ count, admit }));
    if (this.bufferBlocksWaiter()) {
      this.flush();
      this.armBatchTimer();
      this.pump();
    }
    return admitted;
  }

  /**
   * True when the first waiting write would not fit even once every request already cut is done,
   * because of the records buffered for a partial request. Those wait for more records, which
   * wait for room: without sending them now, both would wait for the batch timeout (a write larger
   * than `maxPending`, e.g. a source batch of 1000 lines with `batch.max_events = 100`, went one per
   * `batch.timeout_secs`).
   */
  private bufferBlocksWaiter(): boolean {
    const first = this.waiters[0];
    return first !== undefined && this.bufferCount > 0 && this.bufferCount + first.count > this.options.maxPending;
  }

  /** A write bigger than `maxPending` still goes in once the queue is empty. */
  private hasSpaceFor(count: number): boolean {
    return this.pendingCount === 0 || this.pendingCount + count <= this.options.maxPending;
  }

  private admitWaiters(): void {
    if (this.stopped) return;
    while (this.waiters.length > 0 && this.hasSpaceFor(this.waiters[0]!.count)) {
      const waiter = this.waiters.shift()!;
      this.pendingCount += waiter.count;
      waiter.admit(true);
    }
  }

  private bytesOf(segment: S): number {
    return this.maxBytes === undefined ? 0 : this.ops.bytes!(segment);
  }

  /** True when what is buffered reaches `maxBytes` as one request: nothing more would fit. */
  private bytesFull(): boolean {
    return this.maxBytes !== undefined && this.bufferCount > 0 && (this.ops.baseBytes ?? 0) + this.bufferBytes >= this.maxBytes;
  }

  /** Cuts everything buffered into requests (several when the limits ask for it). */
  private flush(): void {
    while (this.bufferCount > 0) this.cut(this.options.maxEvents);
  }

  /**
   * Takes the first buffered records, at most `count` and at most `maxBytes` of them (cutting a
   * segment if needed, at a record boundary), as one request. Takes at least one record: a record
   * bigger than `maxBytes` is sent alone rather than never.
   */
  private cut(count: number): void {
    if (count <= 0 || this.bufferCount === 0) return;
    const segments: S[] = [];
    const owners: Share[] = [];
    const maxBytes = this.maxBytes ?? Number.POSITIVE_INFINITY;
    let bytes = this.ops.baseBytes ?? 0;
    let taken = 0;
    let used = 0;
    while (taken < count && used < this.buffer.length) {
      const entry = this.buffer[used]!;
      const want = count - taken;
      if (entry.count <= want && bytes + entry.bytes <= maxBytes) {
        segments.push(entry.segment);
        owners.push({ ticket: entry.ticket, count: entry.count });
        taken += entry.count;
        bytes += entry.bytes;
        this.bufferBytes -= entry.bytes;
        used++;
        continue;
      }
      // A segment that would fit whole in a request of its own waits for the next request rather
      // than being split: whole segments go without a copy (encode.ts `framedAsRequest`), and
      // requests then carry whole input batches, as the source cut them.
      if (taken > 0 && entry.count <= count && (this.ops.baseBytes ?? 0) + entry.bytes <= maxBytes) break;
      let take = Math.min(want, entry.count);
      if (this.maxBytes !== undefined && bytes + this.bytesOf(this.ops.slice(entry.segment, 0, take)) > maxBytes) {
        take = this.fit(entry.segment, take, maxBytes - bytes);
      }
      if (take === 0 && taken === 0) take = 1;
      if (take === entry.count) {
        // Only reached for a lone oversized record: the whole entry goes.
        segments.push(entry.segment);
        owners.push({ ticket: entry.ticket, count: entry.count });
        taken += entry.count;
        this.bufferBytes -= entry.bytes;
        used++;
      } else if (take > 0) {
        segments.push(this.ops.slice(entry.segment, 0, take));
        owners.push({ ticket: entry.ticket, count: take });
        entry.segment = this.ops.slice(entry.segment, take, entry.count);
        entry.count -= take;
        this.bufferBytes -= entry.bytes;
        entry.bytes = this.bytesOf(entry.segment);
        this.bufferBytes += entry.bytes;
        taken += take;
      }
      break;
    }
    this.buffer.splice(0, used);
    this.bufferCount -= taken;
    this.ready.push({ segments, count: taken, owners, attempts: 0, abandoned: false });
  }

  /** The most records (up to `limit`) at the start of `segment` whose slice is at most `budget` bytes. */
  private fit(segment: S, limit: number, budget: number): number {
    let lo = 0;
    let hi = limit;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.bytesOf(this.ops.slice(segment, 0, mid)) <= budget) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private armBatchTimer(): void {
    if (this.bufferCount === 0) {
      if (this.batchTimer !== undefined) clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
      return;
    }
    if (this.batchTimer !== undefined) return;
    // Not unref'd: a pending partial batch must keep the process alive until it is sent.
    this.batchTimer = setTimeout(() => {
      this.batchTimer = undefined;
      this.flush();
      this.pump();
    }, this.options.batchTimeoutMs);
  }

  private pump(): void {
    while (this.inFlight.size < this.options.maxInFlight && this.ready.length > 0) {
      const request = this.ready.shift()!;
      this.inFlight.add(request);
      this.attempt(request);
    }
  }

  private attempt(request: Request<S>): void {
    request.attempts++;
    let outcome: Promise<SendOutcome>;
    try {
      outcome = this.send(request.segments);
    } catch (error) {
      outcome = Promise.resolve({ status: 'retry', reason: describe(error) });
    }
    outcome.then(
      (result) => this.settle(request, result),
      (error: unknown) => this.settle(request, { status: 'retry', reason: describe(error) }),
    );
  }

  private settle(request: Request<S>, outcome: SendOutcome): void {
    if (request.abandoned) return;
    const count = request.count;
    if (outcome.status === 'sent') {
      this.events.sent(count);
      this.finish(request, true);
      return;
    }
    if (outcome.status === 'rejected') {
      this.events.rejected(count, outcome.reason);
      this.finish(request, false);
      return;
    }
    if (request.attempts > this.options.retry.maxRetries) {
      this.events.rejected(count, `gave up after ${request.attempts} attempts: ${outcome.reason}`);
      this.finish(request, false);
      return;
    }
    const delayMs = Math.max(this.backoff(request.attempts), this.notBefore - Date.now());
    this.events.attemptFailed(count, outcome.reason, request.attempts, delayMs);
    // The request keeps its in-flight slot while it waits: during an outage the number of
    // outstanding requests stays bounded and write() callers feel the backpressure.
    request.timer = setTimeout(() => {
      request.timer = undefined;
      if (!request.abandoned) this.attempt(request);
    }, delayMs);
  }

  /**
   * The collector asked for no request before `epochMs` (a Retry-After header): every retry
   * scheduled from now on waits at least until then, even beyond `maxBackoffMs`. A later hint
   * never shortens an earlier one.
   */
  holdUntil(epochMs: number): void {
    if (epochMs > this.notBefore) this.notBefore = epochMs;
  }

  /** Exponential: initial * 2^(attempt-1), with ±50 % jitter, capped. */
  backoff(attempt: number): number {
    const { initialBackoffMs, maxBackoffMs } = this.options.retry;
    const base = Math.min(maxBackoffMs, initialBackoffMs * 2 ** Math.min(attempt - 1, 30));
    return Math.min(maxBackoffMs, Math.round(base * (0.5 + this.random())));
  }

  private finish(request: Request<S>, sent: boolean): void {
    this.inFlight.delete(request);
    this.release(request.owners, sent);
    this.pump();
  }

  private release(owners: readonly Share[], sent: boolean): void {
    for (const { ticket, count } of owners) {
      ticket.remaining -= count;
      if (!sent) ticket.failed = true;
      this.pendingCount -= count;
      if (ticket.remaining === 0) ticket.resolve(!ticket.failed);
    }
    this.admitWaiters();
    if (this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private isIdle(): boolean {
    return this.pendingCount === 0 && this.waiters.length === 0;
  }

  private abandonAll(reason: string): void {
    this.stopped = true;
    if (this.batchTimer !== undefined) clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    const requests = [...this.inFlight, ...this.ready.splice(0)];
    this.inFlight.clear();
    for (const request of requests) {
      request.abandoned = true;
      if (request.timer !== undefined) clearTimeout(request.timer);
      this.events.undelivered(request.count, reason);
      this.release(request.owners, false);
    }
    if (this.bufferCount > 0) {
      const owners = this.buffer.map((entry) => ({ ticket: entry.ticket, count: entry.count }));
      const count = this.bufferCount;
      this.buffer = [];
      this.bufferCount = 0;
      this.bufferBytes = 0;
      this.events.undelivered(count, reason);
      this.release(owners, false);
    }
    // Writes still being produced are released as they arrive (admitArrivals sees `stopped`).
    // Writes still waiting for space are turned away: they report themselves as undelivered.
    for (const waiter of this.waiters.splice(0)) waiter.admit(false);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
