/**
 * Container log line formats, parsed on bytes (no JS strings on the hot path).
 *
 * CRI (containerd, CRI-O): `<RFC3339Nano time> <stdout|stderr> <P|F>[:<more tags>] <message>`.
 * The runtime splits a long write into `P` (partial) lines and ends it with an `F` (full) line;
 * the message carries no trailing newline.
 *
 * Docker json-file: `{"log":"<message>\n","stream":"stdout","time":"..."}`. Docker splits long
 * writes at 16 KiB; a piece whose `log` does not end in `\n` is partial, the last one keeps it.
 * The trailing `\n` is not part of the message.
 */

export type ContainerStream = 'stdout' | 'stderr';

export interface ParsedLine {
  stream: ContainerStream;
  /** More pieces of the same message follow (CRI `P`, Docker `log` without its final `\n`). */
  partial: boolean;
  /** The container's bytes: a view into the input line (CRI) or a fresh array (Docker, unescaped). */
  message: Uint8Array;
}

const SPACE = 0x20;
const COLON = 0x3a;
const LBRACE = 0x7b;
const NEWLINE = 0x0a;

const STDOUT = new TextEncoder().encode('stdout');
const STDERR = new TextEncoder().encode('stderr');

/**
 * Where Docker messages are unescaped: a region shared by the lines of one batch, so a batch costs
 * one allocation instead of one per line. `at` advances past each decoded message.
 */
export interface Scratch {
  buffer: Uint8Array;
  at: number;
}

/**
 * Picks the format per line, as Vector does: a line starting with `{` is Docker json-file. Docker
 * messages are decoded into `scratch` when it has room for the line, else into a new array.
 */
export function parseContainerLine(line: Uint8Array, scratch?: Scratch): ParsedLine | null {
  return line.length > 0 && line[0] === LBRACE ? parseDockerLine(line, scratch) : parseCriLine(line);
}

function equalsAt(line: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (line[start + i] !== word[i]) return false;
  return true;
}

function streamOf(line: Uint8Array, start: number, end: number): ContainerStream | null {
  if (equalsAt(line, start, end, STDOUT)) return 'stdout';
  if (equalsAt(line, start, end, STDERR)) return 'stderr';
  return null;
}

/** Parses one CRI line, or returns null when it is not one. */
export function parseCriLine(line: Uint8Array): ParsedLine | null {
  const timeEnd = line.indexOf(SPACE);
  // The time is RFC 3339: it starts with a year. Checking more would cost per line for no gain.
  if (timeEnd < 1 || line[0]! < 0x30 || line[0]! > 0x39) return null;
  const streamEnd = line.indexOf(SPACE, timeEnd + 1);
  if (streamEnd === -1) return null;
  const stream = streamOf(line, timeEnd + 1, streamEnd);
  if (stream === null) return null;
  // Tags: `P` or `F`, possibly followed by `:`-separated tags the CRI may add later.
  const tag = line[streamEnd + 1];
  if (tag !== 0x50 && tag !== 0x46) return null;
  let at = streamEnd + 2;
  if (at < line.length && line[at] === COLON) {
    const tagsEnd = line.indexOf(SPACE, at);
    at = tagsEnd === -1 ? line.length : tagsEnd;
  }
  // `<tags> <message>`; an empty message may be written without the separating space.
  if (at < line.length && line[at] !== SPACE) return null;
  const messageStart = Math.min(at + 1, line.length);
  return { stream, partial: tag === 0x50, message: line.subarray(messageStart) };
}

/** Parses one Docker json-file line, or returns null when it is not one. */
export function parseDockerLine(line: Uint8Array, scratch?: Scratch): ParsedLine | null {
  const reader = new JsonBytes(line);
  let log: Uint8Array | null = null;
  let stream: ContainerStream | null = null;
  if (!reader.expect(LBRACE)) return null;
  reader.skipSpace();
  if (reader.peek() === 0x7d) return null; // `{}`: no log field.
  for (;;) {
    const key = reader.stringRange();
    if (key === null || !reader.expect(COLON)) return null;
    reader.skipSpace();
    if (equalsAt(line, key[0], key[1], LOG_KEY)) {
      // Unescaped output is never longer than the escaped line.
      const room = scratch !== undefined && scratch.buffer.length - scratch.at >= line.length;
      const out = room ? scratch.buffer.subarray(scratch.at, scratch.at + line.length) : new Uint8Array(line.length);
      log = reader.decodeString(out);
      if (log === null) return null;
      // The bytes stay in use until the batch is built; a failed parse leaves nothing to keep.
      if (room) scratch.at += log.length;
    } else if (equalsAt(line, key[0], key[1], STREAM_KEY)) {
      const range = reader.stringRange();
      if (range === null) return null;
      stream = streamOf(line, range[0], range[1]);
      if (stream === null) return null;
    } else if (!reader.skipValue()) {
      return null;
    }
    reader.skipSpace();
    if (reader.peek() === 0x2c) {
      reader.pos++;
      reader.skipSpace();
      continue;
    }
    if (!reader.expect(0x7d)) return null;
    break;
  }
  if (log === null || stream === null) return null;
  const complete = log.length > 0 && log[log.length - 1] === NEWLINE;
  return { stream, partial: !complete, message: complete ? log.subarray(0, log.length - 1) : log };
}

