import { appendFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineAggregator, type MultilineConfig, type MultilineMode } from '../src/sources/file/multiline.js';
import { encodeDelimiter, lineToUtf8 } from '../src/sources/file/encoding.js';
import { buildFileSource, fileConfig, fileTempDir, type RecordingDownstream } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const FAST = { pollIntervalMs: 50, checkpointIntervalMs: 50 };
const enc = new TextEncoder();
const dec = new TextDecoder();

function linesSeen(downstream: RecordingDownstream, n: number): Promise<string[]> {
  return pollUntil(`${n} lines downstream`, () => (downstream.lines().length >= n ? downstream.lines() : undefined), {
    describe: () => JSON.stringify(downstream.lines()),
  });
}

/** Runs lines through an aggregator and flushes at the end, as the source does at end of input. */
function aggregate(config: MultilineConfig, input: string[]): string[] {
  const agg = new LineAggregator(config);
  const out: string[] = [];
  let end = 0;
  for (const line of input) {
    end += Buffer.byteLength(line) + 1;
    for (const o of agg.push(enc.encode(line), end, 0)) out.push(dec.decode(o.data));
  }
  const rest = agg.flush();
  if (rest !== null) out.push(dec.decode(rest.data));
  return out;
}

function ml(start: string, condition: string, mode: MultilineMode): MultilineConfig {
  return { startPattern: new RegExp(start), conditionPattern: new RegExp(condition), mode, timeoutMs: 1000 };
}

// The examples of Vector's file source docs (multiline section), input and expected events.
describe('multiline aggregation (Vector docs examples)', () => {
  it.each([
    [
      'Java stack traces: continue_through',
      ml('^[^\\s]', '^[\\s]+', 'continue_through'),
      [
        'Exception in thread "main" java.lang.NullPointerException',
        '        at com.example.myproject.Book.getTitle(Book.java:16)',
        '        at com.example.myproject.Author.getBookTitles(Author.java:25)',
        'next event',
      ],
      [
        'Exception in thread "main" java.lang.NullPointerException\n        at com.example.myproject.Book.getTitle(Book.java:16)\n        at com.example.myproject.Author.getBookTitles(Author.java:25)',
        'next event',
      ],
    ],
    [
      'Ruby exceptions: continue_through on "from" lines',
      ml('^[^\\s]', '^[\\s]+from', 'continue_through'),
      ["foobar.rb:6:in `/': divided by 0 (ZeroDivisionError)", '\tfrom foobar.rb:6:in `bar\'', '\tfrom foobar.rb:2:in `foo\'', 'after'],
      ["foobar.rb:6:in `/': divided by 0 (ZeroDivisionError)\n\tfrom foobar.rb:6:in `bar'\n\tfrom foobar.rb:2:in `foo'", 'after'],
    ],
    [
      'Line continuations: continue_past',
      ml('\\\\$', '\\\\$', 'continue_past'),
      ['single', 'First line \\', 'second line \\', 'third line', 'other'],
      ['single', 'First line \\\nsecond line \\\nthird line', 'other'],
    ],
    [
      'Timestamped events: halt_before',
      ml('^\\[[0-9]{4}-[0-9]{2}-[0-9]{2}', '^\\[[0-9]{4}-[0-9]{2}-[0-9]{2}', 'halt_before'),
      ['[2021-01-01] one', '  detail a', '  detail b', '[2021-01-02] two', '[2021-01-03] three', '  detail c'],
      ['[2021-01-01] one\n  detail a\n  detail b', '[2021-01-02] two', '[2021-01-03] three\n  detail c'],
    ],
    [
      'Statements ending with ";": halt_with',
      ml('[^;]$', ';$', 'halt_with'),
      ['done;', 'SELECT *', 'FROM t', 'WHERE x;', 'alone;'],
      ['done;', 'SELECT *\nFROM t\nWHERE x;', 'alone;'],
    ],
  ])('%s', (_, config, input, expected) => {
    expect(aggregate(config, input)).toEqual(expected);
  });

  it('safeEnd never passes a line still held in a group; timeout emits the group', () => {
    const agg = new LineAggregator(ml('^[^\\s]', '^\\s', 'continue_through'), 100);
    expect(agg.push(enc.encode('a'), 102, 0)).toEqual([]);
    expect(agg.safeEnd).toBe(100);
    agg.push(enc.encode(' b'), 105, 0);
    expect(agg.safeEnd).toBe(100);
    expect(agg.expire(999)).toBeNull();
    expect(dec.decode(agg.expire(1000)!.data)).toBe('a\n b');
    expect(agg.safeEnd).toBe(105);
  });
});

describe('encoding', () => {
  it.each([
    ['utf-16le', 'héllo 日本\n'],
    ['utf-16be', 'héllo 日本\n'],
    ['latin1', 'héllo ÿ\n'],
  ] as const)('%s: delimiter and lines', (charset, text) => {
    const bytes =
      charset === 'latin1'
        ? Buffer.from(text, 'latin1')
        : charset === 'utf-16le'
          ? Buffer.from(text, 'utf16le')
          : Buffer.from(text, 'utf16le').swap16();
    const delimiter = encodeDelimiter('\n', charset);
    const line = bytes.subarray(0, bytes.byteLength - delimiter.byteLength);
    expect(Buffer.from(bytes.subarray(line.byteLength))).toEqual(Buffer.from(delimiter));
    expect(dec.decode(lineToUtf8(line, charset))).toBe(text.slice(0, -1));
  });
});

describe('file source: multiline and charsets on real files', () => {
  it('joins a stack trace, holds the checkpoint before an open group, emits it after timeout_ms', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'start\nError: boom\n  at a\n  at b\n');
    const multiline = { ...ml('^[^\\s]', '^\\s', 'continue_through'), timeoutMs: 200 };
    const { source, downstream } = buildFileSource(fileConfig([file], { multiline }, { ...FAST, readChunkBytes: 6 }), { dataDir: path.join(dir, 'data') });
    await source.start();
    expect(await linesSeen(downstream, 1)).toEqual(['start']);
    // The open group is sent once no line came for timeout_ms.
    expect(await linesSeen(downstream, 2)).toEqual(['start', 'Error: boom\n  at a\n  at b']);
    appendFileSync(file, 'next\n  at c\nlast\n');
    await linesSeen(downstream, 3);
    await source.stop();
    expect(downstream.lines()).toEqual(['start', 'Error: boom\n  at a\n  at b', 'next\n  at c', 'last']);
  });

  it.each(['utf-16le', 'utf-16be', 'latin1'] as const)('reads a %s file as UTF-8', async (charset) => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    const lines = ['première ligne', 'zweite Zeile ß', 'ÿ fin'];
    const text = lines.map((l) => l + '\n').join('');
    const bytes = charset === 'latin1' ? Buffer.from(text, 'latin1') : charset === 'utf-16le' ? Buffer.from(text, 'utf16le') : Buffer.from(text, 'utf16le').swap16();
    await writeFile(file, bytes);
    const { source, downstream } = buildFileSource(
      fileConfig([file], { charset, fingerprint: { strategy: 'device_and_inode' } }, { ...FAST, readChunkBytes: 3 }),
      { dataDir: path.join(dir, 'data') },
    );
    await source.start();
    await linesSeen(downstream, 3);
    expect(downstream.rawLines()).toEqual(lines.map((l) => Buffer.from(l, 'utf8')));
  });
});
