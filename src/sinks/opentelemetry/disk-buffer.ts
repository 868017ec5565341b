/**
 * The engine of `buffer.type = "disk"`: line batches appended to segment files under one
 * directory, each record framed as
 *
 *   u32 LE payload length | u32 LE CRC-32 of the payload | payload
 *
 * where the payload is one `LineBatch` (u32 meta length, meta JSON, u32 line count, the offsets as
 * u32 LE, the line bytes). `append()` resolves once the frame is written and `datasync`ed: from
 * then on the batch survives a crash, and the sink acknowledges it to its source.
 *
 * A reader takes frames in order (`next()`), across segments, following the segment being
 * written. Each frame is acknowledged (`ack`) once the collector accepted it; a segment is
 * deleted when it was read to its end and every frame in it was acknowledged. Segments left by an
 * earlier run are read first (a restart resumes where the last one stopped; frames that were in
 * flight are sent again). New frames never go into an old segment: a fresh one is started per run.
 *
 * The sum of the segment files' sizes stays under `maxSizeBytes`: `append()` waits for room
 * (a frame bigger than the whole buffer is still written once the buffer is empty). A frame that
 * is truncated or fails its CRC ends the reading of its segment: the rest of that segment is
 * skipped, reported through `onCorrupt`, and the segment is deleted once its good frames are
 * acknowledged. Nothing here throws on bad data.
 */
