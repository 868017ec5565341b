/**
 * SIGHUP through the real CLI, lines flowing the whole time: a valid new config replaces the
 * running one with no line lost or written twice; an invalid one is refused and the old one
 * keeps running.
 */
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCli, tempDir, tomlString } from './support/cli.js';
import { logRecords } from './support/ops.js';
import { pollUntil } from './support/poll.js';

function configText(dir: string, out: string, extra = ''): string {
  return `data_dir = ${tomlString(join(dir, 'data'))}

[sources.logs]
type = "file"
include = [${tomlString(join(dir, 'logs', '*.log'))}]

[sinks.out]
type = "file"
inputs = ["logs"]
path = ${tomlString(join(dir, out))}
encoding.codec = "text"
${extra}
`;
}

async function linesOf(file: string): Promise<string[]> {
  try {
    const text = await readFile(file, 'utf8');
    return text === '' ? [] : text.slice(0, -1).split('\n');
  } catch {
    return [];
  }
}

describe('SIGHUP reload', () => {
  it('swaps in a valid config mid-stream without losing or duplicating lines, and refuses a bad one', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'logs'));
    const config = join(dir, 'vector.toml');
    await writeFile(config, configText(dir, 'out-a.log'));
    const source = join(dir, 'logs', 'app.log');
    const expected: string[] = [];
    let next = 0;
    const write = async (n: number): Promise<void> => {
      const chunk: string[] = [];
      for (let i = 0; i < n; i++) chunk.push(`line ${next++} — ünïcødé`);
      expected.push(...chunk);
      await appendFile(source, chunk.join('\n') + '\n');
    };
    const all = async () => [...(await linesOf(join(dir, 'out-a.log'))), ...(await linesOf(join(dir, 'out-b.log')))];
    const events = (name: string) => logRecords(run.stderr()).filter((r) => r.event === name);

    await write(200);
    const run = startCli(['--config', config]);
    await pollUntil('the first lines in out-a.log', async () => (await linesOf(join(dir, 'out-a.log'))).length > 0, {
      describe: () => run.stderr(),
    });

    // A valid new config (the sink writes elsewhere), sent while lines are still being appended.
    await writeFile(config, configText(dir, 'out-b.log'));
    const writing = (async () => {
      for (let i = 0; i < 20; i++) await write(25);
    })();
    run.child.kill('SIGHUP');
    await writing;
    await pollUntil('the reload to finish', () => events('reloaded').length === 1, { describe: () => run.stderr() });
    await write(50);
    await pollUntil(`all ${expected.length} lines written out`, async () => (await all()).length >= expected.length, {
      describe: () => `stderr: ${run.stderr()}`,
    });
    expect((await linesOf(join(dir, 'out-b.log'))).length).toBeGreaterThan(0);

    // An invalid config: refused, logged, and the running one keeps going.
    await writeFile(config, configText(dir, 'out-c.log', 'colour = "blue"'));
    run.child.kill('SIGHUP');
    await pollUntil('the refusal', () => events('reload_refused').length === 1, { describe: () => run.stderr() });
    expect(events('reload_refused')[0]!.message).toMatch(/sinks\.out: unknown key "colour"/);
    await write(30);
    await pollUntil(`all ${expected.length} lines after the refusal`, async () => (await all()).length >= expected.length, {
      describe: () => `stderr: ${run.stderr()}`,
    });

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const seen = await all();
    expect(seen.filter((l, i) => seen.indexOf(l) !== i)).toEqual([]);
    expect(seen).toEqual(expected);
    expect(await linesOf(join(dir, 'out-c.log'))).toEqual([]);
    expect(events('reloaded')).toHaveLength(1);
  });

  it('restarts the previous config when the new one fails to start (a plugin that does not load)', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'logs'));
    const config = join(dir, 'vector.toml');
    await writeFile(config, configText(dir, 'out-a.log'));
    const source = join(dir, 'logs', 'app.log');
    await writeFile(source, 'one\ntwo\n');
    const run = startCli(['--config', config]);
    const out = join(dir, 'out-a.log');
    await pollUntil('two lines', async () => (await linesOf(out)).length === 2, { describe: () => run.stderr() });

    await writeFile(
      config,
      configText(dir, 'out-b.log').replace('inputs = ["logs"]', 'inputs = ["parse"]') +
        `\n[transforms.parse]\ntype = "wasm"\ninputs = ["logs"]\nmodule = ${tomlString(join(dir, 'missing.wasm'))}\n`,
    );
    run.child.kill('SIGHUP');
    await pollUntil('the failed start', () => logRecords(run.stderr()).some((r) => r.event === 'reload_failed'), {
      describe: () => run.stderr(),
    });
    await appendFile(source, 'three\n');
    await pollUntil('the line written after the failed reload', async () => (await linesOf(out)).length === 3, {
      describe: () => run.stderr(),
    });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(await linesOf(out)).toEqual(['one', 'two', 'three']);
    expect(await linesOf(join(dir, 'out-b.log'))).toEqual([]);
  });
});
