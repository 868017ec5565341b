/**
 * `logwasm plugin inspect` and the `sha256` pin, through the real CLI (dist/cli.js).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_CONFIG } from '../src/errors.js';
import type { PluginReport } from '../src/plugin-inspect.js';
import { JSON_PARSER_WASM, REPO_ROOT, runCli, tempDir, tomlString } from './support/cli.js';
import { ECHO_BODY, guestWat, watBytes } from './support/wasm-wat.js';

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

describe('logwasm plugin inspect', () => {
  it('prints exports with arities, imports, ABI version, size, sha256 and a CycloneDX fragment', async () => {
    const run = await runCli(['plugin', 'inspect', JSON_PARSER_WASM]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PluginReport;
    const digest = sha256(JSON_PARSER_WASM);
    expect(report.sha256).toBe(digest);
    expect(report.size).toBe(readFileSync(JSON_PARSER_WASM).byteLength);
    expect(report.abiVersion).toBe(1);
    expect(report.abiProblems).toEqual([]);
    expect(report.logwasm).toEqual({ accepted: true, refusedBecause: [] });
    expect(report.fluentBit.accepted).toBe(false);
    expect(report.fluentBitFunctions).toEqual([]);
    expect(report.imports).toEqual([]);
    expect(report.exports).toEqual(
      expect.arrayContaining([
        { name: 'memory', kind: 'memory' },
        { name: 'process_log', kind: 'function', params: 2 },
        { name: 'process_batch', kind: 'function', params: 3 },
        { name: 'process_batch_packed', kind: 'function', params: 3 },
        { name: 'alloc', kind: 'function', params: 1 },
      ]),
    );
    expect(report.cyclonedx).toMatchObject({
      bomFormat: 'CycloneDX',
      specVersion: '1.5',
      components: [{ type: 'library', name: 'json_parser', hashes: [{ alg: 'SHA-256', content: digest }] }],
    });
  });

  it('says a module the host would refuse is refused, and why, though it claims ABI v1', async () => {
    const dir = await tempDir();
    const path = join(dir, 'bad.wasm');
    await writeFile(path, await watBytes(guestWat(ECHO_BODY, { imports: '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))' })));
    const run = await runCli(['plugin', 'inspect', path]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PluginReport;
    expect(report.imports).toEqual([{ module: 'wasi_snapshot_preview1', name: 'fd_write', kind: 'function' }]);
    // It still says which ABI version it was written for; the import is what the host refuses.
    expect(report.abiVersion).toBe(1);
    expect(report.abiProblems.join(' ')).toContain('"wasi_snapshot_preview1"."fd_write"');
    expect(report.logwasm.accepted).toBe(false);
    expect(report.logwasm.refusedBecause.join(' ')).toContain('"wasi_snapshot_preview1"."fd_write"');
    expect(report.fluentBit).toMatchObject({ accepted: false, needsWasi: true });
    expect(report.cyclonedx.components[0]!.properties).toContainEqual({ name: 'logwasm:abi_logwasm', value: 'refused' });
    expect(run.stderr).toContain('refused');
    expect(run.stderr).toContain('"wasi_snapshot_preview1"."fd_write"');
  });

  it('shows a WASI Fluent Bit filter\'s imports and its six-parameter function', async () => {
    const run = await runCli(['plugin', 'inspect', join(REPO_ROOT, 'plugins', 'fluent-bit-filter', 'fluent-bit-filter.wasm')]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PluginReport;
    expect(report.fluentBitFunctions).toEqual(['rust_filter']);
    expect(report.imports.map((i) => i.name)).toContain('fd_write');
    expect(report.exports).toContainEqual({ name: 'rust_filter', kind: 'function', params: 6 });
    expect(report.abiVersion).toBeNull();
    expect(report.fluentBit).toEqual({ accepted: true, refusedBecause: [], needsWasi: true });
    expect(report.logwasm.accepted).toBe(false);
    expect(run.stderr).toBe('');
  });

  it('fails with a message for a missing file or a bad invocation', async () => {
    const missing = await runCli(['plugin', 'inspect', '/nonexistent/x.wasm']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('/nonexistent/x.wasm');
    const usage = await runCli(['plugin', 'frobnicate']);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('plugin inspect');
  });
});

describe('sha256 pin through the CLI', () => {
  async function configWith(pin: string): Promise<string> {
    const dir = await tempDir();
    await writeFile(join(dir, 'app.log'), '{"a":1}\n');
    const config = join(dir, 'logwasm.toml');
    await writeFile(
      config,
      `data_dir = ${tomlString(join(dir, 'data'))}
[sources.app]
type = "file"
include = [${tomlString(join(dir, '*.log'))}]
read_from = "beginning"
[transforms.parse]
type = "wasm"
inputs = ["app"]
module = ${tomlString(JSON_PARSER_WASM)}
sha256 = ${tomlString(pin)}
[sinks.out]
type = "blackhole"
inputs = ["parse"]
`,
    );
    return config;
  }

  it('refuses to start on a mismatch with exit 78, showing both hashes', async () => {
    const wrong = 'f'.repeat(64);
    const run = await runCli(['replay', '--config', await configWith(wrong)]);
    expect(run.code).toBe(EXIT_CONFIG);
    expect(run.stderr).toContain(wrong);
    expect(run.stderr).toContain(sha256(JSON_PARSER_WASM));
  });

  it('runs when the pin matches', async () => {
    const run = await runCli(['replay', '--config', await configWith(sha256(JSON_PARSER_WASM))]);
    expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code: 0 });
  });
});
