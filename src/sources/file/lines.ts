/**
 * Splits file bytes into lines without turning them into strings.
 *
 * The splitter keeps the bytes of the unfinished last line (`held`, a copy) and knows the absolute
 * file offset of every byte it has seen, so each batch of lines it returns carries the offset just
 * past its last delimiter: the value a checkpoint may advance to once the batch is acknowledged.
 * Bytes are kept exact: a `\r` before a `\n` stays part of the line, as Vector does.
 */

/** Lines of one piece: `data` is the lines back to back, `offsets` has `count + 1` entries. */
export interface SplitPiece {
  data: Uint8Array;
  offsets: Uint32Array;
  /** Absolute file offset just past the delimiter of the piece's last line (or of a discarded line after it). */
  end: number;
  /** With `trackLineEnds`: the absolute offset just past each line's delimiter. */
  lineEnds?: Float64Array;
}

export interface SplitResult {
  pieces: SplitPiece[];
  /** Absolute offset just past the last delimiter consumed so far (emitted or discarded lines). */
  end: number;
  /** Lines dropped because they were longer than `maxLineBytes`. */
  discarded: number;
}

export interface LineSplitterOptions {
  delimiter: Uint8Array;
  /** Longest line kept, in bytes without the delimiter; longer lines are discarded whole. */
  maxLineBytes: number;
  /** Most lines in one piece. */
  maxBatchLines: number;
  /** Absolute file offset of the first byte that will be given. */
  position?: number;
  /** Record each line's end offset in `SplitPiece.lineEnds` (multiline needs it; off on the fast path). */
  trackLineEnds?: boolean;
  /**
   * Code unit size in bytes (2 for UTF-16): a delimiter only counts at an absolute file offset that
   * is a multiple of it, so the bytes of two characters never make a false one. Default 1.
   */
  alignment?: number;
}

const EMPTY = new Uint8Array(0);
/** Lines a splitter has room for before its per-line arrays first grow. */
const INITIAL_LINE_CAPACITY = 64;

export class LineSplitter {
  private readonly delimiter: Buffer;
  /**
   * The delimiter's byte when it is one byte long (`\n`), else -1. `indexOf(byte)` is a plain
   * memchr; `indexOf(buffer)` sets up a substring search on every call, which cost about 100 ns per
   * line more.
   */
  private readonly delimiterByte: number;
  private readonly maxLineBytes: number;
  private readonly maxBatchLines: number;
  private heldBytes: Uint8Array = EMPTY;
  /** Absolute offset of `heldBytes[0]`. */
  private heldStart: number;
  /** Absolute offset just past the last delimiter consumed. */
  private consumed: number;
  /** The current line is over the limit: its bytes are dropped until its delimiter. */
  private discarding = false;
  /**
   * Start, end (and with trackLineEnds absolute end) of each line of the piece being cut. They
   * grow by doubling up to maxBatchLines: a source tailing thousands of mostly quiet files keeps
   * one splitter per file, and full-size arrays were ~20 KiB each.
   */
  private starts: Uint32Array;
  private ends: Uint32Array;
  private lineEnds: Float64Array | null;
  private readonly alignment: number;

  constructor(options: LineSplitterOptions) {
    if (options.delimiter.byteLength === 0) throw new RangeError('line delimiter must not be empty');
    this.delimiter = Buffer.from(options.delimiter);
    this.delimiterByte = this.delimiter.byteLength === 1 ? this.delimiter[0]! : -1;
    this.maxLineBytes = options.maxLineBytes;
    this.maxBatchLines = Math.max(1, options.maxBatchLines);
    this.heldStart = options.position ?? 0;
    this.consumed = this.heldStart;
    const capacity = Math.min(this.maxBatchLines, INITIAL_LINE_CAPACITY);
    this.starts = new Uint32Array(capacity);
    this.ends = new Uint32Array(capacity);
    this.lineEnds = options.trackLineEnds === true ? new Float64Array(capacity) : null;
    this.alignment = options.alignment ?? 1;
  }

  /** Bytes of the unfinished line the caller must put in front of the next read (see `splitPrefixed`). */
  get held(): Uint8Array {
    return this.heldBytes;
  }

  /** Absolute offset of the next byte expected: where the next read starts. */
  get position(): number {
    return this.heldStart + this.heldBytes.byteLength;
  }

  /** Absolute offset just past the last delimiter consumed. */
  get end(): number {
    return this.consumed;
  }

  /** Forgets held bytes and restarts at `position` (after truncation). */
  reset(position: number): void {
    this.heldBytes = EMPTY;
    this.heldStart = position;
    this.consumed = position;
    this.discarding = false;
  }