const LOG_KEY = new TextEncoder().encode('log');
const STREAM_KEY = new TextEncoder().encode('stream');

/** Just enough JSON, on bytes, for Docker's flat records (other fields are skipped, not decoded). */
class JsonBytes {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}

  peek(): number | undefined {
    return this.b[this.pos];
  }

  skipSpace(): void {
    for (;;) {
      const c = this.b[this.pos];
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.pos++;
    }
  }

  expect(c: number): boolean {
    this.skipSpace();
    if (this.b[this.pos] !== c) return false;
    this.pos++;
    return true;
  }

  /** The raw bytes between the quotes of a string without escapes, or null. */
  stringRange(): [number, number] | null {
    if (this.b[this.pos] !== 0x22) return null;
    const start = this.pos + 1;
    for (let i = start; i < this.b.length; i++) {
      const c = this.b[i]!;
      if (c === 0x5c) return null;
      if (c === 0x22) {
        this.pos = i + 1;
        return [start, i];
      }
    }
    return null;
  }

  /** Decodes a JSON string into `out` as UTF-8; escapes are resolved, `\u` pairs combined. */
  decodeString(out: Uint8Array): Uint8Array | null {
    const b = this.b;
    if (b[this.pos] !== 0x22) return null;
    let n = 0;
    let i = this.pos + 1;
    while (i < b.length) {
      const c = b[i]!;
      if (c === 0x22) {
        this.pos = i + 1;
        return out.subarray(0, n);
      }
      if (c !== 0x5c) {
        out[n++] = c;
        i++;
        continue;
      }
      const e = b[i + 1];
      i += 2;
      switch (e) {
        case 0x22:
        case 0x5c:
        case 0x2f:
          out[n++] = e;
          break;
        case 0x62:
          out[n++] = 0x08;
          break;
        case 0x66:
          out[n++] = 0x0c;
          break;
        case 0x6e:
          out[n++] = 0x0a;
          break;
        case 0x72:
          out[n++] = 0x0d;
          break;
        case 0x74:
          out[n++] = 0x09;
          break;
        case 0x75: {
          let cp = hex4(b, i);
          if (cp < 0) return null;
          i += 4;
          if (cp >= 0xd800 && cp <= 0xdbff && b[i] === 0x5c && b[i + 1] === 0x75) {
            const low = hex4(b, i + 2);
            if (low >= 0xdc00 && low <= 0xdfff) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
              i += 6;
            }
          }
          // A lone surrogate cannot be UTF-8: write U+FFFD, as TextDecoder would.
          if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
          n = putUtf8(out, n, cp);
          break;
        }
        default:
          return null;
      }
    }
    return null;
  }

  /** Skips any JSON value (strings with escapes, nested objects and arrays, literals). */
  skipValue(): boolean {
    const b = this.b;
    let depth = 0;
    while (this.pos < b.length) {
      const c = b[this.pos]!;
      if (c === 0x22) {
        let i = this.pos + 1;
        while (i < b.length && b[i] !== 0x22) i += b[i] === 0x5c ? 2 : 1;
        if (i >= b.length) return false;
        this.pos = i + 1;
      } else if (c === 0x7b || c === 0x5b) {
        depth++;
        this.pos++;
      } else if (c === 0x7d || c === 0x5d) {
        if (depth === 0) return true;
        depth--;
        this.pos++;
      } else if (c === 0x2c && depth === 0) {
        return true;
      } else {
        this.pos++;
      }
      if (depth === 0 && (c === 0x22 || c === 0x7d || c === 0x5d)) return true;
    }
    return depth === 0;
  }
}

function hex4(b: Uint8Array, at: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) {
    const c = b[at + k];
    if (c === undefined) return -1;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// `\uXXXX` is 6 input bytes and at most 3 output bytes; a surrogate pair is 12 in, 4 out: it fits.
function putUtf8(out: Uint8Array, n: number, cp: number): number {
  if (cp < 0x80) {
    out[n++] = cp;
  } else if (cp < 0x800) {
    out[n++] = 0xc0 | (cp >> 6);
    out[n++] = 0x80 | (cp & 0x3f);
  } else if (cp < 0x10000) {
    out[n++] = 0xe0 | (cp >> 12);
    out[n++] = 0x80 | ((cp >> 6) & 0x3f);
    out[n++] = 0x80 | (cp & 0x3f);
  } else {
    out[n++] = 0xf0 | (cp >> 18);
    out[n++] = 0x80 | ((cp >> 12) & 0x3f);
    out[n++] = 0x80 | ((cp >> 6) & 0x3f);
    out[n++] = 0x80 | (cp & 0x3f);
  }
  return n;
}