import { mkdir, open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { BatchMeta, LineBatch } from '../../event.js';

/** A new segment is started once the current one reaches this size (or max_size / 4, if smaller). */
export const DISK_SEGMENT_BYTES = 32 * 1024 * 1024;
const FRAME_HEADER = 8;
const SEGMENT_SUFFIX = '.seg';

export interface DiskBufferOptions {
  dir: string;
  maxSizeBytes: number;
  /** Called once per corrupt segment, with where reading stopped. */
  onCorrupt: (file: string, offset: number, reason: string) => void;
}

interface Segment {
  seq: number;
  path: string;
  /** Bytes in the file (for the one being written: bytes written and synced). */
  size: number;
  /** Still being appended to by this run. */
  writing: boolean;
  /** The reader reached its end (or a corrupt frame). */
  readDone: boolean;
  /** Frames handed out and not yet acknowledged. */
  outstanding: number;
}

export interface DiskFrame {
  batch: LineBatch;
  /** Call once the frame's records were accepted (or given up on): lets its segment go. */
  ack: () => void;
}

export class DiskBuffer {
  private readonly segments: Segment[] = [];
  private writer: { segment: Segment; handle: FileHandle } | undefined;
  private nextSeq: number;
  private totalBytes: number;
  private writeChain: Promise<void> = Promise.resolve();
  private readonly spaceWaiters: (() => void)[] = [];
  private dataWaiter: (() => void) | undefined;
  private reader: { segment: Segment; handle: FileHandle; offset: number } | undefined;
  private closed = false;
  private markClosed!: () => void;
  /** Resolves when `close()` was called. */
  readonly whenClosed = new Promise<void>((resolve) => (this.markClosed = resolve));
  private readonly segmentBytes: number;

  private constructor(
    private readonly options: DiskBufferOptions,
    existing: Segment[],
  ) {
    this.segments.push(...existing);
    this.nextSeq = existing.length === 0 ? 1 : existing[existing.length - 1]!.seq + 1;
    this.totalBytes = existing.reduce((sum, s) => sum + s.size, 0);
    this.segmentBytes = Math.max(64 * 1024, Math.min(DISK_SEGMENT_BYTES, Math.floor(options.maxSizeBytes / 4)));
  }

  /** Opens (creating) the directory and lists the segments an earlier run left. */
  static async open(options: DiskBufferOptions): Promise<DiskBuffer> {
    await mkdir(options.dir, { recursive: true });
    const names = (await readdir(options.dir)).filter((n) => /^\d{12}\.seg$/.test(n)).sort();
    const existing: Segment[] = [];
    for (const name of names) {
      const path = join(options.dir, name);
      const { size } = await stat(path);
      existing.push({ seq: Number(name.slice(0, 12)), path, size, writing: false, readDone: false, outstanding: 0 });
    }
    return new DiskBuffer(options, existing);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Bytes in segment files. */
  get sizeBytes(): number {
    return this.totalBytes;
  }

  /** Segment files present (for tests and metrics). */
  get segmentCount(): number {
    return this.segments.length;
  }

  /** Appends one batch; resolves once it is on disk (datasync). Waits while the buffer is full. */
  append(batch: LineBatch): Promise<void> {
    const frame = encodeFrame(batch);
    const done = this.writeChain.then(() => this.writeFrame(frame));
    this.writeChain = done.catch(() => undefined);
    return done;
  }

  private async writeFrame(frame: Uint8Array): Promise<void> {
    if (this.closed) throw new Error('the disk buffer is closed');
    while (this.totalBytes > 0 && this.totalBytes + frame.length > this.options.maxSizeBytes) {
      // Only whole segments are freed: close the one being written so that it can go too.
      if (this.writer !== undefined && this.writer.segment.size > 0) {
        await this.rollSegment();
        continue;
      }
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
      if (this.closed) throw new Error('the disk buffer is closed');
    }
    if (this.writer === undefined || this.writer.segment.size >= this.segmentBytes) await this.rollSegment();
    const { segment, handle } = this.writer!;
    let written = 0;
    while (written < frame.length) {
      const { bytesWritten } = await handle.write(frame, written, frame.length - written, segment.size + written);
      written += bytesWritten;
    }
    await handle.datasync();
    segment.size += frame.length;
    this.totalBytes += frame.length;
    this.wakeReader();
  }

  private async rollSegment(): Promise<void> {
    if (this.writer !== undefined) {
      const old = this.writer;
      old.segment.writing = false;
      this.writer = undefined;
      await old.handle.close();
      this.maybeDelete(old.segment);
      this.wakeReader();
    }
    const seq = this.nextSeq++;
    const path = join(this.options.dir, `${String(seq).padStart(12, '0')}${SEGMENT_SUFFIX}`);
    const handle = await open(path, 'wx');
    const segment: Segment = { seq, path, size: 0, writing: true, readDone: false, outstanding: 0 };
    this.segments.push(segment);
    this.writer = { segment, handle };
  }

  /** The next frame in order; waits for one to be written. Undefined once closed. */
  async next(): Promise<DiskFrame | undefined> {
    for (;;) {
      if (this.closed) return undefined;
      if (this.reader === undefined) {
        const segment = this.segments.find((s) => !s.readDone);
        if (segment === undefined) {
          await new Promise<void>((resolve) => (this.dataWaiter = resolve));
          continue;
        }
        this.reader = { segment, handle: await open(segment.path, 'r'), offset: 0 };
      }
      const reader = this.reader;
      const { segment } = reader;
      const available = segment.size - reader.offset;
      if (available === 0) {
        if (segment.writing) {
          await new Promise<void>((resolve) => (this.dataWaiter = resolve));
          continue;
        }
        await this.finishReading(reader);
        continue;
      }
      const header = Buffer.alloc(FRAME_HEADER);
      if (available < FRAME_HEADER || (await readFully(reader.handle, header, reader.offset)) < FRAME_HEADER) {
        await this.corrupt(reader, 'truncated frame header');
        continue;
      }
      const length = header.readUInt32LE(0);
      const checksum = header.readUInt32LE(4);
      if (length > available - FRAME_HEADER) {
        await this.corrupt(reader, `truncated frame (${length} bytes announced, ${available - FRAME_HEADER} left)`);
        continue;
      }
      const payload = Buffer.alloc(length);
      if ((await readFully(reader.handle, payload, reader.offset + FRAME_HEADER)) < length) {
        await this.corrupt(reader, 'truncated frame');
        continue;
      }
      if (crc32(payload) >>> 0 !== checksum) {
        await this.corrupt(reader, 'CRC mismatch');
        continue;
      }
      let batch: LineBatch;
      try {
        batch = decodePayload(payload);
      } catch (error) {
        await this.corrupt(reader, `undecodable frame: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      reader.offset += FRAME_HEADER + length;
      segment.outstanding++;
      let acked = false;
      return {
        batch,
        ack: () => {
          // After close() an acknowledgement may come from a stop that abandoned the records:
          // the segment is kept, and they are sent again by the next run.
          if (acked || this.closed) return;
          acked = true;
          segment.outstanding--;
          this.maybeDelete(segment);
        },
      };
    }
  }

  private async corrupt(reader: { segment: Segment; handle: FileHandle; offset: number }, reason: string): Promise<void> {
    this.options.onCorrupt(reader.segment.path, reader.offset, reason);
    await this.finishReading(reader);
  }

  private async finishReading(reader: { segment: Segment; handle: FileHandle }): Promise<void> {
    reader.segment.readDone = true;
    this.reader = undefined;
    await reader.handle.close().catch(() => undefined);
    this.maybeDelete(reader.segment);
  }

  private maybeDelete(segment: Segment): void {
    if (!segment.readDone || segment.outstanding > 0 || segment.writing) return;
    const index = this.segments.indexOf(segment);
    if (index < 0) return;
    this.segments.splice(index, 1);
    this.totalBytes -= segment.size;
    void unlink(segment.path).catch(() => undefined);
    for (const wake of this.spaceWaiters.splice(0)) wake();
  }

  private wakeReader(): void {
    const wake = this.dataWaiter;
    this.dataWaiter = undefined;
    wake?.();
  }

  /** Stops reading and writing; what is on disk stays for the next run. */
  async close(): Promise<void> {
    this.closed = true;
    this.markClosed();
    this.wakeReader();
    for (const wake of this.spaceWaiters.splice(0)) wake();
    await this.writeChain;
    await this.writer?.handle.close().catch(() => undefined);
    this.writer = undefined;
    await this.reader?.handle.close().catch(() => undefined);
    this.reader = undefined;
  }
}

async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** The frame of one batch: header and payload. */
export function encodeFrame(batch: LineBatch): Uint8Array {
  const meta = Buffer.from(JSON.stringify(batch.meta), 'utf8');
  const count = batch.offsets.length - 1;
  const start = batch.offsets[0] ?? 0;
  const end = batch.offsets[count] ?? start;
  const dataLength = end - start;
  const payloadLength = 4 + meta.length + 4 + 4 * (count + 1) + dataLength;
  const frame = Buffer.alloc(FRAME_HEADER + payloadLength);
  let at = FRAME_HEADER;
  frame.writeUInt32LE(meta.length, at);
  at += 4;
  meta.copy(frame, at);
  at += meta.length;
  frame.writeUInt32LE(count, at);
  at += 4;
  for (let i = 0; i <= count; i++, at += 4) frame.writeUInt32LE(batch.offsets[i]! - start, at);
  frame.set(batch.data.subarray(start, end), at);
  const payload = frame.subarray(FRAME_HEADER);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload) >>> 0, 4);
  return frame;
}

function decodePayload(payload: Buffer): LineBatch {
  let at = 0;
  const need = (n: number): void => {
    if (at + n > payload.length) throw new Error('payload shorter than its fields');
  };
  need(4);
  const metaLength = payload.readUInt32LE(at);
  at += 4;
  need(metaLength);
  const meta = JSON.parse(payload.toString('utf8', at, at + metaLength)) as BatchMeta;
  at += metaLength;
  need(4);
  const count = payload.readUInt32LE(at);
  at += 4;
  need(4 * (count + 1));
  const offsets = new Uint32Array(count + 1);
  for (let i = 0; i <= count; i++, at += 4) offsets[i] = payload.readUInt32LE(at);
  const data = new Uint8Array(payload.length - at);
  data.set(payload.subarray(at));
  if (offsets[count]! > data.length) throw new Error('offsets beyond the data');
  return { data, offsets, meta };
}

/**
 * Feeds frames from `disk` to `deliver` in order, with at most `maxOutstandingRecords` records
 * handed out and not yet delivered; acknowledges each frame once `deliver` resolved. Ends when the
 * buffer is closed (frames not acknowledged by then stay on disk for the next run).
 */
export async function runDiskSender(
  disk: DiskBuffer,
  deliver: (batch: LineBatch) => Promise<void>,
  maxOutstandingRecords: number,
): Promise<void> {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  for (;;) {
    while (outstanding > 0 && outstanding >= maxOutstandingRecords) {
      await Promise.race([new Promise<void>((resolve) => (wake = resolve)), disk.whenClosed]);
      if (disk.isClosed) return;
    }
    const frame = await disk.next();
    if (frame === undefined) return;
    const count = frame.batch.offsets.length - 1;
    outstanding += count;
    void deliver(frame.batch).then(() => {
      frame.ack();
      outstanding -= count;
      const resume = wake;
      wake = undefined;
      resume?.();
    });
  }
}
