import type { BigIntStats } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { AckTracker } from './acks.js';
import {
  checksumFingerprint,
  fingerprintKey,
  fingerprintOf,
  inodeKey,
  isGzip,
  type Fingerprint,
  type FingerprintOptions,
} from './fingerprint.js';
import { LineSplitter, type LineSplitterOptions, type SplitResult } from './lines.js';

/** How an open file's size compares with the read position (see `FileTailer.probe`). */
export type SizeChange = 'truncated' | 'grown' | 'same';

export interface OpenedFile {
  handle: FileHandle;
  /** Stats of the open descriptor (not of the path, which may already name another file). */
  stats: BigIntStats;
  fingerprint: Fingerprint;
  key: string;
  /** `dev:inode` of the descriptor. */
  inode: string;
  /** The file is a gzip archive: read decompressed, once. */
  gzip: boolean;
}

/** Opens a file for reading and fingerprints the descriptor by device and inode. Rejects with the fs error (EACCES, ENOENT...). */
export async function openFile(filePath: string): Promise<OpenedFile> {
  const opened = await openFingerprinted(filePath, { strategy: 'device_and_inode' }, 0);
  return opened!;
}

/**
 * Opens a file and fingerprints it with `options`. Resolves `null` (descriptor closed) when a
 * checksum fingerprint cannot be taken yet because the file is shorter than the fingerprinted lines.
 */
export async function openFingerprinted(filePath: string, options: FingerprintOptions, maxLineBytes: number): Promise<OpenedFile | null> {
  const handle = await open(filePath, 'r');
  try {
    const stats = await handle.stat({ bigint: true });
    const gzip = stats.isFile() && (await isGzip(handle));
    let fingerprint: Fingerprint | null;
    if (options.strategy === 'checksum') {
      fingerprint = await checksumFingerprint(handle, { lines: options.lines, ignoredHeaderBytes: options.ignoredHeaderBytes, maxBytes: maxLineBytes });
    } else {
      fingerprint = fingerprintOf(stats);
    }
    if (fingerprint === null) {
      await handle.close();
      return null;
    }
    return { handle, stats, fingerprint, key: fingerprintKey(fingerprint), inode: inodeKey(stats), gzip };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

/**
 * The path of the file `dev:inode` in `dir`, or null: how a file closed for the open-file limit
 * and renamed to a name the globs do not match (logrotate's `app.log` -> `app.log.1`) is found
 * again, so that the lines written before the rename are still read. One readdir and one stat
 * per entry, only when a closed file is found gone from its path.
 */
export async function findByInode(dir: string, inode: string): Promise<string | null> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return null;
  }
  for (const name of names) {
    const candidate = path.join(dir, name);
    try {
      const stats = await stat(candidate, { bigint: true });
      if (stats.isFile() && inodeKey(stats) === inode) return candidate;
    } catch {
      // Gone meanwhile.
    }
  }
  return null;
}

export interface ReadOutcome {
  bytesRead: number;
  result: SplitResult;
}

/** The decompressed stream of a gzip file, handed out in pieces no larger than a read chunk. */
interface GzipReader {
  chunks: AsyncIterator<Buffer>;
  stream: NodeJS.ReadableStream & { destroy(): void };
  pending: Buffer;
  /** Decompressed bytes still to drop before the resume position. */
  skip: number;
}

/**
 * One file being followed: its descriptor, where it has been read to, and the batches of it in
 * flight. Follows the descriptor, not the path, so a renamed file is read to its end. A tailer may
 * be closed and still tracked: a finished gzip archive (immutable, never read again), or an idle
 * file closed to bound open descriptors (`suspended`, reopened by path when it changes).
 */
