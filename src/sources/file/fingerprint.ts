import type { BigIntStats } from 'node:fs';

/**
 * What identifies a file across renames and restarts. Only Vector's `device_and_inode` strategy
 * exists for now; a `checksum` strategy (hash of the first lines) would be another member of this
 * union with its own `fingerprintKey` form, and checkpoints already store the strategy name.
 */
export interface DeviceInodeFingerprint {
  strategy: 'device_and_inode';
  /** Decimal strings: inode numbers may exceed 2^53. */
  dev: string;
  inode: string;
}

export type Fingerprint = DeviceInodeFingerprint;

export function fingerprintOf(stats: BigIntStats): Fingerprint {
  return { strategy: 'device_and_inode', dev: stats.dev.toString(), inode: stats.ino.toString() };
}

/** A string that is equal for equal fingerprints: the key of tailers and checkpoints. */
export function fingerprintKey(fingerprint: Fingerprint): string {
  return `${fingerprint.strategy}:${fingerprint.dev}:${fingerprint.inode}`;
}
