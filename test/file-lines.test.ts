import { describe, expect, it } from 'vitest';
import { LineSplitter, type SplitResult } from '../src/sources/file/lines.js';
import { AckTracker } from '../src/sources/file/acks.js';

const enc = new TextEncoder();

function collect(results: SplitResult[]): Buffer[] {
  const out: Buffer[] = [];
  for (const r of results) {
    for (const p of r.pieces) {
      expect(p.offsets[0]).toBe(0);
      expect(p.offsets[p.offsets.length - 1]).toBe(p.data.byteLength);
      for (let i = 0; i + 1 < p.offsets.length; i++) out.push(Buffer.from(p.data.subarray(p.offsets[i], p.offsets[i + 1])));
    }
  }
  return out;
}

/** Feeds `input` in chunks of the given sizes (cycled) through `push` or through `splitPrefixed` with a reused buffer. */
function feed(splitter: LineSplitter, input: Uint8Array, sizes: number[], prefixed: boolean): SplitResult[] {
  const results: SplitResult[] = [];
  const shared = new Uint8Array(input.byteLength + 64);
  let at = 0;
  let k = 0;
  while (at < input.byteLength) {
    const n = Math.min(sizes[k++ % sizes.length]!, input.byteLength - at);
    const chunk = input.subarray(at, at + n);
    if (prefixed) {
      const held = splitter.held;
      shared.set(held, 0);
      shared.set(chunk, held.byteLength);
      results.push(splitter.splitPrefixed(shared.subarray(0, held.byteLength + n)));
      shared.fill(0xee); // The splitter must not keep views into the reused buffer.
    } else {
      results.push(splitter.push(chunk));
    }
    at += n;
  }
  return results;
}

describe('LineSplitter', () => {
  it('pieces of hundreds of lines come out whole, with their line ends, past the splitter\'s first room for 64 lines', () => {
    const lines = Array.from({ length: 700 }, (_, i) => `line ${i} ${'x'.repeat(i % 17)}`);
    const input = enc.encode(lines.map((l) => `${l}\n`).join(''));
    const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 1000, maxBatchLines: 300, trackLineEnds: true, position: 10 });
    const results = feed(splitter, input, [input.byteLength], false);
    const pieces = results.flatMap((r) => r.pieces);
    expect(pieces.map((p) => p.offsets.length - 1)).toEqual([300, 300, 100]);
    expect(collect(results).map((b) => b.toString())).toEqual(lines);
    let end = 10;
    const ends = lines.map((l) => (end += enc.encode(l).byteLength + 1));
    expect(pieces.flatMap((p) => [...p.lineEnds!])).toEqual(ends);
  });

  const text = 'héllo wörld\n日本語のログ行\n\n🙂 emoji 🙂 line\r\nlast\n';
  const bytes = enc.encode(text);
  const expected = text.split('\n').slice(0, -1).map((l) => Buffer.from(enc.encode(l)));

  for (const prefixed of [false, true]) {
    it(`splits byte-exact for every chunk size, multibyte characters cut anywhere (${prefixed ? 'splitPrefixed' : 'push'})`, () => {
      for (let size = 1; size <= bytes.byteLength; size++) {
        const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 1000, maxBatchLines: 2 });
        const results = feed(splitter, bytes, [size, size + 3], prefixed);
        expect(collect(results), `chunk size ${size}`).toEqual(expected);
        expect(splitter.end).toBe(bytes.byteLength);
        expect(splitter.held.byteLength).toBe(0);
      }
    });
  }

  it('keeps "\\r" before "\\n" (bytes exact, as Vector)', () => {
    const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 100, maxBatchLines: 10 });
    expect(collect([splitter.push(enc.encode('a\r\nb\n'))])).toEqual([Buffer.from('a\r'), Buffer.from('b')]);
  });

  it('splits on a multi-byte delimiter cut across chunks', () => {
    const input = enc.encode('one\r\ntwo\rstill two\r\n\r\nfour\r\n');
    for (let size = 1; size <= input.byteLength; size++) {
      const splitter = new LineSplitter({ delimiter: enc.encode('\r\n'), maxLineBytes: 100, maxBatchLines: 3 });
      expect(collect(feed(splitter, input, [size], size % 2 === 0)), `chunk size ${size}`).toEqual(
        ['one', 'two\rstill two', '', 'four'].map((s) => Buffer.from(s)),
      );
      expect(splitter.end).toBe(input.byteLength);
    }
  });

  it('gives each piece the absolute end offset of its last line, starting from the given position', () => {
    const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 100, maxBatchLines: 2, position: 1000 });
    const r = splitter.push(enc.encode('a\nbb\nccc\ndd'));
    expect(r.pieces.map((p) => p.end)).toEqual([1005, 1009]);
    expect(r.end).toBe(1009);
    expect(splitter.position).toBe(1011);
    expect(Buffer.from(splitter.held).toString()).toBe('dd');
  });

  it('discards a line longer than maxLineBytes, counts it, and keeps the next line intact', () => {
    const long = 'x'.repeat(50);
    const input = enc.encode(`ok1\n${long}\nok2\n${'y'.repeat(10)}\nok3\n`);
    for (let size = 1; size <= input.byteLength; size += 3) {
      const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 10, maxBatchLines: 100 });
      const results = feed(splitter, input, [size], size % 2 === 1);
      expect(collect(results), `chunk size ${size}`).toEqual(['ok1', 'ok2', 'y'.repeat(10), 'ok3'].map((s) => Buffer.from(s)));
      expect(results.reduce((n, r) => n + r.discarded, 0)).toBe(1);
      expect(splitter.end).toBe(input.byteLength);
      // Never holds much more than one line's worth, however long the discarded line is.
      expect(splitter.held.byteLength).toBeLessThanOrEqual(10);
    }
  });

  it('gives each piece a buffer of its own, exactly its lines, whatever sits between them', () => {
    // Empty lines, a two-byte delimiter and discarded lines between kept ones: the piece is built
    // by one bulk copy plus in-place moves, and the lines near its end come from the read buffer.
    const kept = ['a', '', 'bb', 'x'.repeat(8), '', 'é€', 'last'];
    const text = `a\r\n\r\nbb\r\n${'L'.repeat(30)}\r\n${'x'.repeat(8)}\r\n\r\n${'M'.repeat(40)}\r\né€\r\nlast\r\n`;
    const input = enc.encode(text);
    for (const maxBatchLines of [1, 2, 3, 100]) {
      const splitter = new LineSplitter({ delimiter: enc.encode('\r\n'), maxLineBytes: 10, maxBatchLines });
      const results = feed(splitter, input, [input.byteLength], true);
      expect(collect(results), `maxBatchLines ${maxBatchLines}`).toEqual(kept.map((s) => Buffer.from(s)));
      for (const piece of results.flatMap((r) => r.pieces)) {
        expect(piece.data.byteOffset).toBe(0);
        expect(piece.data.buffer.byteLength).toBe(piece.data.byteLength);
      }
      expect(results.reduce((n, r) => n + r.discarded, 0)).toBe(2);
    }
  });

  it('moves the end offset past discarded lines even when no line is kept', () => {
    const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 3, maxBatchLines: 10 });
    const r = splitter.push(enc.encode('toolong\n'));
    expect(r.pieces).toEqual([]);
    expect(r.discarded).toBe(1);
    expect(r.end).toBe(8);
  });

  it('flushes the held bytes as a final line', () => {
    const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 100, maxBatchLines: 10 });
    splitter.push(enc.encode('a\nno newline'));
    const r = splitter.flush();
    expect(collect([r])).toEqual([Buffer.from('no newline')]);
    expect(r.end).toBe(12);
    expect(collect([splitter.flush()])).toEqual([]);
  });

  it('reset forgets held bytes and restarts at the given offset', () => {
    const splitter = new LineSplitter({ delimiter: enc.encode('\n'), maxLineBytes: 100, maxBatchLines: 10 });
    splitter.push(enc.encode('abc\npartial'));
    splitter.reset(0);
    expect(splitter.position).toBe(0);
    expect(collect([splitter.push(enc.encode('new\n'))])).toEqual([Buffer.from('new')]);
    expect(splitter.end).toBe(4);
  });
});

