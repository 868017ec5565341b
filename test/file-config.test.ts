import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigReader } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { parseCheckpoints, serializeCheckpoints, writeCheckpoints, loadCheckpoints, type Checkpoint } from '../src/sources/file/checkpoints.js';
import { Discovery } from '../src/sources/file/discovery.js';
import {
  DEFAULT_GLOB_MINIMUM_COOLDOWN_MS,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_MAX_READ_BYTES,
  fileSource,
} from '../src/sources/file/index.js';

function parse(table: Record<string, unknown>): { config: ReturnType<typeof fileSource.parse>; problems: string[] } {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sources.in', table, problems);
  const config = fileSource.parse(reader);
  reader.finish();
  return { config, problems: problems.map((p) => `${p.component}: ${p.message}`) };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logwasm-file-cfg-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('file source config', () => {
  it('has Vector defaults', () => {
    const { config, problems } = parse({ type: 'file', include: ['/var/log/*.log'] });
    expect(problems).toEqual([]);
    expect(fileSource.type).toBe('file');
    expect(config).toMatchObject({
      include: ['/var/log/*.log'],
      exclude: [],
      readFrom: 'beginning',
      ignoreCheckpoints: false,
      maxLineBytes: DEFAULT_MAX_LINE_BYTES,
      maxReadBytes: DEFAULT_MAX_READ_BYTES,
      globMinimumCooldownMs: DEFAULT_GLOB_MINIMUM_COOLDOWN_MS,
      lineDelimiter: '\n',
      hostKey: 'host',
      fileKey: 'file',
      offsetKey: undefined,
      dataDir: undefined,
      fingerprint: { strategy: 'checksum', lines: 1, ignoredHeaderBytes: 0 },
      ignoreOlderSecs: undefined,
      removeAfterSecs: undefined,
      rotateWaitSecs: Number.POSITIVE_INFINITY,
      oldestFirst: false,
      multiline: undefined,
      charset: 'utf-8',
    });
    expect([DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_READ_BYTES, DEFAULT_GLOB_MINIMUM_COOLDOWN_MS]).toEqual([102400, 2048, 1000]);
  });

  it('reads every option', () => {
    const { config, problems } = parse({
      include: ['a/*.log'],
      exclude: ['a/skip.log'],
      read_from: 'end',
      ignore_checkpoints: true,
      max_line_bytes: 10,
      max_read_bytes: 4096,
      glob_minimum_cooldown_ms: 50,
      line_delimiter: '\r\n',
      host_key: 'host',
      file_key: 'file',
      data_dir: 'state',
      fingerprint: { strategy: 'checksum', lines: 3, ignored_header_bytes: 10 },
      ignore_older_secs: 600,
      remove_after_secs: 5,
      rotate_wait_secs: 30,
      oldest_first: true,
      multiline: { start_pattern: '^[^\\s]', condition_pattern: '^[\\s]+', mode: 'continue_through', timeout_ms: 1000 },
      encoding: { charset: 'UTF-16LE' },
      acknowledgements: { enabled: true },
    });
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      exclude: ['a/skip.log'],
      readFrom: 'end',
      ignoreCheckpoints: true,
      maxLineBytes: 10,
      maxReadBytes: 4096,
      globMinimumCooldownMs: 50,
      lineDelimiter: '\r\n',
      hostKey: 'host',
      fileKey: 'file',
      dataDir: path.resolve('state'),
      fingerprint: { strategy: 'checksum', lines: 3, ignoredHeaderBytes: 10 },
      ignoreOlderSecs: 600,
      removeAfterSecs: 5,
      rotateWaitSecs: 30,
      oldestFirst: true,
      multiline: { startPattern: /^[^\s]/, conditionPattern: /^[\s]+/, mode: 'continue_through', timeoutMs: 1000 },
      charset: 'utf-16le',
    });
    expect(parse({ include: ['x'], fingerprint: { strategy: 'device_and_inode' }, acknowledgements: true }).config.fingerprint).toEqual({
      strategy: 'device_and_inode',
    });
  });

  it.each([
    [{ host_key: 'hostname' }, '"host_key" = "hostname" is not supported yet: the field is always named "host"'],
    [{ file_key: 'path' }, '"file_key" = "path" is not supported yet: the field is always named "file"'],
    [{ offset_key: 'offset' }, '"offset_key" is not supported yet: events carry no offset field'],
    [{ fingerprint: { strategy: 'inode' } }, 'invalid value for "fingerprint.strategy": expected one of "checksum", "device_and_inode", actual: "inode"'],
    [{ fingerprint: { strategy: 'checksum', bytes: 256 } }, 'unsupported option "fingerprint.bytes": deprecated in Vector; use fingerprint.lines'],
    [{ fingerprint: { strategy: 'device_and_inode', lines: 2 } }, 'invalid option "fingerprint.lines": only used with strategy = "checksum", actual strategy: "device_and_inode"'],
    [{ fingerprint: { lines: 0 } }, 'invalid value for "fingerprint.lines": expected a number >= 1, actual: 0'],
    [{ fingerprint: { salt: 1 } }, 'unknown key "fingerprint.salt"'],
    [{ ignore_not_found: true }, 'unsupported option "ignore_not_found": missing include paths are always ignored'],
    [{ encoding: { charset: 'shift_jis' } }, 'unsupported value for "encoding.charset": expected one of "utf-8", "utf8", "utf-16le", "utf-16be", "latin1", "iso-8859-1", actual: "shift_jis"'],
    [{ acknowledgements: false }, 'unsupported value for "acknowledgements": the file source always waits for acknowledgements before checkpointing, actual: false'],
    [{ acknowledgements: { enabled: false } }, 'unsupported value for "acknowledgements": the file source always waits for acknowledgements before checkpointing, actual: {"enabled":false}'],
    [{ multiline: { start_pattern: '(', condition_pattern: 'x', mode: 'halt_with', timeout_ms: 5 } }, 'invalid value for "multiline.start_pattern": not a regular expression'],
    [{ multiline: { start_pattern: 'a', condition_pattern: 'x', mode: 'halt', timeout_ms: 5 } }, 'invalid value for "multiline.mode": expected one of "continue_through", "continue_past", "halt_before", "halt_with", actual: "halt"'],
    [{ multiline: { start_pattern: 'a', mode: 'halt_with', timeout_ms: 5 } }, 'missing required key "multiline.condition_pattern"'],
    [{ multiline: { start_pattern: 'a', condition_pattern: 'b', timeout_ms: 1 } }, 'missing required key "multiline.mode"'],
    [{ rotate_wait_secs: -1 }, 'invalid value for "rotate_wait_secs": expected a number >= 0, actual: -1'],
    [{ oldest_first: 'yes' }, 'invalid value for "oldest_first": expected true or false, actual: "yes"'],
  ])('rejects an unsupported option or value at validate time: %j', (table, message) => {
    const { problems } = parse({ include: ['x'], ...table });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`sources.in: ${message}`);
  });

  it('reports every bad value in one pass', () => {
    expect(
      parse({ read_from: 'middle', max_line_bytes: 0, ignore_checkpoints: 'yes', line_delimiter: '', exclude: 'x', start_at_beginning: true })
        .problems,
    ).toEqual([
      'sources.in: missing required key "include"',
      'sources.in: invalid value for "line_delimiter": expected a non-empty string, actual: ""',
      'sources.in: unsupported option "start_at_beginning": deprecated in Vector; use read_from',
      'sources.in: invalid value for "exclude": expected an array of strings, actual: "x"',
      'sources.in: invalid value for "read_from": expected one of "beginning", "end", actual: "middle"',
      'sources.in: invalid value for "ignore_checkpoints": expected true or false, actual: "yes"',
      'sources.in: invalid value for "max_line_bytes": expected a number >= 1, actual: 0',
    ]);
    expect(parse({ include: [] }).problems).toEqual([
      'sources.in: invalid value for "include": expected at least one path or glob, actual: []',
    ]);
  });
});

