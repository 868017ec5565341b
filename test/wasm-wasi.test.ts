/**
 * `wasi_preopens`: a Rust guest built for wasm32-wasi (plugins/fluent-bit-wasi-reader, std::fs)
 * reads files under the directories the transform preopens, and nothing else, through the real
 * transform in real workers: no escape by an absolute path, by `..` or by a symlink; no write
 * under a read-only preopen; writes under a writable one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ComponentContext } from '../src/components.js';
import { ConfigReader } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import type { LineBatch } from '../src/event.js';
import { Telemetry } from '../src/telemetry.js';
import { wasmTransform, type WasmTransformConfig } from '../src/transforms/wasm/index.js';
import { compileModuleSync, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { WASI_FUNCTIONS } from '../src/wasm-memory/wasi.js';
import { fromBatchLayout, toBatchLayout } from './support/wasm-fixtures.js';
import { pluginWasm } from './support/wasm-plugin-fixtures.js';

const READER = pluginWasm('fluent-bit-wasi-reader');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parse(table: Record<string, unknown>): { config: WasmTransformConfig; problems: string[] } {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('transforms.fs', table, problems);
  const config = wasmTransform.parse(reader);
  reader.finish();
  return { config, problems: problems.map((p) => `${p.component}: ${p.message}`) };
}

function setup(table: Record<string, unknown>): { start: () => Promise<void>; run: (commands: string[]) => Promise<Record<string, unknown>[]> } {
  const { config, problems } = parse({ module: READER, abi: 'fluent-bit', function: 'wasi_reader', wasi: true, pool_size: 1, ...table });
  expect(problems).toEqual([]);
  const telemetry = new Telemetry(() => undefined, 'debug');
  const context: ComponentContext = { id: 'fs', dataDir: '/nonexistent', mode: 'replay', telemetry };
  const transform = wasmTransform.build(config, context);
  onTestFinished(() => transform.stop());
  return {
    start: () => transform.start(),
    async run(commands) {
      const { data, offsets } = toBatchLayout(commands.map((l) => encoder.encode(l)));
      const batch: LineBatch = { data, offsets, meta: { sourceId: 'app', sourceType: 'file', file: '/f', host: 'h', timestampMs: 0, format: 'text' } };
      const result = await transform.process(batch);
      expect(telemetry.counter('wasm_line_failures_total_trap', 'fs') ?? 0).toBe(0);
      return (result.out ? fromBatchLayout(result.out.data, result.out.offsets) : []).map((l) => JSON.parse(decoder.decode(l)) as Record<string, unknown>);
    },
  };
}

/** root/{secret.txt, ro/{data.txt, sub/inner.txt, inside -> data.txt, escape -> ../secret.txt, up -> ..}, rw/} */
async function tree(): Promise<{ root: string; ro: string; rw: string }> {
  const root = await mkdtemp(join(tmpdir(), 'logwasm-wasi-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  const ro = join(root, 'ro');
  const rw = join(root, 'rw');
  await mkdir(join(ro, 'sub'), { recursive: true });
  await mkdir(rw);
  await writeFile(join(root, 'secret.txt'), 'secret');
  await writeFile(join(ro, 'data.txt'), 'hello preopen');
  await writeFile(join(ro, 'sub', 'inner.txt'), 'inner');
  await symlink('data.txt', join(ro, 'inside'));
  await symlink('../secret.txt', join(ro, 'escape'));
  await symlink('..', join(ro, 'up'));
  return { root, ro, rw };
}

describe('the committed fluent-bit-wasi-reader.wasm', () => {
  it('imports only WASI functions this host provides, file calls included', () => {
    const names = moduleImports(compileModuleSync(new Uint8Array(readFileSync(READER)))).map((i) => i.name);
    expect(names).toEqual(expect.arrayContaining(['path_open', 'fd_read', 'fd_prestat_get', 'fd_prestat_dir_name', 'fd_close']));
    for (const name of names) expect(WASI_FUNCTIONS).toContain(name);
  });
});

describe('wasi_preopens in real workers', () => {
  it('reads files under a read-only preopen and nothing outside it', async () => {
    const { root, ro } = await tree();
    const fs = setup({ wasi_preopens: [ro] });
    await fs.start();
    const out = await fs.run([
      `read ${ro}/data.txt`,
      `len ${ro}/data.txt`,
      `read ${ro}/sub/inner.txt`,
      `read ${ro}/sub/../data.txt`,
      `read ${ro}/inside`,
      `read ${root}/secret.txt`,
      `read ${ro}/../secret.txt`,
      `read ${ro}/sub/../../secret.txt`,
      `read ${ro}/escape`,
      `read ${ro}/up/secret.txt`,
      'read /etc/hostname',
      `read ${ro}/missing.txt`,
    ]);
    expect(out.slice(0, 5)).toEqual([{ read: 'hello preopen' }, { len: 13 }, { read: 'inner' }, { read: 'hello preopen' }, { read: 'hello preopen' }]);
    for (const [i, reply] of out.slice(5).entries()) {
      expect(Object.keys(reply), `line ${i + 5}: ${JSON.stringify(reply)}`).toEqual(['error']);
      expect(JSON.stringify(reply)).not.toContain('secret"');
    }
    // Outside every preopen: the guest's libc finds no preopen to ask. `..` and symlinks out of
    // one: the host refuses (ENOTCAPABLE, 76).
    expect([out[5], out[10]].map((r) => String(r!['error']))).toEqual([expect.stringContaining('pre-opened'), expect.stringContaining('pre-opened')]);
    expect(out.slice(6, 10).map((r) => String(r['error']))).toEqual(Array(4).fill('Capabilities insufficient (os error 76)'));
    expect(String(out[11]!['error'])).toMatch(/No such file/i);
  });

  it('refuses every write under a read-only preopen, and allows them under a writable one', async () => {
    const { ro, rw } = await tree();
    const fs = setup({ wasi_preopens: [ro], wasi_preopens_writable: [rw] });
    await fs.start();
    // Links planted in the writable preopen that lead out of it: one dangling (creating through
    // it would make the file outside), one to the parent directory.
    await symlink('../outside.txt', join(rw, 'dangling'));
    await symlink('..', join(rw, 'up'));
    const out = await fs.run([
      `write ${ro}/new.txt x`,
      `write ${ro}/data.txt overwritten`,
      `write ${rw}/out.txt written by the guest`,
      `read ${rw}/out.txt`,
      `write ${rw}/../ro/data.txt x`,
      `write ${rw}/dangling x`,
      `write ${rw}/up/outside.txt x`,
    ]);
    expect(out.slice(5).map((r) => String(r['error']))).toEqual(Array(2).fill('Capabilities insufficient (os error 76)'));
    expect(existsSync(join(rw, '..', 'outside.txt'))).toBe(false);
    expect(out[0]!['error']).toBe('Read-only file system (os error 69)');
    expect(out[1]!['error']).toBe('Read-only file system (os error 69)');
    expect(out[2]).toEqual({ wrote: `${rw}/out.txt` });
    expect(out[3]).toEqual({ read: 'written by the guest' });
    expect(Object.keys(out[4]!)).toEqual(['error']);
    expect(existsSync(join(ro, 'new.txt'))).toBe(false);
    expect(readFileSync(join(ro, 'data.txt'), 'utf8')).toBe('hello preopen');
    expect(readFileSync(join(rw, 'out.txt'), 'utf8')).toBe('written by the guest');
  });

  it('gives a guest with wasi = true but no preopens no file at all', async () => {
    const { ro } = await tree();
    const fs = setup({});
    await fs.start();
    const [reply] = await fs.run([`read ${ro}/data.txt`]);
    expect(Object.keys(reply!)).toEqual(['error']);
  });

  it('refuses to start when a preopen is not a directory', async () => {
    const { root } = await tree();
    const fs = setup({ wasi_preopens: [join(root, 'secret.txt')] });
    await expect(fs.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_LOAD', message: expect.stringContaining('secret.txt') });
    const missing = setup({ wasi_preopens: [join(root, 'nope')] });
    await expect(missing.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_LOAD' });
  });

  it('checks the config: preopens need wasi = true, whichever abi', () => {
    expect(parse({ module: 'm', abi: 'fluent-bit', function: 'f', wasi_preopens: ['/etc'] }).problems).toEqual(['transforms.fs: "wasi_preopens" needs wasi = true']);
    expect(parse({ module: 'm', wasi_preopens: ['/etc'], wasi_preopens_writable: ['/tmp'] }).problems).toEqual(['transforms.fs: "wasi_preopens" needs wasi = true']);
    expect(parse({ module: 'm', wasi_preopens_writable: ['/tmp'] }).problems).toEqual(['transforms.fs: "wasi_preopens_writable" needs wasi = true']);
    expect(parse({ module: 'm', wasi: true, wasi_preopens: ['/etc'], wasi_preopens_writable: ['/tmp'] }).problems).toEqual([]);
    expect(parse({ module: 'm', abi: 'fluent-bit', function: 'f', wasi: true, wasi_preopens: 'etc' }).problems).toHaveLength(1);
  });
});
