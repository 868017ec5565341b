/**
 * The fast path of the OTLP encoder: a JSON object line's bytes turned straight into an OTLP
 * `KeyValueList` (the record body), without JSON.parse, JS strings or objects. Strings are copied
 * as bytes, integers written from their digits.
 *
 * It must give exactly what JSON.parse followed by the OTel value rules gives, so anything it does
 * not handle the same way cheaply it refuses (returns false), and the caller rolls back and takes
 * the JSON.parse path: invalid JSON, duplicate keys (JSON.parse keeps the last value at the first
 * key's place), keys starting with a digit (JS objects list array-index keys first), nesting deeper
 * than `MAX_DEPTH`. The caller checks the line is valid UTF-8 first.
 *
 * While transcoding the top-level object it captures the values of the timestamp and severity
 * fields (mapping.ts's TIMESTAMP_FIELDS and SEVERITY_FIELDS) and of the mapping's trace and service
 * fields as JS values, for the same rules as the JSON.parse path. Members promoted to attributes
 * (`mapping.attributes`) are written, then moved out of the body into `promoted` as
 * `LogRecord.attributes` entries: the same KeyValue bytes behind another tag.
 */
import type { Writer } from './encode.js';
import { DEFAULT_MAPPING, type OtlpMapping } from './mapping.js';

/** Nesting beyond this goes to the JSON.parse path (which has no recursion limit of ours). */
export const MAX_DEPTH = 64;

// AnyValue, KeyValue and list tags (see encode.ts).
const TAG_STRING = 0x0a;
const TAG_BOOL = 0x10;
const TAG_INT = 0x18;
const TAG_DOUBLE = 0x21;
const TAG_ARRAY = 0x2a;
const TAG_KVLIST = 0x32;
const TAG_VALUES = 0x0a;
const TAG_KEY = 0x0a;
const TAG_VALUE = 0x12;

const INT64_LIMIT = 2 ** 63;
const TWO_32 = 0x1_0000_0000;

/** Captured top-level fields, in this order: the timestamp fields, then the severity fields. */
export const CAPTURED_FIELDS = ['timestamp', 'ts', 'time', 'level', 'severity'] as const;
/** Indexes in `captured` of the mapping's fields, after CAPTURED_FIELDS. */
export const CAPTURE_TRACE_ID = 5;
export const CAPTURE_SPAN_ID = 6;
export const CAPTURE_TRACE_FLAGS = 7;
export const CAPTURE_SERVICE = 8;
const CAPTURE_SLOTS = 9;
const TAG_RECORD_ATTRIBUTE = 0x32; // LogRecord.attributes = 6, LEN

/** Marks a captured string not decoded yet. */
export const RAW: unique symbol = Symbol('raw');

/** 10^0 ... 10^22, every one exact as a double. */
const POWERS_OF_TEN = Array.from({ length: 23 }, (_, i) => 10 ** i);

const QUOTE = 0x22;
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
/** Bytes a member needs beyond its key's and string value's: four tags and four one-byte prefixes. */
const MEMBER_SLACK = 16;
const BACKSLASH = 0x5c;

const utf8 = new TextEncoder();

export class JsonTranscoder {
  private data: Uint8Array = new Uint8Array(0);
  private text: Buffer = Buffer.alloc(0);
  private end = 0;
  private pos = 0;
  /** FNV-1a hashes of the keys of every object being transcoded, innermost last. */
  private hashes = new Int32Array(256);
  private hashTop = 0;
  /** Where the last string's content was written in the writer's buffer. */
  private stringStart = 0;
  private stringEnd = 0;
  private stringEscaped = false;
  /** Where the last string's content is in the line (escapes unresolved). */
  private rawStart = 0;
  private rawEnd = 0;
  /**
   * Values of CAPTURED_FIELDS in the last object: a string or number, undefined for other values
   * or absent fields, or RAW for an unescaped string still in the line at `spans` (read through
   * capturedValue() or directly from the bytes).
   */
  readonly captured: (string | number | typeof RAW | undefined)[] = new Array<undefined>(CAPTURE_SLOTS).fill(undefined);
  /** Start and end in the line of each RAW capture. */
  readonly spans = new Uint32Array(CAPTURE_SLOTS * 2);
  /** Top-level keys watched (captured, promoted or both), their FNV-1a hashes and hash bits. */
  private readonly keys: Uint8Array[] = [];
  private readonly keyHashes: Int32Array;
  /** The hash bits (as members() takes them) of the watched keys: most keys are ruled out by one test. */
  private readonly keyBits: number;
  /** Per watched key: its index in `captured`, or -1. */
  private readonly keyCapture: Int8Array;
  /** Per watched key: the encoded `KeyValue.key` of the attribute it is promoted to, or undefined. */
  private readonly keyPromote: (Uint8Array | undefined)[] = [];
  /** Pairs [to, from] of `captured` slots: a field that feeds two rules (the same key configured twice). */
  private readonly aliases: number[] = [];

