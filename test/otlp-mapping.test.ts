import { describe, expect, it } from 'vitest';
import { batchFromLines } from '../src/event.js';
import { classifyExportResult } from '../src/sinks/opentelemetry/index.js';
import { RecordMapper, parseSeverity, parseTimestamp } from '../src/sinks/opentelemetry/mapping.js';

describe('OTLP mapping', () => {
  it.each([
    ['2024-05-06T07:08:09Z', [1714979289, 0]],
    ['2024-05-06T07:08:09.5+02:00', [1714979289 - 7200, 500_000_000]],
    ['2024-05-06 07:08:09.123456789123-0130', [1714979289 + 5400, 123_456_789]],
    [1714979289, [1714979289, 0]],
    [1714979289.25, [1714979289, 250_000_000]],
    [1714979289123, [1714979289, 123_000_000]],
    ['1714979289123456789', [1714979289, 123_456_789]],
    ['1714979289123456', [1714979289, 123_456_000]],
    // The hand-parsed common shape: leap days, lower case, comma fractions, leap seconds, offsets without colon.
    ['2024-02-29T00:00:00Z', [1709164800, 0]],
    ['2024-05-06t07:08:09.000000001z', [1714979289, 1]],
    ['2024-05-06T07:08:09,25Z', [1714979289, 250_000_000]],
    ['2016-12-31T23:59:60Z', [1483228799, 0]],
    ['2024-05-06T07:08:09+0200', [1714979289 - 7200, 0]],
    ['1970-01-01T00:00:01Z', [1, 0]],
    ['1969-12-31T23:59:59-01:00', [3599, 0]],
  ] as const)('timestamp %j', (input, expected) => {
    expect(parseTimestamp(input)).toEqual(expected);
  });

  it.each([
    ['yesterday'],
    ['2024-02-30T00:00:00Z'],
    ['2023-02-29T00:00:00Z'],
    ['2024-13-01T00:00:00Z'],
    ['2024-05-06T24:00:00Z'],
    ['2024-05-06T07:08:09.Z'],
    ['2024-05-06T07:08:09Zjunk'],
    ['2024-05-06T07:08:09+02:0'],
    ['1970-01-01T00:00:00Z'],
    ['2024-05-06T07:08:09'],
    [0],
    [-5],
    [true],
    [null],
    [''],
  ])(
    'not a timestamp: %j',
    (input) => {
      expect(parseTimestamp(input)).toBeUndefined();
    },
  );

  it.each([
    ['trace', 1],
    ['DEBUG', 5],
    ['Info', 9],
    ['notice', 10],
    ['warning', 13],
    ['err', 17],
    ['critical', 18],
    ['alert', 19],
    ['emerg', 21],
    ['FATAL', 21],
    [50, 17],
    [60, 21],
    [13, 13],
    ['verbose', 0],
    [99, 0],
  ] as const)('severity %j -> %i', (input, number) => {
    expect(parseSeverity(input).severityNumber).toBe(number);
  });

  it('keeps the level text; numeric levels get the range name', () => {
    expect(parseSeverity('Warning')).toEqual({ severityText: 'Warning', severityNumber: 13 });
    expect(parseSeverity(40)).toEqual({ severityText: 'WARN', severityNumber: 13 });
    expect(parseSeverity(2)).toEqual({ severityText: 'TRACE', severityNumber: 2 });
  });

  it('a bad timestamp field falls back to the next one, then to the read time', () => {
    const mapper = new RecordMapper('svc');
    const encoder = new TextEncoder();
    const meta = { sourceId: 's', sourceType: 'file', file: '/f.log', host: 'h', timestampMs: 1500, format: 'json' as const };
    const [a, b] = mapper.map(
      batchFromLines([encoder.encode('{"timestamp":"soon","time":2}'), encoder.encode('{"ts":"never"}')], meta),
    );
    expect(a!.hrTime).toEqual([2, 0]);
    expect(b!.hrTime).toEqual([1, 500_000_000]);
    expect(a!.resource).toBe(b!.resource);
  });
});

describe('export result classification', () => {
  const failed = (code: number | undefined, message = 'Bad Request') => ({
    code: 1,
    error: Object.assign(new Error(message), code === undefined ? {} : { code, data: 'details' }),
  });
  it.each([
    [400, 'rejected'],
    [401, 'rejected'],
    [413, 'rejected'],
    [408, 'retry'],
    [429, 'retry'],
    [500, 'retry'],
    [501, 'retry'],
    [undefined, 'retry'],
  ] as const)('HTTP %s -> %s', (code, status) => {
    expect(classifyExportResult(failed(code)).status).toBe(status);
  });
  it('success', () => {
    expect(classifyExportResult({ code: 0 })).toEqual({ status: 'sent' });
  });
  it('the reason names the status and the body', () => {
    expect(classifyExportResult(failed(400))).toEqual({ status: 'rejected', reason: 'HTTP 400 Bad Request: details' });
  });
});
