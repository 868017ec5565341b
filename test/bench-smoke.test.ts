/**
 * Smoke test of the benchmark corpus generator (benchmarks/generate.js): no timing, only that the
 * corpus is what the benchmark tables claim it is — deterministic per seed, ~210-byte JSON lines
 * with ids for the json_parser plugin to lift, and a CRI variant wrapping the same lines.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { writeCorpus } from '../benchmarks/generate.js';

const LINES = 1000;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('benchmark corpus generator', () => {
  it('gives the same bytes for the same seed and different bytes for another seed', () => {
    const dir = tempDir();
    const a = writeCorpus({ file: join(dir, 'a.log'), lines: LINES, seed: 7 });
    const b = writeCorpus({ file: join(dir, 'b.log'), lines: LINES, seed: 7 });
    const c = writeCorpus({ file: join(dir, 'c.log'), lines: LINES, seed: 8 });
    const bytesA = readFileSync(a.file);
    expect(bytesA.byteLength).toBe(a.bytes);
    expect(readFileSync(b.file).equals(bytesA)).toBe(true);
    expect(readFileSync(c.file).equals(bytesA)).toBe(false);
  });

  it('writes N JSON object lines of about 210 bytes, about half with metadata ids', () => {
    const dir = tempDir();
    const { file, bytes } = writeCorpus({ file: join(dir, 'corpus.log'), lines: LINES });
    const text = readFileSync(file, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    expect(lines).toHaveLength(LINES);
    const average = bytes / LINES;
    expect(average).toBeGreaterThan(190);
    expect(average).toBeLessThan(230);
    let withIds = 0;
    for (const line of lines) {
      const record = JSON.parse(line) as { level: string; msg: string; metadata?: { user?: { id?: unknown }; session?: { id?: unknown } } };
      expect(['debug', 'info', 'warn', 'error']).toContain(record.level);
      if (typeof record.metadata?.user?.id === 'string' && typeof record.metadata.session?.id === 'string') withIds++;
    }
    expect(withIds).toBeGreaterThan(LINES * 0.4);
    expect(withIds).toBeLessThan(LINES * 0.6);
  });

  it('writes the CRI variant as `<RFC3339Nano> stdout F <the same JSON line>`', () => {
    const dir = tempDir();
    const json = readFileSync(writeCorpus({ file: join(dir, 'j.log'), lines: LINES, seed: 3 }).file, 'utf8').split('\n');
    const cri = readFileSync(writeCorpus({ file: join(dir, 'c.log'), lines: LINES, seed: 3, format: 'cri' }).file, 'utf8').split('\n');
    expect(cri).toHaveLength(json.length);
    for (let i = 0; i < LINES; i++) {
      const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) stdout F (.*)$/.exec(cri[i]!);
      expect(match, cri[i]).not.toBeNull();
      expect(match![2]).toBe(json[i]);
      // The nanosecond timestamp agrees with the record's own millisecond `ts`.
      const ts = (JSON.parse(json[i]!) as { ts: string }).ts;
      expect(match![1]!.slice(0, 23)).toBe(ts.slice(0, 23));
    }
  });

  it('runs as a command: --lines and --out, prints the file path', () => {
    const dir = tempDir();
    const result = spawnSync(process.execPath, ['benchmarks/generate.js', '--lines', '50', '--out', dir], { encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const file = result.stdout.trim();
    expect(file).toBe(join(dir, 'corpus.log'));
    expect(readFileSync(file, 'utf8').split('\n')).toHaveLength(51);
  });
});
