import type { BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { AckTracker } from './acks.js';
import { fingerprintKey, fingerprintOf, type Fingerprint } from './fingerprint.js';
import { LineSplitter, type LineSplitterOptions, type SplitResult } from './lines.js';

export interface OpenedFile {
  handle: FileHandle;
  /** Stats of the open descriptor (not of the path, which may already name another file). */
  stats: BigIntStats;
  fingerprint: Fingerprint;
  key: string;
}

/** Opens a file for reading and fingerprints the descriptor. Rejects with the fs error (EACCES, ENOENT...). */
export async function openFile(filePath: string): Promise<OpenedFile> {
  const handle = await open(filePath, 'r');
  try {
    const stats = await handle.stat({ bigint: true });
    const fingerprint = fingerprintOf(stats);
    return { handle, stats, fingerprint, key: fingerprintKey(fingerprint) };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

export interface ReadOutcome {
  bytesRead: number;
  result: SplitResult;
}

/**
 * One open file being followed: its descriptor, where it has been read to, and the batches of it
 * in flight. Follows the descriptor, not the path, so a renamed file is read to its end.
 */
export class FileTailer {
  readonly key: string;
  readonly fingerprint: Fingerprint;
  /** The matched path the file was last seen at (the `file` field of its lines). */
  path: string;
  readonly acks: AckTracker;
  /** The file is no longer found at a matched path: read it to its end, then close it. */
  draining = false;
  private readonly splitter: LineSplitter;
  private handle: FileHandle | null;

  constructor(opened: OpenedFile, filePath: string, position: number, split: Omit<LineSplitterOptions, 'position'>) {
    this.key = opened.key;
    this.fingerprint = opened.fingerprint;
    this.path = filePath;
    this.handle = opened.handle;
    this.splitter = new LineSplitter({ ...split, position });
    this.acks = new AckTracker(position);
  }

  /** Offset of the next byte to read. */
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
    const held = this.splitter.held;
    buffer.set(held, 0);
    const { bytesRead } = await this.handle.read(buffer, held.byteLength, chunkBytes, this.splitter.position);
    if (bytesRead === 0) return { bytesRead, result: { pieces: [], end: this.splitter.end, discarded: 0 } };
    return { bytesRead, result: this.splitter.splitPrefixed(buffer.subarray(0, held.byteLength + bytesRead)) };
  }

  /** The held unfinished line as a final line: at the end of a file that will not grow, or on stop. */
  flush(): SplitResult {
    return this.splitter.flush();
  }

  /** True (and restarts at offset 0) when the file is now shorter than what was read: it was truncated. */
  async checkTruncated(): Promise<boolean> {
    if (this.handle === null) return false;
    const stats = await this.handle.stat({ bigint: true });
    if (stats.size >= BigInt(this.splitter.position)) return false;
    this.splitter.reset(0);
    return true;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
  }
}