export class FileTailer {
  key: string;
  fingerprint: Fingerprint;
  /** `dev:inode` of the file: how the file is recognised at a path while open. */
  readonly inode: string;
  readonly gzip: boolean;
  /** The matched path the file was last seen at (the `file` field of its lines). */
  path: string;
  readonly acks: AckTracker;
  /** The file is no longer found at a matched path: read it to its end, then close it. */
  draining = false;
  /** When `draining` was first set (for `rotate_wait_secs`). */
  drainingSinceMs = 0;
  /** A gzip archive read to its end: closed, kept so that it is not read again. */
  complete = false;
  /** Closed while idle to bound open descriptors; reopened by path when it changes. */
  suspended = false;
  /** The file was truncated: a checksum fingerprint must be taken again once it has its first lines. */
  rekey = false;
  /** Where reading was when the truncation was noticed: a copy of the old content resumes there. */
  truncatedAt: number | null = null;
  /** `probe` saw the file shorter than the read position; `applyTruncation` acts on it. */
  private truncationPending = false;
  /** Quiet long enough: send the unfinished last line at the next end of file. */
  flushPartial = false;
  /** A read turn is running on this file: it must not be closed under it. */
  busy = false;
  /** Something may be readable (watch event or size check): read it even if idle. */
  poke = true;
  /** Last time a stat of `path` showed this file there. */
  verifiedMs = 0;
  /** In [0, 1): spreads the safety-net checks of files that went idle together over the interval. */
  readonly checkPhase = Math.random();
  /** Last time the file was checked for truncation, growth and rotation. */
  lastCheckMs = 0;
  /** Last time a read returned data (or the file was opened). */
  lastDataMs = Date.now();
  /** Since when reads have found the end of the file with nothing in flight (for `remove_after_secs`). */
  eofSinceMs: number | null = null;
  /** Modification time when opened, ms (for `oldest_first`: the least recently written file is the oldest). */
  readonly createdMs: number;
  private readonly splitter: LineSplitter;
  private handle: FileHandle | null;
  private gz: GzipReader | null = null;
  private readonly chunkBytes: number;

  constructor(opened: OpenedFile, filePath: string, position: number, split: Omit<LineSplitterOptions, 'position'>, chunkBytes = 65536) {
    this.key = opened.key;
    this.fingerprint = opened.fingerprint;
    this.inode = opened.inode;
    this.gzip = opened.gzip;
    this.path = filePath;
    this.handle = opened.handle;
    this.createdMs = Number(opened.stats.mtimeMs);
    this.splitter = new LineSplitter({ ...split, position });
    this.acks = new AckTracker(position);
    this.chunkBytes = chunkBytes;
  }

  /** Offset of the next byte to read (decompressed bytes for a gzip archive). */
  get position(): number {
    return this.splitter.position;
  }

  /** Bytes of an unfinished last line held back. */
  get heldBytes(): number {
    return this.splitter.held.byteLength;
  }

  get isOpen(): boolean {
    return this.handle !== null;
  }

  /**
   * Reads up to `chunkBytes` after the held bytes into `buffer` (shared, reused by the caller;
   * it must have room for `heldBytes + chunkBytes`) and splits it. `bytesRead` 0 means end of file.
   */
  async read(buffer: Uint8Array, chunkBytes: number): Promise<ReadOutcome> {
    if (this.handle === null) throw new Error(`read after close: ${this.path}`);
    this.applyTruncation();
    // The decompressing stream starts at the first read, so that an archive not yet started can be
    // closed and reopened like any file (open-file limit).
    if (this.gzip && this.gz === null) this.gz = this.openGzip(this.handle, this.splitter.position);
    const held = this.splitter.held;
    buffer.set(held, 0);
    const bytesRead = this.gz !== null ? await this.readGzip(buffer, held.byteLength, chunkBytes) : (await this.handle.read(buffer, held.byteLength, chunkBytes, this.splitter.position)).bytesRead;
    if (bytesRead === 0) return { bytesRead, result: { pieces: [], end: this.splitter.end, discarded: 0 } };
    this.lastDataMs = Date.now();
    this.eofSinceMs = null;
    return { bytesRead, result: this.splitter.splitPrefixed(buffer.subarray(0, held.byteLength + bytesRead)) };
  }

  /** The held unfinished line as a final line: at the end of a file that will not grow, or on stop. */
  flush(): SplitResult {
    return this.splitter.flush();
  }

  /** True when the file is now shorter than what was read: it was truncated (the next read restarts at 0). */
  async checkTruncated(): Promise<boolean> {
    return (await this.probe()) === 'truncated';
  }