  /** Captured value `k` as JSON.parse would give it (string or number), or undefined. */
  capturedValue(k: number): string | number | undefined {
    const value = this.captured[k];
    if (value !== RAW) return value;
    const decoded = this.text.toString('utf8', this.spans[k * 2], this.spans[k * 2 + 1]);
    this.captured[k] = decoded;
    return decoded;
  }

  /** The line's bytes (valid while the batch is being encoded). */
  get bytes(): Uint8Array {
    return this.data;
  }

  constructor(
    private readonly w: Writer,
    /** Receives the last object's promoted members, as `LogRecord.attributes` entries in line order. */
    readonly promoted: Writer,
    mapping: OtlpMapping = DEFAULT_MAPPING,
  ) {
    const names = [...CAPTURED_FIELDS, mapping.traceIdField, mapping.spanIdField, mapping.traceFlagsField, mapping.serviceNameField];
    const captures: number[] = [];
    const keyOf = (name: string): number => {
      let k = this.keys.findIndex((key) => Buffer.from(key).toString() === name);
      if (k === -1) {
        k = this.keys.push(utf8.encode(name)) - 1;
        captures.push(-1);
        this.keyPromote.push(undefined);
      }
      return k;
    };
    names.forEach((name, slot) => {
      if (name === '') return;
      const k = keyOf(name);
      if (captures[k] === -1) captures[k] = slot;
      else this.aliases.push(slot, captures[k]!);
    });
    for (const { field, name } of mapping.attributes) {
      const bytes = utf8.encode(name);
      const size = varintBytes(bytes.length);
      const key = new Uint8Array(1 + size + bytes.length);
      key[0] = TAG_KEY;
      for (let value = bytes.length, i = 1; i <= size; i++, value = Math.floor(value / 128)) key[i] = i < size ? (value & 0x7f) | 0x80 : value;
      key.set(bytes, 1 + size);
      this.keyPromote[keyOf(field)] = key;
    }
    this.keyHashes = Int32Array.from(this.keys, fnv1a);
    this.keyBits = this.keyHashes.reduce((bits, hash) => bits | (1 << (hash >>> 27)), 0);
    this.keyCapture = Int8Array.from(captures);
  }

  /**
   * Writes the `KeyValueList` content of the object in `data[start, end)` (first byte `{`,
   * leading blanks already skipped). False: not written as JSON.parse would see it; the caller
   * restores the writer's position.
   */
  object(data: Uint8Array, text: Buffer, start: number, end: number): boolean {
    this.data = data;
    this.text = text;
    this.end = end;
    this.pos = start;
    this.hashTop = 0;
    this.promoted.pos = 0;
    const captured = this.captured;
    for (let i = 0; i < captured.length; i++) captured[i] = undefined;
    try {
      if (!this.members(0)) return false;
    } catch {
      // A RangeError from an unexpectedly deep stack, or anything else unforeseen: slow path.
      return false;
    }
    this.skipBlanks();
    const aliases = this.aliases;
    for (let i = 0; i < aliases.length; i += 2) {
      const to = aliases[i]!;
      const from = aliases[i + 1]!;
      captured[to] = captured[from];
      this.spans[to * 2] = this.spans[from * 2]!;
      this.spans[to * 2 + 1] = this.spans[from * 2 + 1]!;
    }
    return this.pos === end;
  }

  /** The byte at `pos`, or -1 at the end of the line (the batch's next line must not be read). */
  private peek(): number {
    return this.pos < this.end ? this.data[this.pos]! : -1;
  }

