/**
 * ABI v1 with `wasi = true`, on a hand-written guest: which imports validateModule lets through
 * (WASI functions of wasi.ts only, and only with `wasi = true`), `_initialize` called before any
 * other export (the reactor model), guest stderr captured into the batch outcome, and the files an
 * instance left open closed when it is replaced after a trap and when the runner closes.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { PluginAbiError } from '../src/errors.js';
import { validateModule } from '../src/wasm-memory/abi.js';
import { PluginRunner, type BatchOutcome } from '../src/wasm-memory/runner.js';
import { fromBatchLayout, toBatchLayout } from './support/wasm-fixtures.js';
import { ECHO_BODY, guestWat, watModule } from './support/wasm-wat.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const PATH_OPEN = `(import "wasi_snapshot_preview1" "path_open"
  (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))`;
const FD_WRITE = `(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))`;

/**
 * `_initialize` sets $ready, writes "initialized\n" to stderr and opens "words.txt" under the
 * first preopen (fd 3) for reading, and never closes it. `process_log` traps unless $ready is set
 * (so a host that skipped `_initialize` fails every line), traps on a line starting with `T`,
 * and echoes anything else.
 */
const REACTOR_WAT = guestWat(
  `(if (i32.eqz (global.get $ready)) (then unreachable))
   (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 84)) (then unreachable))
   ${ECHO_BODY}`,
  {
    imports: `${PATH_OPEN} ${FD_WRITE}`,
    extra: `
      (global $ready (mut i32) (i32.const 0))
      (data (i32.const 600) "words.txt")
      (data (i32.const 640) "initialized\\n")
      (func (export "_initialize")
        (global.set $ready (i32.const 1))
        (i32.store (i32.const 800) (i32.const 640))
        (i32.store (i32.const 804) (i32.const 12))
        (drop (call $fd_write (i32.const 2) (i32.const 800) (i32.const 1) (i32.const 808)))
        (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 600) (i32.const 9) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 700))))`,
  },
);

function layout(lines: string[]): { data: Uint8Array; offsets: Uint32Array } {
  return toBatchLayout(lines.map((l) => encoder.encode(l)));
}

function texts(outcome: BatchOutcome): string[] {
  return fromBatchLayout(outcome.data, outcome.offsets).map((l) => decoder.decode(l));
}

/** File descriptors of this process open on `path` (Linux: /proc/self/fd). */
function openOn(path: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) count++;
    } catch {
      // Closed between the listing and the readlink (readdir's own descriptor).
    }
  }
  return count;
}

function abiError(run: () => unknown): PluginAbiError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PluginAbiError);
    expect((error as PluginAbiError).code).toBe('LOGWASM_PLUGIN_ABI');
    return error as PluginAbiError;
  }
  throw new Error('expected a PluginAbiError, nothing was thrown');
}

describe('validateModule: imports of an ABI v1 plugin', () => {
  it('refuses WASI imports without wasi = true, naming each and saying how to allow them', async () => {
    const module = await watModule(REACTOR_WAT);
    const error = abiError(() => validateModule(module, 'transforms.t'));
    expect(error.message).toContain('"wasi_snapshot_preview1"."path_open", but the transform does not enable WASI (set wasi = true)');
    expect(error.message).toContain('"wasi_snapshot_preview1"."fd_write", but the transform does not enable WASI (set wasi = true)');
    expect(() => validateModule(module, 'transforms.t', { wasi: true })).not.toThrow();
  });

  it('refuses, even with wasi = true, a WASI function this host does not provide and any other import', async () => {
    const module = await watModule(
      guestWat(ECHO_BODY, {
        imports: `(import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
          (import "env" "log" (func (param i32 i32)))
          ${FD_WRITE}`,
      }),
    );
    const error = abiError(() => validateModule(module, 'transforms.t', { wasi: true }));
    expect(error.message).toContain('"wasi_snapshot_preview1"."clock_time_get", which this host does not provide');
    expect(error.message).toContain('"env"."log", but ABI v1 allows no imports besides WASI');
    expect(error.message).not.toContain('"fd_write"');
    expect(() => new PluginRunner(module, { wasi: true })).toThrow(PluginAbiError);
  });
});

describe('PluginRunner with wasi = true', () => {
  async function preopen(): Promise<{ dir: string; words: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'logwasm-abi-wasi-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const words = join(dir, 'words.txt');
    await writeFile(words, 'alpha\n');
    return { dir, words };
  }

  it('calls _initialize before any other export and hands its stderr to the first batch', async () => {
    const { dir } = await preopen();
    const runner = new PluginRunner(await watModule(REACTOR_WAT), { wasi: true, preopens: [{ path: dir, writable: false }] });
    onTestFinished(() => runner.close());
    const first = runner.processBatch(layout(['a', 'b']).data, layout(['a', 'b']).offsets);
    expect(texts(first)).toEqual(['a', 'b']);
    expect(first.failures).toEqual([]);
    expect(first.guestOutput).toBe('initialized\n');
    const second = runner.processBatch(layout(['c']).data, layout(['c']).offsets);
    expect(second.guestOutput).toBeUndefined();
  });

  it("closes the files of an instance replaced after a trap, and the last instance's on close", async () => {
    const { dir, words } = await preopen();
    const before = openOn(words);
    const runner = new PluginRunner(await watModule(REACTOR_WAT), { wasi: true, preopens: [{ path: dir, writable: false }] });
    expect(openOn(words)).toBe(before + 1);
    const lines = ['a', 'T trap', 'b', 'T trap', 'c', 'T trap'];
    const outcome = runner.processBatch(layout(lines).data, layout(lines).offsets, 'per_line');
    expect(texts(outcome)).toEqual(lines);
    expect(outcome.failures.map((f) => f.code)).toEqual(['trap', 'trap', 'trap']);
    expect(runner.reinstantiations).toBe(2);
    // Each new instance opened the file again in _initialize; the trapped ones' are closed when
    // they are thrown away, the last one's too although no instance replaced it yet.
    expect(openOn(words)).toBe(before);
    // Every instance's stderr, the replaced ones' included.
    expect(outcome.guestOutput).toBe('initialized\n'.repeat(3));
    const next = runner.processBatch(layout(['d']).data, layout(['d']).offsets);
    expect(texts(next)).toEqual(['d']);
    expect(openOn(words)).toBe(before + 1);
    runner.close();
    expect(openOn(words)).toBe(before);
  });

  it('refuses a preopen that is not a directory when the runner starts', async () => {
    const { words } = await preopen();
    const module = await watModule(REACTOR_WAT);
    expect(() => new PluginRunner(module, { wasi: true, preopens: [{ path: words, writable: false }] })).toThrow(
      expect.objectContaining({ code: 'LOGWASM_PLUGIN_LOAD', message: expect.stringContaining('is not a readable directory') }),
    );
  });
});
