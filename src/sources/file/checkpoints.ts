import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
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
  /** `vector` when the file was written by Vector (its entries were imported). */
  format?: 'logwasm' | 'vector';
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
    const checkpoints = parseCheckpoints(text);
    return { checkpoints, format: /"version"\s*:\s*"1"/.test(text) ? 'vector' : 'logwasm' };
  } catch (err) {
    return { checkpoints: new Map(), problem: `corrupt checkpoint file ${file}: ${(err as Error).message}` };
  }
}

export function parseCheckpoints(text: string): Map<string, Checkpoint> {
  const doc: unknown = JSON.parse(text);
  if (typeof doc !== 'object' || doc === null) throw new Error('not a JSON object');
  const { version, checkpoints } = doc as { version?: unknown; checkpoints?: unknown };
  if (version === VECTOR_CHECKPOINTS_VERSION) return parseVectorCheckpoints(text);
  if (version !== CHECKPOINTS_VERSION) throw new Error(`unsupported version ${JSON.stringify(version)}`);
  if (!Array.isArray(checkpoints)) throw new Error('"checkpoints" is not an array');
  const out = new Map<string, Checkpoint>();
  checkpoints.forEach((item: unknown, i) => {
    const entry = item as Record<string, unknown> | null;
    const fingerprint = typeof entry === 'object' && entry !== null ? parseFingerprint(entry.fingerprint) : undefined;
    const valid =
      fingerprint !== undefined &&
      typeof entry!.path === 'string' &&
      Number.isSafeInteger(entry!.position) &&
      (entry!.position as number) >= 0 &&
      typeof entry!.modified === 'string' &&
      !Number.isNaN(Date.parse(entry!.modified));
    if (!valid) throw new Error(`checkpoints[${i}] is malformed`);
    out.set(fingerprintKey(fingerprint), {
      fingerprint,
      path: entry!.path as string,
      position: entry!.position as number,
      modifiedMs: Date.parse(entry!.modified as string),
    });
  });
  return out;
}

function parseFingerprint(value: unknown): Fingerprint | undefined {
  const fp = value as Record<string, unknown> | null | undefined;
  if (typeof fp !== 'object' || fp === null) return undefined;
  if (fp.strategy === 'device_and_inode' && isDecimal(fp.dev) && isDecimal(fp.inode)) {
    return { strategy: 'device_and_inode', dev: fp.dev, inode: fp.inode };
  }
  if (fp.strategy === 'checksum' && isDecimal(fp.checksum)) return { strategy: 'checksum', checksum: fp.checksum };
  return undefined;
}

function isDecimal(value: unknown): value is string {
  return typeof value === 'string' && /^\d+$/.test(value);
}

/** Vector writes `"version": "1"` (a string); ours is the number 1. */
export const VECTOR_CHECKPOINTS_VERSION = '1';

/**
 * Reads Vector's own `checkpoints.json` (lib/file-source/src/checkpointer.rs, state version "1"),
 * which Vector keeps at the same place, `<data_dir>/<source id>/checkpoints.json`. Entries whose
 * fingerprint is `dev_inode` or `first_lines_checksum` carry over (the latter matches only if
 * `fingerprint.lines` and `ignored_header_bytes` are as Vector had them); `checksum` (bytes) and
 * `unknown` are legacy forms logwasm cannot recompute and are skipped. Vector stores no path.
 */
export function parseVectorCheckpoints(text: string): Map<string, Checkpoint> {
  // Fingerprints are u64 JSON numbers: quote long integers before JSON.parse rounds them to doubles.
  const quoted = text.replace(/([:\[,]\s*)(\d{15,})(?=\s*[,\]}])/g, '$1"$2"');
  const doc = JSON.parse(quoted) as { checkpoints?: unknown };
  if (!Array.isArray(doc.checkpoints)) throw new Error('"checkpoints" is not an array');
  const out = new Map<string, Checkpoint>();
  doc.checkpoints.forEach((item: unknown, i) => {
    const entry = item as Record<string, unknown> | null;
    if (typeof entry !== 'object' || entry === null) throw new Error(`checkpoints[${i}] is malformed`);
    const position = Number(entry.position);
    const modifiedMs = typeof entry.modified === 'string' ? Date.parse(entry.modified) : Number.NaN;
    if (!Number.isSafeInteger(position) || position < 0 || Number.isNaN(modifiedMs)) throw new Error(`checkpoints[${i}] is malformed`);
    const fp = entry.fingerprint as Record<string, unknown> | null;
    let fingerprint: Fingerprint | undefined;
    const devInode = fp?.dev_inode;
    const lines = fp?.first_lines_checksum ?? fp?.first_line_checksum;
    if (Array.isArray(devInode) && devInode.length === 2) {
      fingerprint = { strategy: 'device_and_inode', dev: String(devInode[0]), inode: String(devInode[1]) };
    } else if (lines !== undefined) {
      fingerprint = { strategy: 'checksum', checksum: String(lines) };
    }
    if (fingerprint === undefined || !isDecimal(fingerprint.strategy === 'checksum' ? fingerprint.checksum : fingerprint.inode)) return;
    out.set(fingerprintKey(fingerprint), { fingerprint, path: '', position, modifiedMs });
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

/** Writes atomically: a temp file in the same directory, synced, then renamed over the old one. */
export async function writeCheckpoints(file: string, checkpoints: Iterable<Checkpoint>): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${tempCounter++}.tmp`;
  // Flushed to disk before the rename (as Vector does), so that after a power loss the file is the
  // old or the new table, never an empty one.
  const handle = await open(temp, 'w');
  try {
    try {
      await handle.writeFile(serializeCheckpoints(checkpoints));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
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