  /** Restarts at offset 0 after a truncation noted by `probe`. Returns whether it did. */
  applyTruncation(): boolean {
    if (!this.truncationPending) return false;
    this.truncationPending = false;
    this.truncatedAt = this.splitter.position;
    this.splitter.reset(0);
    this.acks.reset(0);
    this.rekey = true;
    return true;
  }

  /**
   * Compares the open file's size (fstat) with the read position: `truncated`, `grown` (there is something
   * to read) or `same`. A truncation is only noted here; the restart at offset 0 happens at the
   * start of the next `read`, never under a read in progress (reads are serialized by the caller,
   * probes are not).
   */
  async probe(): Promise<SizeChange> {
    if (this.handle === null || this.gzip) return 'same';
    if (this.truncationPending) return 'same';
    return this.sizeChange((await this.handle.stat({ bigint: true })).size);
  }

  /** `probe` for a size read elsewhere (a stat of the path while it names this file). */
  sizeChange(size: bigint): SizeChange {
    if (this.handle === null || this.gzip || this.truncationPending) return 'same';
    const position = BigInt(this.splitter.position);
    if (size < position) {
      this.truncationPending = true;
      return 'truncated';
    }
    return size > position ? 'grown' : 'same';
  }

  /** A gzip archive can be closed and reopened only before its decompression started. */
  get canSuspend(): boolean {
    return !this.gzip || this.gz === null;
  }

  /** Closes the descriptor but keeps the state, to reopen by path later (`resume`). */
  async suspend(): Promise<void> {
    if (this.handle === null || !this.canSuspend) return;
    this.suspended = true;
    const handle = this.handle;
    this.handle = null;
    await handle.close().catch(() => undefined);
  }

  /**
   * Reopens a suspended file at its path (or at `at`, where it was found by inode: see
   * `findByInode`; its lines keep `path` as their file). Resolves false when the path now names another file (the
   * file was rotated away while closed: it is lost to this tailer) or is gone.
   */
  async resume(at: string = this.path): Promise<boolean> {
    if (!this.suspended) return this.handle !== null;
    let handle: FileHandle;
    try {
      handle = await open(at, 'r');
    } catch {
      return false;
    }
    const stats = await handle.stat({ bigint: true }).catch(() => null);
    if (stats === null || inodeKey(stats) !== this.inode) {
      await handle.close().catch(() => undefined);
      return false;
    }
    this.handle = handle;
    this.suspended = false;
    return true;
  }

  /** Size and inode of the file at `path` differ from what was read (cheap check for a suspended tailer). */
  async changedAtPath(): Promise<boolean> {
    try {
      const stats = await stat(this.path, { bigint: true });
      return inodeKey(stats) !== this.inode || stats.size !== BigInt(this.position);
    } catch {
      return true;
    }
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    this.suspended = false;
    this.gz?.stream.destroy();
    this.gz = null;
    await handle?.close();
  }

  private openGzip(handle: FileHandle, position: number): GzipReader {
    const gunzip = createGunzip({ chunkSize: Math.max(64, Math.min(this.chunkBytes, 64 * 1024)) });
    const raw = handle.createReadStream({ start: 0, autoClose: false });
    raw.on('error', (err) => gunzip.destroy(err));
    raw.pipe(gunzip);
    return { chunks: gunzip[Symbol.asyncIterator](), stream: gunzip, pending: Buffer.alloc(0), skip: position };
  }

  private async readGzip(buffer: Uint8Array, at: number, chunkBytes: number): Promise<number> {
    const gz = this.gz!;
    for (;;) {
      if (gz.pending.byteLength === 0) {
        const next = await gz.chunks.next();
        if (next.done === true) return 0;
        gz.pending = next.value;
      }
      if (gz.skip > 0) {
        const drop = Math.min(gz.skip, gz.pending.byteLength);
        gz.skip -= drop;
        gz.pending = gz.pending.subarray(drop);
        continue;
      }
      const n = Math.min(chunkBytes, gz.pending.byteLength);
      buffer.set(gz.pending.subarray(0, n), at);
      gz.pending = gz.pending.subarray(n);
      return n;
    }
  }
}