describe('AckTracker', () => {
  it('advances only over the acknowledged prefix, whatever the ack order', () => {
    const t = new AckTracker(10);
    const a = t.add(20);
    const b = t.add(30);
    const c = t.add(40);
    expect(t.ack(c)).toBe(false);
    expect(t.position).toBe(10);
    expect(t.ack(a)).toBe(true);
    expect(t.position).toBe(20);
    expect(t.ack(b)).toBe(true);
    expect(t.position).toBe(40);
    expect(t.pending).toBe(0);
  });

  it('a position-only mark is acknowledged at once but waits behind earlier batches', () => {
    const t = new AckTracker(0);
    const a = t.add(5);
    t.add(9, true);
    expect(t.position).toBe(0);
    t.ack(a);
    expect(t.position).toBe(9);
  });
});

describe('AckTracker.reset (truncation)', () => {
  it('restarts at the given position; acks of batches sent before it no longer move the position', () => {
    const t = new AckTracker(0);
    const old = t.add(100);
    t.reset(0);
    const fresh = t.add(20);
    expect(t.ack(old)).toBe(false);
    expect(t.position).toBe(0);
    expect(t.ack(fresh)).toBe(true);
    expect(t.position).toBe(20);
  });
});

describe('LineSplitter alignment (UTF-16)', () => {
  it('finds a delimiter only at code-unit boundaries', () => {
    // UTF-16LE "\u0a41\u0100" is bytes 41 0a 00 01: 0a 00 at an odd offset, which is not a newline.
    const text = 'a\u0a41\u0100\nb\n';
    const bytes = Buffer.from(text, 'utf16le');
    const splitter = new LineSplitter({ delimiter: Buffer.from('\n', 'utf16le'), maxLineBytes: 100, maxBatchLines: 10, alignment: 2 });
    const lines = splitter.push(bytes).pieces.flatMap((p) =>
      Array.from({ length: p.offsets.length - 1 }, (_, i) => Buffer.from(p.data.subarray(p.offsets[i], p.offsets[i + 1])).toString('utf16le')),
    );
    expect(lines).toEqual(['a\u0a41\u0100', 'b']);
    const unaligned = new LineSplitter({ delimiter: Buffer.from('\n', 'utf16le'), maxLineBytes: 100, maxBatchLines: 10 });
    expect(unaligned.push(bytes).pieces.reduce((n, p) => n + p.offsets.length - 1, 0)).not.toBe(2);
  });
});