describe('checkpoints file', () => {
  const entry: Checkpoint = {
    fingerprint: { strategy: 'device_and_inode', dev: '2049', inode: '18446744073709551615' },
    path: '/var/log/app.log',
    position: 1234,
    modifiedMs: Date.parse('2025-01-02T03:04:05.000Z'),
  };

  it('round-trips, keeping inode numbers beyond 2^53 exact', () => {
    const text = serializeCheckpoints([entry]);
    expect(JSON.parse(text)).toEqual({
      version: 1,
      checkpoints: [
        {
          fingerprint: { strategy: 'device_and_inode', dev: '2049', inode: '18446744073709551615' },
          path: '/var/log/app.log',
          position: 1234,
          modified: '2025-01-02T03:04:05.000Z',
        },
      ],
    });
    expect([...parseCheckpoints(text).values()]).toEqual([entry]);
  });

  it.each([
    ['not JSON', '{"version":1,'],
    ['other version', '{"version":2,"checkpoints":[]}'],
    ['no list', '{"version":1}'],
    ['negative position', serializeCheckpoints([{ ...entry, position: -1 }])],
    ['unknown strategy', serializeCheckpoints([entry]).replace('device_and_inode', 'checksum')],
  ])('reports a corrupt file (%s) as a problem, not a throw', async (_, text) => {
    const dir = await tempDir();
    const file = path.join(dir, 'checkpoints.json');
    await writeFile(file, text);
    const loaded = await loadCheckpoints(file);
    expect(loaded.problem).toMatch(/corrupt checkpoint file/);
    expect(loaded.checkpoints.size).toBe(0);
  });

  it('a missing file is empty, without a problem', async () => {
    const dir = await tempDir();
    expect(await loadCheckpoints(path.join(dir, 'nope', 'checkpoints.json'))).toEqual({ checkpoints: new Map() });
  });

  it('writes atomically into a created directory, leaving no temp file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'deep', 'in', 'checkpoints.json');
    await writeCheckpoints(file, [entry]);
    await writeCheckpoints(file, [{ ...entry, position: 99 }]);
    expect(await readdir(path.dirname(file))).toEqual(['checkpoints.json']);
    expect([...(await loadCheckpoints(file)).checkpoints.values()][0]?.position).toBe(99);
  });
});