  private skipBlanks(): void {
    const data = this.data;
    const end = this.end;
    let pos = this.pos;
    while (pos < end) {
      const c = data[pos]!;
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      pos++;
    }
    this.pos = pos;
  }

  /**
   * At `{`: writes each member as a `KeyValueList.values` entry. The common member (a plain key and
   * a plain string, number or literal value) is written here with local positions and one-byte
   * length prefixes patched in place; escapes, nested values and lengths of 128 bytes or more go
   * through the general paths (string(), value(), Writer.end()).
   */
  private members(depth: number): boolean {
    if (depth > MAX_DEPTH) return false;
    const w = this.w;
    const data = this.data;
    const end = this.end;
    let pos = skipBlanks(data, this.pos + 1, end);
    if (pos < end && data[pos] === 0x7d) {
      this.pos = pos + 1;
      return true;
    }
    const base = this.hashTop;
    // One bit per key hash seen in this object: most keys need no scan for duplicates.
    let seen = 0;
    for (;;) {
      if (pos >= end || data[pos] !== QUOTE) return false;
      // Room for this member's tags and prefixes, and for its key and a plain string value, which
      // together are no longer than the rest of the line.
      w.ensure(end - pos + MEMBER_SLACK);
      let buf = w.buf;
      const entry = w.pos;
      buf[entry] = TAG_VALUES;
      buf[entry + 2] = TAG_KEY;
      let out = entry + 4;
      let hash = FNV_OFFSET;
      let p = pos + 1;
      let c = 0;
      for (;;) {
        if (p >= end) return false;
        c = data[p]!;
        if (c === QUOTE || c === BACKSLASH || c < 0x20) break;
        buf[out++] = c;
        hash = Math.imul(hash ^ c, FNV_PRIME);
        p++;
      }
      let keyStart = entry + 4;
      let keyEnd = out;
      if (c === QUOTE) {
        p++;
        const length = out - keyStart;
        if (length < 0x80) {
          buf[entry + 3] = length;
        } else {
          w.pos = out;
          w.end(entry + 3, 1);
          buf = w.buf;
          out = w.pos;
          keyEnd = out;
          keyStart = out - length;
        }
      } else {
        if (c !== BACKSLASH) return false;
        w.pos = entry + 3;
        this.pos = pos;
        if (!this.string()) return false;
        buf = w.buf;
        out = w.pos;
        keyStart = this.stringStart;
        keyEnd = this.stringEnd;
        p = this.pos;
        hash = FNV_OFFSET;
        for (let i = keyStart; i < keyEnd; i++) hash = Math.imul(hash ^ buf[i]!, FNV_PRIME);
      }
      // Integer-like keys would be reordered by a JS object: let JSON.parse decide.
      if (keyEnd > keyStart && buf[keyStart]! >= 0x30 && buf[keyStart]! <= 0x39) return false;
      const bit = 1 << (hash >>> 27);
      if ((seen & bit) !== 0) {
        for (let i = base; i < this.hashTop; i++) if (this.hashes[i] === hash) return false;
      }
      seen |= bit;
      if (this.hashTop === this.hashes.length) {
        const grown = new Int32Array(this.hashes.length * 2);
        grown.set(this.hashes);
        this.hashes = grown;
      }
      this.hashes[this.hashTop++] = hash;
      const watched = depth === 0 && (bit & this.keyBits) !== 0 ? this.keyIndex(hash, buf, keyStart, keyEnd) : -1;
      const capture = watched >= 0 ? this.keyCapture[watched]! : -1;

      // Blanks are rare in machine-written lines: look for them only where the next byte is one.
      if (p < end && data[p] === 0x3a) {
        p++;
      } else {
        p = skipBlanks(data, p, end);
        if (p >= end || data[p] !== 0x3a) return false;
        p++;
      }
      if (p >= end) return false;
      if (data[p]! <= 0x20) {
        p = skipBlanks(data, p, end);
        if (p >= end) return false;
      }
      const valueAt = out;
      buf[valueAt] = TAG_VALUE;
      out += 2;
      c = data[p]!;
      if (c === QUOTE) {
        buf[out] = TAG_STRING;
        const prefix = out + 1;
        out += 2;
        const at = out;
        let q = p + 1;
        for (;;) {
          if (q >= end) return false;
          c = data[q]!;
          if (c === QUOTE || c === BACKSLASH || c < 0x20) break;
          buf[out++] = c;
          q++;
        }
        if (c === QUOTE) {
          const length = out - at;
          this.stringEscaped = false;
          this.rawStart = p + 1;
          this.rawEnd = q;
          if (capture >= 0) this.captureRaw(capture);
          p = q + 1;
          if (length < 0x80 - 2) {
            buf[prefix] = length;
            buf[valueAt + 1] = length + 2;
          } else {
            w.pos = out;
            w.end(prefix, 1);
            w.end(valueAt + 1, 1);
            buf = w.buf;
            out = w.pos;
          }
        } else {
          if (c !== BACKSLASH) return false;
          w.pos = prefix;
          this.pos = p;
          if (!this.string()) return false;
          if (capture >= 0) this.captureString(capture);
          w.end(valueAt + 1, 1);
          buf = w.buf;
          out = w.pos;
          p = this.pos;
        }
      } else {
        w.pos = out;
        this.pos = p;
        if (!this.value(depth + 1, capture)) return false;
        buf = w.buf;
        out = w.pos;
        p = this.pos;
        const length = out - valueAt - 2;
        if (length < 0x80) {
          buf[valueAt + 1] = length;
        } else {
          w.end(valueAt + 1, 1);
          buf = w.buf;
          out = w.pos;
        }
      }
      const length = out - entry - 2;
      if (length < 0x80) {
        buf[entry + 1] = length;
        w.pos = out;
      } else {
        w.pos = out;
        w.end(entry + 1, 1);
      }
      if (watched >= 0) {
        const key = this.keyPromote[watched];
        if (key !== undefined) this.promote(entry, key);
      }
      if (p >= end) return false;
      c = data[p]!;
      if (c <= 0x20) {
        p = skipBlanks(data, p, end);
        if (p >= end) return false;
        c = data[p]!;
      }
      if (c === 0x2c) {
        pos = p + 1;
        if (pos < end && data[pos]! <= 0x20) pos = skipBlanks(data, pos, end);
        continue;
      }
      if (c === 0x7d) {
        this.pos = p + 1;
        this.hashTop = base;
        return true;
      }
      return false;
    }
  }

