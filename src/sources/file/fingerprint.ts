import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';

/**
 * What identifies a file across renames, copies and restarts: the key of tailers and checkpoints.
 *
 * `checksum` (Vector's default) is a CRC-64/ECMA-182 of the first `lines` lines (delimiters
 * included) after `ignored_header_bytes`, computed on decompressed bytes for gzip files, exactly as
 * Vector computes its `first_lines_checksum`: a file copied or moved to another inode keeps its
 * fingerprint, and two files with the same first lines are the same file (only one is read).
 * `device_and_inode` identifies a file by where it lives on disk: a copy is a new file.
 */
export interface DeviceInodeFingerprint {
  strategy: 'device_and_inode';
  /** Decimal strings: inode numbers may exceed 2^53. */
  dev: string;
  inode: string;
}

export interface ChecksumFingerprint {
  strategy: 'checksum';
  /** The unsigned 64-bit CRC as a decimal string (Vector writes it as a JSON integer). */
  checksum: string;
}

export type Fingerprint = DeviceInodeFingerprint | ChecksumFingerprint;

/** How fingerprints are taken: the parsed `fingerprint` table. */
export type FingerprintOptions =
  | { strategy: 'checksum'; lines: number; ignoredHeaderBytes: number }
  | { strategy: 'device_and_inode' };

/** Vector's default for `fingerprint.lines`. */
export const DEFAULT_FINGERPRINT_LINES = 1;
/** Vector's default for `fingerprint.ignored_header_bytes`. */
export const DEFAULT_FINGERPRINT_IGNORED_HEADER_BYTES = 0;
/** Vector's default strategy. */
export const DEFAULT_FINGERPRINT: FingerprintOptions = {
  strategy: 'checksum',
  lines: DEFAULT_FINGERPRINT_LINES,
  ignoredHeaderBytes: DEFAULT_FINGERPRINT_IGNORED_HEADER_BYTES,
};

/** The first bytes of every gzip stream. Files starting with them are read decompressed, as Vector does. */
export const GZIP_MAGIC = Uint8Array.of(0x1f, 0x8b);

export function fingerprintOf(stats: BigIntStats): DeviceInodeFingerprint {
  return { strategy: 'device_and_inode', dev: stats.dev.toString(), inode: stats.ino.toString() };
}

/** A string that is equal for equal fingerprints: the key of tailers and checkpoints. */
export function fingerprintKey(fingerprint: Fingerprint): string {
  return fingerprint.strategy === 'checksum'
    ? `checksum:${fingerprint.checksum}`
    : `${fingerprint.strategy}:${fingerprint.dev}:${fingerprint.inode}`;
}

/** `dev:inode` of a stat, whatever the fingerprint strategy: how an open file is recognised at a path. */
export function inodeKey(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}`;
}

// CRC-64/ECMA-182 (poly 0x42F0E1EBA9EA3693, not reflected, init 0, xorout 0), table-driven on two
// 32-bit halves: BigInt arithmetic per byte would be ~50x slower.
const POLY_HI = 0x42f0e1eb;
const POLY_LO = 0xa9ea3693;
const TABLE_HI = new Uint32Array(256);
const TABLE_LO = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let hi = i << 24;
  let lo = 0;
  for (let bit = 0; bit < 8; bit++) {
    const top = hi & 0x80000000;
    hi = ((hi << 1) | (lo >>> 31)) >>> 0;
    lo = (lo << 1) >>> 0;
    if (top !== 0) {
      hi = (hi ^ POLY_HI) >>> 0;
      lo = (lo ^ POLY_LO) >>> 0;
    }
  }
  TABLE_HI[i] = hi >>> 0;
  TABLE_LO[i] = lo >>> 0;
}

/** CRC-64/ECMA-182 of `data` (the CRC Vector's fingerprinter uses); check value of "123456789" is 0x6c40df5f0b497347. */
export function crc64Ecma182(data: Uint8Array): bigint {
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < data.length; i++) {
    const index = ((hi >>> 24) ^ data[i]!) & 0xff;
    hi = (((hi << 8) | (lo >>> 24)) ^ TABLE_HI[index]!) >>> 0;
    lo = ((lo << 8) ^ TABLE_LO[index]!) >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Bytes read per step while looking for the end of the fingerprinted lines. */
const FINGERPRINT_READ_STEP = 4096;

/**
 * Reads the head of an open file (decompressed if it is gzip) and returns its checksum
 * fingerprint, or `null` when the file does not yet hold `lines` complete lines after the header:
 * such a file waits, unread, until it grows (Vector's behaviour). At most `maxBytes` bytes are
 * hashed: a first line longer than that is fingerprinted by its first `maxBytes` bytes, as Vector
 * does with `max_line_bytes`.
 */
export async function checksumFingerprint(
  handle: FileHandle,
  options: { lines: number; ignoredHeaderBytes: number; maxBytes: number },
): Promise<ChecksumFingerprint | null> {
  const head = await readHead(handle, options.ignoredHeaderBytes + options.maxBytes, options.ignoredHeaderBytes, options.lines);
  const body = head.subarray(Math.min(options.ignoredHeaderBytes, head.byteLength));
  let seen = 0;
  let end = -1;
  for (let i = 0; i < body.byteLength; i++) {
    if (body[i] === 0x0a && ++seen === options.lines) {
      end = i + 1;
      break;
    }
  }
  if (end < 0) {
    if (body.byteLength < options.maxBytes) return null;
    end = options.maxBytes;
  }
  return { strategy: 'checksum', checksum: crc64Ecma182(body.subarray(0, end)).toString() };
}

/** Whether the open file starts with the gzip magic bytes. */
export async function isGzip(handle: FileHandle): Promise<boolean> {
  const magic = new Uint8Array(GZIP_MAGIC.byteLength);
  const { bytesRead } = await handle.read(magic, 0, magic.byteLength, 0);
  return bytesRead === magic.byteLength && magic.every((b, i) => b === GZIP_MAGIC[i]);
}

/**
 * Up to `limit` bytes of the (decompressed) file from its start, stopping early once `lines`
 * newlines follow `skip`. Gzip input is inflated from the start with a sync flush, so a partly
 * written archive yields what it holds so far instead of an error.
 */
async function readHead(handle: FileHandle, limit: number, skip: number, lines: number): Promise<Uint8Array> {
  const gzip = await isGzip(handle);
  let raw = new Uint8Array(0);
  for (let step = FINGERPRINT_READ_STEP; ; step *= 2) {
    const want = gzip ? step : Math.min(step, limit);
    const buf = new Uint8Array(want);
    const { bytesRead } = await handle.read(buf, 0, want, 0);
    raw = buf.subarray(0, bytesRead);
    const fileEnded = bytesRead < want;
    const plain = gzip ? inflatePartial(raw) : raw;
    if (plain.byteLength >= limit || fileEnded || countNewlines(plain, skip) >= lines) return plain.subarray(0, Math.min(limit, plain.byteLength));
  }
}

function inflatePartial(raw: Uint8Array): Uint8Array {
  try {
    return gunzipSync(raw, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch {
    // A corrupt archive: fingerprint what cannot be inflated as empty; reading it reports the error.
    return new Uint8Array(0);
  }
}

function countNewlines(data: Uint8Array, from: number): number {
  let n = 0;
  for (let i = from; i < data.byteLength; i++) if (data[i] === 0x0a) n++;
  return n;
}
