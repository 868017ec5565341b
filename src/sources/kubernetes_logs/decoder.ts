/**
 * Turns the raw lines of one container log file into the container's messages: parses each line
 * (CRI or Docker json-file), merges partial pieces, and groups the messages by stream. One decoder
 * per file; it keeps the unfinished partial message of each stream across batches.
 *
 * Pure: no I/O, no timers, no acknowledgements. The source decides when a carried partial must
 * be sent on its own (`flush`) and ties acknowledgements to carries through `Carry.waiters`.
 */
import { parseContainerLine, type ContainerStream, type Scratch } from './parser.js';

export interface Lines {
  data: Uint8Array;
  offsets: Uint32Array;
}

/** The unfinished partial message of one stream. */
export interface Carry {
  readonly stream: ContainerStream;
  chunks: Uint8Array[];
  bytes: number;
  /** Grew past `maxMergedLineBytes`: the rest of the message is skipped and it is discarded whole. */
  overflow: boolean;
  /** When the carry started (the source's clock), for flushing carries that wait too long. */
  readonly startedAtMs: number;
  /** Callbacks run when the carry ends (merged, discarded or flushed); the source keeps its ack holds here. */
  readonly waiters: Array<(sent: Promise<void>) => void>;
}

export interface DecodedBatch {
  stdout: Lines | null;
  stderr: Lines | null;
  /** Lines that are neither format, unchanged. */
  unparsed: Lines | null;
  /** Merged messages discarded for exceeding `maxMergedLineBytes`. */
  discarded: number;
  /** Carries that ended in this batch (their message is in `stdout`/`stderr`, or was discarded). */
  completed: Carry[];
  /** Carries still open that took pieces from this batch: the batch is not done until they end. */
  open: Carry[];
}

export interface DecoderOptions {
  autoPartialMerge: boolean;
  /** Longest merged message kept; undefined for no limit. */
  maxMergedLineBytes: number | undefined;
}

/** One message: a single view, or the pieces of a merged message. */
type Message = Uint8Array | Uint8Array[];

class Group {
  readonly messages: Message[] = [];
  bytes = 0;

  add(message: Message, bytes: number): void {
    this.messages.push(message);
    this.bytes += bytes;
  }

  build(): Lines | null {
    if (this.messages.length === 0) return null;
    const data = new Uint8Array(this.bytes);
    const offsets = new Uint32Array(this.messages.length + 1);
    let at = 0;
    for (let i = 0; i < this.messages.length; i++) {
      const m = this.messages[i]!;
      if (m instanceof Uint8Array) {
        data.set(m, at);
        at += m.length;
      } else {
        for (const piece of m) {
          data.set(piece, at);
          at += piece.length;
        }
      }
      offsets[i + 1] = at;
    }
    return { data, offsets };
  }
}

export class ContainerLogDecoder {
  private readonly carries: { stdout: Carry | null; stderr: Carry | null } = { stdout: null, stderr: null };

  constructor(private readonly options: DecoderOptions) {}

  /** The unfinished partial message of `stream`, if any. */
  carry(stream: ContainerStream): Carry | null {
    return this.carries[stream];
  }

  /** Decodes one batch of raw lines (`offsets` has count + 1 entries). */
  decode(data: Uint8Array, offsets: Uint32Array, nowMs: number): DecodedBatch {
    const groups = { stdout: new Group(), stderr: new Group() };
    const unparsed = new Group();
    const completed: Carry[] = [];
    const touched = new Set<Carry>();
    let discarded = 0;
    const max = this.options.maxMergedLineBytes ?? Infinity;
    // Docker messages of this batch are unescaped here (allocated on the first one). Carried
    // partial pieces may keep views into it: each batch gets a fresh one, never reused.
    let scratch: Scratch | undefined;
    for (let i = 0; i + 1 < offsets.length; i++) {
      const line = data.subarray(offsets[i], offsets[i + 1]);
      if (scratch === undefined && line[0] === 0x7b) scratch = { buffer: new Uint8Array(data.length), at: 0 };
      const parsed = parseContainerLine(line, scratch);
      if (parsed === null) {
        unparsed.add(line, line.length);
        continue;
      }
      const { stream, message } = parsed;
      if (!this.options.autoPartialMerge) {
        groups[stream].add(message, message.length);
        continue;
      }
      let carry = this.carries[stream];
      if (parsed.partial) {
        if (carry === null) {
          carry = { stream, chunks: [], bytes: 0, overflow: false, startedAtMs: nowMs, waiters: [] };
          this.carries[stream] = carry;
        }
        touched.add(carry);
        carry.bytes += message.length;
        if (carry.overflow || carry.bytes > max) {
          carry.overflow = true;
          carry.chunks = [];
        } else {
          carry.chunks.push(message);
        }
        continue;
      }
      if (carry === null) {
        if (message.length > max) discarded++;
        else groups[stream].add(message, message.length);
        continue;
      }
      this.carries[stream] = null;
      completed.push(carry);
      const total = carry.bytes + message.length;
      if (carry.overflow || total > max) {
        discarded++;
        continue;
      }
      carry.chunks.push(message);
      groups[stream].add(carry.chunks, total);
    }
    const open = [...touched].filter((c) => this.carries[c.stream] === c);
    return { stdout: groups.stdout.build(), stderr: groups.stderr.build(), unparsed: unparsed.build(), discarded, completed, open };
  }

  /**
   * Ends the carry of `stream` now: returns its bytes as one message (null when it had overflowed
   * or there is none). The caller sends it and runs the carry's waiters.
   */
  flush(stream: ContainerStream): { carry: Carry; message: Lines | null } | null {
    const carry = this.carries[stream];
    if (carry === null) return null;
    this.carries[stream] = null;
    if (carry.overflow) return { carry, message: null };
    const group = new Group();
    group.add(carry.chunks, carry.bytes);
    return { carry, message: group.build() };
  }
}