describe('discovery', () => {
  it('expands include globs minus exclude, absolute and sorted, and names the directories to watch', async () => {
    const dir = await tempDir();
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
    for (const f of ['a.log', 'b.log', 'skip.log', 'c.txt', 'sub/d.log', 'sub/deeper/e.log']) await writeFile(path.join(dir, f), '');
    await mkdir(path.join(dir, 'dir.log'));
    const d = new Discovery([path.join(dir, '*.log'), path.join(dir, 'sub/**/*.log')], [path.join(dir, 'skip.log')]);
    expect(await d.scan()).toEqual(['a.log', 'b.log', 'sub/d.log', 'sub/deeper/e.log'].map((f) => path.join(dir, f)));
    expect(d.matches(path.join(dir, 'new.log'))).toBe(true);
    expect(d.matches(path.join(dir, 'skip.log'))).toBe(false);
    expect(d.matches(path.join(dir, 'new.txt'))).toBe(false);
    expect(d.baseDirectories()).toEqual([dir, path.join(dir, 'sub')]);
  });

  it('resolves relative globs against the working directory given', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'x.log'), '');
    expect(await new Discovery(['*.log'], [], dir).scan()).toEqual([path.join(dir, 'x.log')]);
  });
});

describe('docs/sources/file.md', () => {
  it('its TOML example is a valid file source config', async () => {
    const { readFile } = await import('node:fs/promises');
    const toml = (await import('toml')).default;
    const text = await readFile(new URL('../docs/sources/file.md', import.meta.url), 'utf8');
    const block = /```toml\n([\s\S]*?)```/.exec(text)?.[1];
    expect(block).toBeDefined();
    const doc = toml.parse(block!) as { sources: Record<string, Record<string, unknown>> };
    const { problems, config } = parse(doc.sources.app_logs!);
    expect(problems).toEqual([]);
    expect(config.multiline?.mode).toBe('continue_through');
  });
});
