import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fingerprintKey, type Fingerprint } from './fingerprint.js';

/** Version written in `checkpoints.json`; a file with another version is treated as corrupt. */
export const CHECKPOINTS_VERSION = 1;
export const CHECKPOINTS_FILE = 'checkpoints.json';

/** Where one file was read up to, by fingerprint. See docs/sources/file.md for the file format. */
export interface Checkpoint {
  fingerprint: Fingerprint;
  /** Path the file had when the checkpoint was last written (informative; lookup is by fingerprint). */
  path: string;
  /** Byte offset of the first byte not yet acknowledged downstream. */
  position: number;
  /** When the position last changed, milliseconds since the Unix epoch. */
  modifiedMs: number;
}

export interface LoadResult {
  checkpoints: Map<string, Checkpoint>;
  /** Set when the file exists but cannot be used; the caller falls back to `read_from`. */
  problem?: string;
}

/** `<data_dir>/<source id>/checkpoints.json` */
export function checkpointsPath(dataDir: string, sourceId: string): string {
  return path.join(dataDir, sourceId, CHECKPOINTS_FILE);
}

/** Reads checkpoints. A missing file is empty; an unreadable or malformed one is a `problem`, never a throw. */
export async function loadCheckpoints(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { checkpoints: new Map() };
    return { checkpoints: new Map(), problem: `cannot read ${file}: ${(err as Error).message}` };
  }
  try {
    return { checkpoints: parseCheckpoints(text) };
  } catch (err) {
    return { checkpoints: new Map(), problem: `corrupt checkpoint file ${file}: ${(err as Error).message}` };
  }
}

export function parseCheckpoints(text: string): Map<string, Checkpoint> {
  const doc: unknown = JSON.parse(text);
  if (typeof doc !== 'object' || doc === null) throw new Error('not a JSON object');
  const { version, checkpoints } = doc as { version?: unknown; checkpoints?: unknown };
  if (version !== CHECKPOINTS_VERSION) throw new Error(`unsupported version ${JSON.stringify(version)}`);
  if (!Array.isArray(checkpoints)) throw new Error('"checkpoints" is not an array');
  const out = new Map<string, Checkpoint>();
  checkpoints.forEach((item: unknown, i) => {
    const entry = item as Record<string, unknown> | null;
    const fp = entry?.fingerprint as Record<string, unknown> | undefined;
    const valid =
      typeof entry === 'object' &&
      entry !== null &&
      typeof fp === 'object' &&
      fp !== null &&
      fp.strategy === 'device_and_inode' &&
      typeof fp.dev === 'string' &&
      typeof fp.inode === 'string' &&
      typeof entry.path === 'string' &&
      Number.isSafeInteger(entry.position) &&
      (entry.position as number) >= 0 &&
      typeof entry.modified === 'string' &&
      !Number.isNaN(Date.parse(entry.modified));
    if (!valid) throw new Error(`checkpoints[${i}] is malformed`);
    const fingerprint: Fingerprint = { strategy: 'device_and_inode', dev: fp.dev as string, inode: fp.inode as string };
    out.set(fingerprintKey(fingerprint), {
      fingerprint,
      path: entry.path as string,
      position: entry.position as number,
      modifiedMs: Date.parse(entry.modified as string),
    });
  });
  return out;
}

export function serializeCheckpoints(checkpoints: Iterable<Checkpoint>): string {
  const list = [...checkpoints].map((c) => ({
    fingerprint: c.fingerprint,
    path: c.path,
    position: c.position,
    modified: new Date(c.modifiedMs).toISOString(),
  }));
  return JSON.stringify({ version: CHECKPOINTS_VERSION, checkpoints: list }, null, 1) + '\n';
}

let tempCounter = 0;

/** Writes atomically: a temp file in the same directory, then rename over the old one. */
export async function writeCheckpoints(file: string, checkpoints: Iterable<Checkpoint>): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${tempCounter++}.tmp`;
  await writeFile(temp, serializeCheckpoints(checkpoints));
  await rename(temp, file);
}

/**
 * The in-memory table plus a writer that never runs two writes at once. `flush()` writes only
 * when something changed since the last write.
 */
export class Checkpointer {
  private readonly table = new Map<string, Checkpoint>();
  private dirty = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  get(key: string): Checkpoint | undefined {
    return this.table.get(key);
  }

  replaceAll(checkpoints: Map<string, Checkpoint>): void {
    this.table.clear();
    for (const [key, value] of checkpoints) this.table.set(key, value);
    this.dirty = true;
  }

  set(fingerprint: Fingerprint, filePath: string, position: number, now = Date.now()): void {
    const key = fingerprintKey(fingerprint);
    const old = this.table.get(key);
    if (old !== undefined && old.position === position && old.path === filePath) return;
    this.table.set(key, { fingerprint, path: filePath, position, modifiedMs: now });
    this.dirty = true;
  }

  delete(key: string): void {
    if (this.table.delete(key)) this.dirty = true;
  }

  keys(): string[] {
    return [...this.table.keys()];
  }

  /** Writes if changed. Rejects with the write error (the caller counts and logs it and retries later). */
  flush(): Promise<void> {
    const run = this.writing.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      try {
        await writeCheckpoints(this.file, this.table.values());
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    });
    this.writing = run.catch(() => undefined);
    return run;
  }
}