  /** Splits a chunk that follows the bytes given so far. Copies; `chunk` may be reused afterwards. */
  push(chunk: Uint8Array): SplitResult {
    if (this.heldBytes.byteLength === 0) return this.splitPrefixed(chunk);
    const buf = new Uint8Array(this.heldBytes.byteLength + chunk.byteLength);
    buf.set(this.heldBytes, 0);
    buf.set(chunk, this.heldBytes.byteLength);
    return this.splitPrefixed(buf);
  }

  /**
   * Splits `buf`, whose first `held.length` bytes are a copy of `held` placed there by the caller
   * and the rest newly read. This lets a reader read straight after the held bytes in one reused
   * buffer instead of concatenating. Copies what it keeps; `buf` may be reused afterwards.
   */
  splitPrefixed(buf: Uint8Array): SplitResult {
    const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    const base = this.heldStart;
    const dlen = this.delimiter.byteLength;
    const pieces: SplitPiece[] = [];
    let discarded = 0;
    let count = 0;
    let bytes = 0;
    let from = 0;
    for (;;) {
      let at = this.delimiterByte >= 0 ? view.indexOf(this.delimiterByte, from) : view.indexOf(this.delimiter, from);
      while (at >= 0 && this.alignment > 1 && (base + at) % this.alignment !== 0) at = view.indexOf(this.delimiter, at + 1);
      if (at < 0) break;
      if (this.discarding) {
        this.discarding = false;
        discarded++;
      } else if (at - from > this.maxLineBytes) {
        discarded++;
      } else {
        if (count === this.starts.length) this.grow();
        this.starts[count] = from;
        this.ends[count] = at;
        if (this.lineEnds !== null) this.lineEnds[count] = base + at + dlen;
        count++;
        bytes += at - from;
      }
      from = at + dlen;
      if (count === this.maxBatchLines) {
        pieces.push(this.piece(buf, count, bytes, base + from));
        count = 0;
        bytes = 0;
      }
    }
    if (count > 0) pieces.push(this.piece(buf, count, bytes, base + from));
    if (from > 0) this.consumed = base + from;

    // Keep the unfinished line. A line already longer than the limit (plus a delimiter that may be
    // cut in two) is dropped now; only a tail that may hold the start of its delimiter is kept.
    let keepFrom = from;
    if (!this.discarding && buf.byteLength - from > this.maxLineBytes + dlen - 1) this.discarding = true;
    if (this.discarding) keepFrom = Math.max(from, buf.byteLength - (dlen - 1));
    this.heldBytes = keepFrom === buf.byteLength ? EMPTY : buf.slice(keepFrom);
    this.heldStart = base + keepFrom;
    return { pieces, end: this.consumed, discarded };
  }

  /** Ends the input: the held bytes become a last line (at EOF of a finished file, or on stop). */
  flush(): SplitResult {
    const held = this.heldBytes;
    const end = this.heldStart + held.byteLength;
    const pieces: SplitPiece[] = [];
    let discarded = 0;
    if (this.discarding) {
      discarded = 1;
    } else if (held.byteLength > this.maxLineBytes) {
      discarded = 1;
    } else if (held.byteLength > 0) {
      pieces.push({ data: held, offsets: Uint32Array.of(0, held.byteLength), end, ...(this.lineEnds !== null ? { lineEnds: Float64Array.of(end) } : {}) });
    }
    this.reset(end);
    return { pieces, end, discarded };
  }

  /** Doubles the per-line arrays (never past maxBatchLines, where a piece is cut). */
  private grow(): void {
    const capacity = Math.min(this.maxBatchLines, this.starts.length * 2);
    const starts = new Uint32Array(capacity);
    starts.set(this.starts);
    this.starts = starts;
    const ends = new Uint32Array(capacity);
    ends.set(this.ends);
    this.ends = ends;
    if (this.lineEnds !== null) {
      const lineEnds = new Float64Array(capacity);
      lineEnds.set(this.lineEnds);
      this.lineEnds = lineEnds;
    }
  }

  private piece(buf: Uint8Array, count: number, bytes: number, end: number): SplitPiece {
    // One bulk copy of the first `bytes` bytes from the first line's start, then each line moved
    // down over the delimiters in place (copyWithin). The last few lines, whose bytes lie past
    // what the bulk copy took (one delimiter per line further on), are copied from `buf`.
    // Copying every line through `subarray` made one garbage view per line, paid for in GC.
    const first = this.starts[0]!;
    const data = new Uint8Array(bytes);
    data.set(buf.subarray(first, first + bytes));
    const offsets = new Uint32Array(count + 1);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const from = this.starts[i]! - first;
      const to = this.ends[i]! - first;
      if (to <= bytes) {
        if (from !== at) data.copyWithin(at, from, to);
      } else {
        data.set(buf.subarray(this.starts[i]!, this.ends[i]!), at);
      }
      at += to - from;
      offsets[i + 1] = at;
    }
    if (this.lineEnds !== null) return { data, offsets, end, lineEnds: this.lineEnds.slice(0, count) };
    return { data, offsets, end };
  }

}
