import { describe, expect, it } from 'vitest';
import { ConfigReader } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { batchFromLines } from '../src/event.js';
import { BLACKHOLE_SENT_BYTES, BLACKHOLE_SENT_EVENTS, blackholeSink } from '../src/sinks/blackhole.js';
import { Telemetry } from '../src/telemetry.js';

describe('blackhole sink', () => {
  it('accepts and counts lines and bytes; print_interval_secs is accepted', async () => {
    const problems: ConfigProblem[] = [];
    const reader = new ConfigReader('sinks.null', { print_interval_secs: 10 }, problems);
    const config = blackholeSink.parse(reader);
    reader.finish();
    expect(problems).toEqual([]);
    const telemetry = new Telemetry(() => {}, 'debug');
    const sink = blackholeSink.build(config, { id: 'null', dataDir: '/tmp', mode: 'replay', telemetry });
    await sink.start();
    const encoder = new TextEncoder();
    const meta = { sourceId: 's', sourceType: 'file', file: '/f', host: 'h', timestampMs: 0, format: 'text' as const };
    await sink.write(batchFromLines([encoder.encode('abc'), encoder.encode('de')], meta));
    await sink.write(batchFromLines([encoder.encode('é')], meta));
    await sink.stop();
    expect(telemetry.counter(BLACKHOLE_SENT_EVENTS, 'null')).toBe(3);
    expect(telemetry.counter(BLACKHOLE_SENT_BYTES, 'null')).toBe(7);
  });

  it('rejects a bad print_interval_secs', () => {
    const problems: ConfigProblem[] = [];
    const reader = new ConfigReader('sinks.null', { print_interval_secs: 'often' }, problems);
    blackholeSink.parse(reader);
    expect(problems.map((p) => p.message)).toEqual([
      'invalid value for "print_interval_secs": expected a number, actual: "often"',
    ]);
  });
});
