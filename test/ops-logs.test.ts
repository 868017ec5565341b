/**
 * Internal logs as docs/operations.md describes them: JSON lines on stderr with a stable `event`,
 * level from LOG_LEVEL or --verbose/--quiet, rate-limited per (event, component) with a count of
 * what was suppressed, counters unaffected.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOG_RATE_LIMIT_MS, Telemetry, type LogRecord } from '../src/telemetry.js';
import { runCli, writeLogsConfig } from './support/cli.js';
import { logRecords } from './support/ops.js';

describe('rate-limited logs', () => {
  it('logs an event kind once per window per component, then says how many were suppressed', () => {
    let now = 0;
    const records: LogRecord[] = [];
    const t = new Telemetry((r) => records.push(r), 'info', () => now);
    for (let i = 0; i < 5; i++) t.logLimited('error', 'boom', `failure ${i}`, 'a');
    t.logLimited('error', 'boom', 'other component', 'b');
    t.logLimited('error', 'other_kind', 'other kind', 'a');
    now += LOG_RATE_LIMIT_MS;
    t.logLimited('error', 'boom', 'later', 'a');
    t.logLimited('debug', 'chatty', 'below the level', 'a');
    expect(records).toEqual([
      { level: 'error', event: 'boom', message: 'failure 0', component: 'a' },
      { level: 'error', event: 'boom', message: 'other component', component: 'b' },
      { level: 'error', event: 'other_kind', message: 'other kind', component: 'a' },
      { level: 'error', event: 'boom', message: 'later (4 similar messages suppressed)', component: 'a' },
    ]);
  });
});

describe('log level through the CLI', () => {
  it('takes LOG_LEVEL, and --verbose / --quiet over it', async () => {
    const { logs, config } = await writeLogsConfig(() => `[sinks.out]\ntype = "blackhole"\ninputs = ["logs"]\n`);
    await writeFile(join(logs, 'a.log'), 'x\n');
    const levels = async (args: string[], env: Record<string, string>) => {
      const result = await runCli(['replay', '--config', config, ...args], { env });
      expect(result.code, result.stderr).toBe(0);
      const records = logRecords(result.stderr);
      for (const r of records) expect(Object.keys(r).sort()).toEqual(expect.arrayContaining(['event', 'level', 'message', 'time']));
      return new Set(records.map((r) => r.level));
    };
    expect(await levels([], { LOG_LEVEL: 'debug' })).toContain('debug');
    expect(await levels([], { LOG_LEVEL: 'warn' })).toEqual(new Set());
    expect(await levels(['--verbose'], { LOG_LEVEL: 'error' })).toContain('debug');
    expect(await levels(['--quiet'], { LOG_LEVEL: 'debug' })).toEqual(new Set());
    expect(await levels([], { LOG_LEVEL: 'nonsense' })).toEqual(new Set(['info']));
  });
});