  /**
   * Moves the member written at `entry` (up to the writer's position) out of the body, into
   * `promoted` as a `LogRecord.attributes` entry named by `key` (an encoded `KeyValue.key`).
   */
  private promote(entry: number, key: Uint8Array): void {
    const w = this.w;
    const buf = w.buf;
    const end = w.pos;
    // Past the entry's tag and length, then the KeyValue's key: what is left is its value field.
    let at = entry + 1;
    while (buf[at]! >= 0x80) at++;
    at += 2;
    let keyLength = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = buf[at++]!;
      keyLength += (b & 0x7f) * shift;
      if (b < 0x80) break;
    }
    at += keyLength;
    // Short runs: copied byte by byte, which beats a subarray and a native call.
    const out = this.promoted;
    const size = key.length + end - at;
    out.ensure(size + 6);
    const target = out.buf;
    let pos = out.pos;
    target[pos++] = TAG_RECORD_ATTRIBUTE;
    for (let value = size; ; value = Math.floor(value / 128)) {
      if (value < 0x80) {
        target[pos++] = value;
        break;
      }
      target[pos++] = (value & 0x7f) | 0x80;
    }
    for (let i = 0; i < key.length; i++) target[pos++] = key[i]!;
    for (let i = at; i < end; i++) target[pos++] = buf[i]!;
    out.pos = pos;
    w.pos = entry;
  }

  /** Captures the last string read (see `captured`), still in the line. */
  private captureRaw(capture: number): void {
    this.captured[capture] = RAW;
    this.spans[capture * 2] = this.rawStart;
    this.spans[capture * 2 + 1] = this.rawEnd;
  }

  /** Captures the last string read: from the line if it had no escapes, else as written. */
  private captureString(capture: number): void {
    if (!this.stringEscaped) {
      // Decoded only if needed (capturedValue): the timestamp and level are usually read from the bytes.
      this.captureRaw(capture);
      return;
    }
    // The JS string JSON.parse would give: what was written, escapes resolved.
    const buf = this.w.buf;
    this.captured[capture] = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8', this.stringStart, this.stringEnd);
  }

  /** At `[`: writes each item as an `ArrayValue.values` entry. */
  private items(depth: number): boolean {
    if (depth > MAX_DEPTH) return false;
    const w = this.w;
    this.pos++;
    this.skipBlanks();
    if (this.peek() === 0x5d) {
      this.pos++;
      return true;
    }
    for (;;) {
      w.byte(TAG_VALUES);
      const item = w.begin(1);
      if (!this.value(depth + 1, -1)) return false;
      w.end(item, 1);
      this.skipBlanks();
      const c = this.peek();
      if (c === 0x2c) {
        this.pos++;
        this.skipBlanks();
        continue;
      }
      if (c === 0x5d) {
        this.pos++;
        return true;
      }
      return false;
    }
  }

  /** An AnyValue's content for the JSON value at `pos`; captures it when `capture` >= 0. */
  private value(depth: number, capture: number): boolean {
    const w = this.w;
    const c = this.peek();
    switch (c) {
      case QUOTE: {
        w.byte(TAG_STRING);
        if (!this.string()) return false;
        if (capture >= 0) this.captureString(capture);
        return true;
      }
      case 0x7b: {
        // One byte for the length: nested objects in logs are mostly small, and a wrong guess
        // costs a move of the content either way.
        w.byte(TAG_KVLIST);
        const start = w.begin(1);
        if (!this.members(depth)) return false;
        w.end(start, 1);
        return true;
      }
      case 0x5b: {
        w.byte(TAG_ARRAY);
        const start = w.begin(1);
        if (!this.items(depth)) return false;
        w.end(start, 1);
        return true;
      }
      case 0x74: // true
        if (!this.literal(0x72, 0x75, 0x65, -1)) return false;
        w.byte(TAG_BOOL);
        w.byte(1);
        return true;
      case 0x66: // false
        if (!this.literal(0x61, 0x6c, 0x73, 0x65)) return false;
        w.byte(TAG_BOOL);
        w.byte(0);
        return true;
      case 0x6e: // null: an empty AnyValue
        return this.literal(0x75, 0x6c, 0x6c, -1);
      default:
        return this.number(capture);
    }
  }

  /** The rest of `true`, `false` or `null` after its first byte (`d` is -1 for 4-letter words). */
  private literal(a: number, b: number, c: number, d: number): boolean {
    const data = this.data;
    const pos = this.pos;
    const length = d === -1 ? 4 : 5;
    if (pos + length > this.end || data[pos + 1] !== a || data[pos + 2] !== b || data[pos + 3] !== c) return false;
    if (d !== -1 && data[pos + 4] !== d) return false;
    this.pos = pos + length;
    return true;
  }

  /** A JSON number, by the OTel rule: integers in int64 range as int_value, the rest as double_value. */
  private number(capture: number): boolean {
    const data = this.data;
    const end = this.end;
    const start = this.pos;
    let pos = start;
    const negative = data[pos] === 0x2d;
    if (negative) pos++;
    if (pos >= end) return false;
    const first = data[pos]!;
    if (first < 0x30 || first > 0x39) return false;
    // All digits (integer and fraction) as one integer mantissa, exact while it has at most 15.
    let mantissa = 0;
    let significant = 0;
    if (first === 0x30) {
      pos++;
    } else {
      while (pos < end) {
        const d = data[pos]! - 0x30;
        if (d < 0 || d > 9) break;
        mantissa = mantissa * 10 + d;
        significant++;
        pos++;
      }
    }
    let fractionDigits = 0;
    if (pos < end && data[pos] === 0x2e) {
      pos++;
      const fraction = pos;
      while (pos < end) {
        const d = data[pos]! - 0x30;
        if (d < 0 || d > 9) break;
        if (significant > 0 || d !== 0) significant++;
        mantissa = mantissa * 10 + d;
        pos++;
      }
      fractionDigits = pos - fraction;
      if (fractionDigits === 0) return false;
    }
    let exponent = false;
    const e = pos < end ? data[pos] : -1;
    if (e === 0x65 || e === 0x45) {
      exponent = true;
      pos++;
      if (pos < end && (data[pos] === 0x2b || data[pos] === 0x2d)) pos++;
      const digits = pos;
      while (pos < end && data[pos]! >= 0x30 && data[pos]! <= 0x39) pos++;
      if (pos === digits) return false;
    }
    this.pos = pos;
    // An exact mantissa divided by an exact power of ten is one correctly rounded operation: the
    // same double as parsing the text (Clinger's fast path). Anything else is left to Number.
    let value: number;
    if (!exponent && significant <= 15 && fractionDigits <= 22) {
      value = fractionDigits === 0 ? mantissa : mantissa / POWERS_OF_TEN[fractionDigits]!;
      if (negative) value = -value;
    } else {
      value = Number(this.text.toString('latin1', start, pos));
    }
    if (capture >= 0) this.captured[capture] = value;
    const w = this.w;
    if (Number.isInteger(value) && value >= -INT64_LIMIT && value < INT64_LIMIT) {
      w.byte(TAG_INT);
      if (value >= 0 && value < TWO_32) w.varint(value);
      else w.int64(value);
    } else {
      w.byte(TAG_DOUBLE);
      w.double(value);
    }
    return true;
  }

  /**
   * At `"`: writes a length-delimited string. Without escapes the bytes are copied as they are
   * (the line was checked to be valid UTF-8); escapes are decoded as JSON.parse does, lone
   * surrogates becoming U+FFFD as UTF-8 encoding a JS string does. Control bytes are invalid JSON.
   */
  private string(): boolean {
    // One pass for the common case: copy while looking for the closing quote, behind a one-byte
    // length prefix (moved if the string turns out to be 128 bytes or more). An escape sends
    // the string to the general path.
    const data = this.data;
    const end = this.end;
    const start = this.pos + 1;
    const w = this.w;
    w.ensure(end - start + 1);
    const buf = w.buf;
    const at = w.pos + 1;
    let pos = start;
    let out = at;
    for (;;) {
      if (pos >= end) return false;
      const c = data[pos]!;
      if (c === QUOTE) break;
      if (c === BACKSLASH) return this.escapedString();
      if (c < 0x20) return false;
      buf[out++] = c;
      pos++;
    }
    this.pos = pos + 1;
    this.stringEscaped = false;
    this.rawStart = start;
    this.rawEnd = pos;
    const length = out - at;
    if (length < 0x80) {
      buf[at - 1] = length;
      w.pos = out;
      this.stringStart = at;
      this.stringEnd = out;
      return true;
    }
    const size = varintBytes(length);
    w.pos = out;
    w.ensure(size - 1);
    const moved = w.buf;
    moved.copyWithin(at - 1 + size, at, out);
    let p = at - 1;
    let value = length;
    while (value >= 0x80) {
      moved[p++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    moved[p] = value;
    w.pos = at - 1 + size + length;
    this.stringStart = at - 1 + size;
    this.stringEnd = w.pos;
    return true;
  }

  /** A string with escapes (scanned again from its start). */
  private escapedString(): boolean {
    const data = this.data;
    const end = this.end;
    let pos = this.pos + 1;
    const start = pos;
    let escaped = false;
    for (;;) {
      if (pos >= end) return false;
      const c = data[pos]!;
      if (c === QUOTE) break;
      if (c < 0x20) return false;
      if (c === BACKSLASH) {
        escaped = true;
        pos += 2;
        continue;
      }
      pos++;
    }
    this.pos = pos + 1;
    const length = pos - start;
    const w = this.w;
    this.stringEscaped = escaped;
    this.rawStart = start;
    this.rawEnd = pos;
    if (!escaped) {
      w.varint(length);
      w.ensure(length);
      const buf = w.buf;
      const at = w.pos;
      if (length < 24) for (let i = 0; i < length; i++) buf[at + i] = data[start + i]!;
      else buf.set(data.subarray(start, pos), at);
      w.pos = at + length;
      this.stringStart = at;
      this.stringEnd = at + length;
      return true;
    }
    // Decoded text is never longer than its escaped form, so the prefix reserved for it fits or shrinks.
    const reserve = varintBytes(length);
    const prefix = w.begin(reserve);
    w.ensure(length);
    const buf = w.buf;
    let out = w.pos;
    for (let i = start; i < pos; ) {
      const c = data[i]!;
      if (c !== BACKSLASH) {
        buf[out++] = c;
        i++;
        continue;
      }
      const kind = data[i + 1]!;
      i += 2;
      switch (kind) {
        case 0x22:
        case 0x5c:
        case 0x2f:
          buf[out++] = kind;
          break;
        case 0x62:
          buf[out++] = 0x08;
          break;
        case 0x66:
          buf[out++] = 0x0c;
          break;
        case 0x6e:
          buf[out++] = 0x0a;
          break;
        case 0x72:
          buf[out++] = 0x0d;
          break;
        case 0x74:
          buf[out++] = 0x09;
          break;
        case 0x75: {
          let unit = hex4(data, i, pos);
          if (unit < 0) return false;
          i += 4;
          if (unit >= 0xd800 && unit <= 0xdbff) {
            const low = i + 1 < pos && data[i] === BACKSLASH && data[i + 1] === 0x75 ? hex4(data, i + 2, pos) : -1;
            if (low >= 0xdc00 && low <= 0xdfff) {
              unit = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
              i += 6;
            } else {
              unit = 0xfffd;
            }
          } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            unit = 0xfffd;
          }
          out = putUtf8(buf, out, unit);
          break;
        }
        default:
          return false;
      }
    }
    w.pos = out;
    w.end(prefix, reserve);
    // end() may have moved the content left by the difference in prefix size.
    const moved = reserve - varintBytes(out - prefix - reserve);
    this.stringStart = prefix + reserve - moved;
    this.stringEnd = out - moved;
    return true;
  }

  /** Index in `keys` of the key in `buf[start, end)` whose FNV-1a hash is `hash`, or -1. */
  private keyIndex(hash: number, buf: Uint8Array, start: number, end: number): number {
    const hashes = this.keyHashes;
    for (let k = 0; k < hashes.length; k++) {
      if (hashes[k] !== hash) continue;
      const name = this.keys[k]!;
      const length = end - start;
      if (name.length !== length) continue;
      let i = 0;
      while (i < length && buf[start + i] === name[i]) i++;
      if (i === length) return k;
    }
    return -1;
  }

  /** Whether the last string written had escapes (for tests). */
  get lastStringEscaped(): boolean {
    return this.stringEscaped;
  }
}

