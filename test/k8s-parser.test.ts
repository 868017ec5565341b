import { describe, expect, it } from 'vitest';
import { ContainerLogDecoder, type Lines } from '../src/sources/kubernetes_logs/decoder.js';
import { parseContainerLine, parseCriLine, parseDockerLine } from '../src/sources/kubernetes_logs/parser.js';
import { parsePodLogPath } from '../src/sources/kubernetes_logs/path.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

function parsed(line: string | Uint8Array): { stream: string; partial: boolean; message: string } | null {
  const p = parseContainerLine(typeof line === 'string' ? bytes(line) : line);
  return p === null ? null : { stream: p.stream, partial: p.partial, message: dec.decode(p.message) };
}

/** Raw lines (as the file source emits them: no delimiters) into a batch's data + offsets. */
function raw(lines: readonly (string | Uint8Array)[]): Lines {
  const parts = lines.map((l) => (typeof l === 'string' ? bytes(l) : l));
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  const offsets = new Uint32Array(parts.length + 1);
  let at = 0;
  parts.forEach((p, i) => {
    data.set(p, at);
    at += p.length;
    offsets[i + 1] = at;
  });
  return { data, offsets };
}

function texts(lines: Lines | null): string[] {
  if (lines === null) return [];
  const out: string[] = [];
  for (let i = 0; i + 1 < lines.offsets.length; i++) out.push(dec.decode(lines.data.subarray(lines.offsets[i], lines.offsets[i + 1])));
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe('CRI lines', () => {
  it.each([
    // Recorded from containerd 1.7 and CRI-O.
    ['2016-10-06T00:17:09.669794202Z stdout F log content 1', { stream: 'stdout', partial: false, message: 'log content 1' }],
    ['2016-10-06T00:17:09.669794203Z stderr P log content 2', { stream: 'stderr', partial: true, message: 'log content 2' }],
    ['2023-07-05T12:00:00.123456789+02:00 stdout F  leading space kept', { stream: 'stdout', partial: false, message: ' leading space kept' }],
    ['2024-01-01T00:00:00.000000001Z stdout F ', { stream: 'stdout', partial: false, message: '' }],
    ['2024-01-01T00:00:00.000000001Z stdout F', { stream: 'stdout', partial: false, message: '' }],
    ['2024-01-01T00:00:00Z stdout F:x:y tagged', { stream: 'stdout', partial: false, message: 'tagged' }],
    ['2024-01-01T00:00:00Z stdout F {"level":"info","msg":"a b"}', { stream: 'stdout', partial: false, message: '{"level":"info","msg":"a b"}' }],
    ['2024-01-01T00:00:00Z stderr F héllo wörld 😀', { stream: 'stderr', partial: false, message: 'héllo wörld 😀' }],
  ])('%s', (line, expected) => {
    expect(parsed(line)).toEqual(expected);
  });

  it.each([
    'plain text line',
    '2024-01-01T00:00:00Z stdin F nope',
    '2024-01-01T00:00:00Z stdout X bad tag',
    '2024-01-01T00:00:00Z stdout Fx glued',
    '2024-01-01T00:00:00Z stdout',
    ' 2024-01-01T00:00:00Z stdout F leading space',
    '',
  ])('rejects %j', (line) => {
    expect(parseCriLine(bytes(line))).toBeNull();
  });

  it('returns a view of the line, not a copy', () => {
    const line = bytes('2024-01-01T00:00:00Z stdout F abc');
    const p = parseCriLine(line)!;
    expect(p.message.buffer).toBe(line.buffer);
    expect(p.message.byteOffset).toBe(line.length - 3);
  });
});

describe('Docker json-file lines', () => {
  it.each([
    // Recorded from Docker 24's json-file driver.
    ['{"log":"Hello from Docker!\\n","stream":"stdout","time":"2019-01-01T12:34:56.123456789Z"}', { stream: 'stdout', partial: false, message: 'Hello from Docker!' }],
    ['{"log":"first 16k piece","stream":"stderr","time":"2019-01-01T12:34:56.1Z"}', { stream: 'stderr', partial: true, message: 'first 16k piece' }],
    ['{"log":"\\n","stream":"stdout","time":"2019-01-01T12:34:56Z"}', { stream: 'stdout', partial: false, message: '' }],
    ['{"log":"tab\\there \\"quoted\\" back\\\\slash \\/ \\u003cb\\u003e\\r\\n","stream":"stdout","time":"t"}', { stream: 'stdout', partial: false, message: 'tab\there "quoted" back\\slash / <b>\r' }],
    ['{"log":"caf\\u00e9 \\ud83d\\ude00 \\u2603\\n","stream":"stdout","time":"t"}', { stream: 'stdout', partial: false, message: 'café 😀 ☃' }],
    ['{"log":"raw UTF-8: héllo 😀\\n","stream":"stdout","time":"t"}', { stream: 'stdout', partial: false, message: 'raw UTF-8: héllo 😀' }],
    ['{"log":"lone \\ud800 surrogate\\n","stream":"stdout","time":"t"}', { stream: 'stdout', partial: false, message: 'lone \ufffd surrogate' }],
    // Key order and extra fields (`attrs` from --log-opt labels) do not matter.
    ['{ "stream" : "stderr", "attrs":{"a":"x\\"}","b":[1,{"c":2}]}, "time":"t", "n": 12.5, "ok": true, "log" : "x\\n" }', { stream: 'stderr', partial: false, message: 'x' }],
  ])('%s', (line, expected) => {
    expect(parsed(line)).toEqual(expected);
  });

  it.each([
    '{}',
    '{"stream":"stdout","time":"t"}',
    '{"log":"no stream\\n","time":"t"}',
    '{"log":"x\\n","stream":"stdin","time":"t"}',
    '{"log":"unterminated',
    '{"log":"bad escape \\q\\n","stream":"stdout"}',
    '{"log":"bad hex \\u12G4","stream":"stdout"}',
    '{"log":"x\\n","stream":"stdout"',
    '{"log":"x\\n" "stream":"stdout"}',
  ])('rejects %j', (line) => {
    expect(parseDockerLine(bytes(line))).toBeNull();
  });
});

describe('pod log paths', () => {
  it('reads namespace, pod, uid and container', () => {
    expect(parsePodLogPath('/var/log/pods/kube-system_coredns-5d78c9869d-abcde_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/coredns/0.log')).toEqual({
      pod_namespace: 'kube-system',
      pod_name: 'coredns-5d78c9869d-abcde',
      pod_uid: '0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b',
      container_name: 'coredns',
    });
  });

  it.each(['/var/log/pods/no-underscores/c/0.log', '/var/log/pods/a_b_c_d/c/0.log', '/var/log/pods/a__c/c/0.log', '/var/log/pods/a_b_c/c/0.txt', '0.log'])(
    'rejects %s',
    (file) => {
      expect(parsePodLogPath(file)).toBeNull();
    },
  );
});

describe('ContainerLogDecoder', () => {
  const merging = () => new ContainerLogDecoder({ autoPartialMerge: true, maxMergedLineBytes: undefined });

  it('merges CRI partial lines across batches and reports the carry open, then completed', () => {
    const decoder = merging();
    const first = raw(['2024-01-01T00:00:00Z stdout F whole', '2024-01-01T00:00:00Z stdout P part one, ']);
    const a = decoder.decode(first.data, first.offsets, 0);
    expect(texts(a.stdout)).toEqual(['whole']);
    expect(a.open).toHaveLength(1);
    expect(a.completed).toEqual([]);
    const carry = a.open[0]!;
    const secondBatch = raw(['2024-01-01T00:00:00Z stdout P part two, ', '2024-01-01T00:00:00Z stdout F end', '2024-01-01T00:00:01Z stdout F next']);
    const b = decoder.decode(secondBatch.data, secondBatch.offsets, 1);
    expect(texts(b.stdout)).toEqual(['part one, part two, end', 'next']);
    expect(b.completed).toEqual([carry]);
    expect(b.open).toEqual([]);
    expect(decoder.carry('stdout')).toBeNull();
  });

  it('merges multibyte text split inside a character across CRI partials, byte-exact', () => {
    const text = bytes('données 😀 ünïcödé');
    const cut = text.indexOf(0xf0) + 2; // inside the 4-byte emoji
    const decoder = merging();
    const head = concat(bytes('2024-01-01T00:00:00Z stderr P '), text.subarray(0, cut));
    const tail = concat(bytes('2024-01-01T00:00:00Z stderr F '), text.subarray(cut));
    const a = raw([head]);
    expect(decoder.decode(a.data, a.offsets, 0).stderr).toBeNull();
    const b = raw([tail]);
    const out = decoder.decode(b.data, b.offsets, 0).stderr!;
    expect(Buffer.from(out.data)).toEqual(Buffer.from(text));
    expect(Array.from(out.offsets)).toEqual([0, text.length]);
  });

  it('merges Docker pieces split inside a character (raw UTF-8 in the JSON)', () => {
    const text = bytes('ça marche 😀 oui');
    const cut = text.indexOf(0xf0) + 1;
    const piece = (part: Uint8Array, last: boolean) =>
      concat(bytes('{"log":"'), part, bytes(last ? '\\n' : ''), bytes('","stream":"stdout","time":"2019-01-01T00:00:00Z"}'));
    const decoder = merging();
    const batch = raw([piece(text.subarray(0, cut), false), piece(text.subarray(cut), true)]);
    const out = decoder.decode(batch.data, batch.offsets, 0).stdout!;
    expect(Buffer.from(out.data)).toEqual(Buffer.from(text));
  });

  it('keeps streams apart: partials of one stream do not absorb the other', () => {
    const decoder = merging();
    const batch = raw([
      '2024-01-01T00:00:00Z stdout P out-a ',
      '2024-01-01T00:00:00Z stderr F err-whole',
      '2024-01-01T00:00:00Z stderr P err-a ',
      '2024-01-01T00:00:00Z stdout F out-b',
      '2024-01-01T00:00:00Z stderr F err-b',
    ]);
    const out = decoder.decode(batch.data, batch.offsets, 0);
    expect(texts(out.stdout)).toEqual(['out-a out-b']);
    expect(texts(out.stderr)).toEqual(['err-whole', 'err-a err-b']);
    expect(out.completed).toHaveLength(2);
  });

  it('forwards lines of neither format unchanged, in their own group', () => {
    const decoder = merging();
    const batch = raw(['not a container line', '2024-01-01T00:00:00Z stdout F ok', '{"not":"docker"}']);
    const out = decoder.decode(batch.data, batch.offsets, 0);
    expect(texts(out.unparsed)).toEqual(['not a container line', '{"not":"docker"}']);
    expect(texts(out.stdout)).toEqual(['ok']);
  });

  it('with auto_partial_merge = false, every piece is its own message', () => {
    const decoder = new ContainerLogDecoder({ autoPartialMerge: false, maxMergedLineBytes: undefined });
    const batch = raw(['2024-01-01T00:00:00Z stdout P a', '2024-01-01T00:00:00Z stdout F b', '{"log":"c","stream":"stdout","time":"t"}']);
    const out = decoder.decode(batch.data, batch.offsets, 0);
    expect(texts(out.stdout)).toEqual(['a', 'b', 'c']);
    expect(decoder.carry('stdout')).toBeNull();
  });

  it('discards a merged message longer than max_merged_line_bytes, whole, and counts it', () => {
    const decoder = new ContainerLogDecoder({ autoPartialMerge: true, maxMergedLineBytes: 10 });
    const batch = raw([
      '2024-01-01T00:00:00Z stdout P 123456',
      '2024-01-01T00:00:00Z stdout P 789012',
      '2024-01-01T00:00:00Z stdout F 345',
      '2024-01-01T00:00:00Z stdout P 12345',
      '2024-01-01T00:00:00Z stdout F 67890',
      '2024-01-01T00:00:00Z stdout F 12345678901',
    ]);
    const out = decoder.decode(batch.data, batch.offsets, 0);
    expect(texts(out.stdout)).toEqual(['1234567890']);
    expect(out.discarded).toBe(2);
  });

  it('flush hands back the carried bytes and clears the carry', () => {
    const decoder = merging();
    const batch = raw(['2024-01-01T00:00:00Z stdout P half é', '2024-01-01T00:00:00Z stdout P  and more']);
    decoder.decode(batch.data, batch.offsets, 0);
    const flushed = decoder.flush('stdout')!;
    expect(texts(flushed.message)).toEqual(['half é and more']);
    expect(decoder.carry('stdout')).toBeNull();
    expect(decoder.flush('stdout')).toBeNull();
  });
});
