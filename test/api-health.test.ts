/**
 * Vector's `api` block through the real CLI: `GET /health` is 200 while running and 503 while
 * draining; the server is off unless `api.enabled`; bad `api` values are config errors.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ApiServer, type HealthState } from '../src/api/server.js';
import { runCli, startCli, tempDir, tomlString } from './support/cli.js';
import { httpGet, logRecords, loggedUrl } from './support/ops.js';
import { pollUntil } from './support/poll.js';

async function config(dir: string, api: string, sink: string): Promise<string> {
  await mkdir(join(dir, 'logs'), { recursive: true });
  const file = join(dir, 'vector.toml');
  await writeFile(
    file,
    `data_dir = ${tomlString(join(dir, 'data'))}
${api}

[sources.logs]
type = "file"
include = [${tomlString(join(dir, 'logs', '*.log'))}]

${sink}
`,
  );
  return file;
}

const BLACKHOLE = `[sinks.out]
type = "blackhole"
inputs = ["logs"]`;

describe('api /health', () => {
  it('answers 200 {"ok":true} while running and 503 while draining', async () => {
    const dir = await tempDir();
    // The file sink writes into a FIFO nobody reads yet: opening it blocks, so the drain after
    // SIGTERM cannot finish until the test opens the reading end.
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    const file = await config(
      dir,
      `[api]\nenabled = true\naddress = "127.0.0.1:0"`,
      `[sinks.out]\ntype = "file"\ninputs = ["logs"]\npath = ${tomlString(fifo)}\nencoding.codec = "text"`,
    );
    await writeFile(join(dir, 'logs', 'a.log'), 'one\ntwo\n');
    const run = startCli(['--config', file]);
    const base = await loggedUrl(run, 'api_started');

    const running = await pollUntil('a 200 from /health', async () => {
      const res = await httpGet(`${base}/health`);
      return res.status === 200 ? res : undefined;
    }, { describe: () => run.stderr() });
    expect(JSON.parse(running.body)).toEqual({ ok: true });
    expect(running.contentType).toMatch(/application\/json/);
    expect((await httpGet(`${base}/nope`)).status).toBe(404);

    run.child.kill('SIGTERM');
    const draining = await pollUntil('a 503 from /health', async () => {
      const res = await httpGet(`${base}/health`);
      return res.status === 503 ? res : undefined;
    }, { describe: () => run.stderr() });
    expect(JSON.parse(draining.body)).toEqual({ ok: false, state: 'draining' });

    // Reading the FIFO lets the drain finish: both lines arrive and the process exits 0.
    const received = await readFile(fifo, 'utf8');
    expect(received).toBe('one\ntwo\n');
    expect(await run.exited).toBe(0);
  });

  it('is not served unless api.enabled', async () => {
    const dir = await tempDir();
    const file = await config(dir, `[api]\naddress = "127.0.0.1:0"`, BLACKHOLE);
    const run = startCli(['--config', file]);
    await pollUntil('the started line', () => logRecords(run.stderr()).some((r) => r.event === 'started'), {
      describe: () => run.stderr(),
    });
    expect(logRecords(run.stderr()).some((r) => r.event === 'api_started')).toBe(false);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('reports a bad address and unknown keys as config errors (exit 78)', async () => {
    const dir = await tempDir();
    const file = await config(dir, `[api]\nenabled = true\naddress = "localhost"\nport = 1`, BLACKHOLE);
    const result = await runCli(['validate', '--config', file]);
    expect(result.code).toBe(78);
    expect(result.stderr.trim().split('\n')).toEqual([
      'global: invalid value for "api.address": expected "host:port" with a port from 0 to 65535, actual: "localhost"',
      'global: unknown key "api.port"',
    ]);
  });

  it('maps every state: 503 starting, 200 running and reloading, 503 draining; HEAD has no body', async () => {
    const server = new ApiServer();
    const { port } = await server.listen('127.0.0.1', 0);
    onTestFinished(() => server.close());
    const url = `http://127.0.0.1:${port}/health`;
    const seen: [HealthState, number, string][] = [];
    for (const state of ['starting', 'running', 'reloading', 'draining'] as const) {
      server.state = state;
      const res = await httpGet(url);
      seen.push([state, res.status, res.body]);
    }
    expect(seen).toEqual([
      ['starting', 503, '{"ok":false,"state":"starting"}'],
      ['running', 200, '{"ok":true}'],
      ['reloading', 200, '{"ok":true}'],
      ['draining', 503, '{"ok":false,"state":"draining"}'],
    ]);
    const head = await fetch(url, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([503, '']);
    expect((await fetch(url, { method: 'POST' })).status).toBe(404);
  });
});