/** The first position at or after `pos` (before `end`) that is not JSON whitespace. */
function skipBlanks(data: Uint8Array, pos: number, end: number): number {
  while (pos < end) {
    const c = data[pos]!;
    if (c > 0x20 || (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d)) return pos;
    pos++;
  }
  return pos;
}

/** FNV-1a hash of `bytes`, as members() computes it for keys. */
function fnv1a(bytes: Uint8Array): number {
  let hash = FNV_OFFSET;
  for (const c of bytes) hash = Math.imul(hash ^ c, FNV_PRIME);
  return hash;
}

function varintBytes(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** Four hex digits at `at` (before `limit`) as a number, or -1. */
function hex4(data: Uint8Array, at: number, limit: number): number {
  if (at + 4 > limit) return -1;
  let value = 0;
  for (let i = at; i < at + 4; i++) {
    const c = data[i]!;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

/** UTF-8 of one code point at `out`; returns the new end. */
function putUtf8(buf: Uint8Array, out: number, code: number): number {
  if (code < 0x80) {
    buf[out++] = code;
  } else if (code < 0x800) {
    buf[out++] = 0xc0 | (code >> 6);
    buf[out++] = 0x80 | (code & 0x3f);
  } else if (code < 0x10000) {
    buf[out++] = 0xe0 | (code >> 12);
    buf[out++] = 0x80 | ((code >> 6) & 0x3f);
    buf[out++] = 0x80 | (code & 0x3f);
  } else {
    buf[out++] = 0xf0 | (code >> 18);
    buf[out++] = 0x80 | ((code >> 12) & 0x3f);
    buf[out++] = 0x80 | ((code >> 6) & 0x3f);
    buf[out++] = 0x80 | (code & 0x3f);
  }
  return out;
}
