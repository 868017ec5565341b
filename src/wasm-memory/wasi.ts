/**
 * The WASI preview1 subset this host gives a guest built for wasm32-wasi, and only when the
 * transform sets `wasi = true`:
 * - what Rust's std imports anyway: `fd_write` to stdout/stderr (captured, never written to the
 *   agent's own streams), an empty environment, `proc_exit` (a trap), `random_get`;
 * - files, only under the directories the transform preopens (`wasi_preopens`, read-only, and
 *   `wasi_preopens_writable`): `fd_prestat_get`/`fd_prestat_dir_name` announce them, `path_open`
 *   opens below them, `fd_read`/`fd_write`/`fd_seek`/`fd_close`/`fd_fdstat_get`/
 *   `fd_filestat_get`/`path_filestat_get` work on what was opened. A path is confined: absolute
 *   paths and `..` past the preopen are refused (`ENOTCAPABLE`), and the real path (symlinks
 *   resolved) must stay under the preopen's real path, which is what is then opened (with
 *   `O_NOFOLLOW`). Opening for writing, creating or truncating under a read-only preopen fails with
 *   `EROFS`. No preopen, no file: `fd_prestat_get(3)` says `EBADF` and the guest sees none.
 * Nothing touches the clock or network: any other WASI import is refused when the module is checked.
 *
 * Synchronous node:fs calls: this runs inside a worker thread, one guest call at a time.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, realpathSync, statSync, writeSync, type BigIntStats } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { PluginLoadError } from '../errors.js';
import type { WasmImports, WasmMemory } from './wasm-api.js';

export const WASI_MODULE = 'wasi_snapshot_preview1';

/** The WASI functions this host provides. */
export const WASI_FUNCTIONS: readonly string[] = [
  'fd_write',
  'environ_get',
  'environ_sizes_get',
  'proc_exit',
  'random_get',
  'fd_prestat_get',
  'fd_prestat_dir_name',
  'path_open',
  'fd_read',
  'fd_seek',
  'fd_close',
  'fd_fdstat_get',
  'fd_filestat_get',
  'path_filestat_get',
];

/** Longest guest stdout/stderr text kept per batch, in characters. */
export const MAX_GUEST_OUTPUT_CHARS = 2048;

/** Most files and directories a guest may hold open at once (past it, `path_open` says `ENFILE`). */
export const MAX_GUEST_OPEN_FILES = 64;

/** A directory the guest may use, under the same absolute path as on the host. */
export interface WasiPreopen {
  /** Absolute host path; the guest sees the same path. */
  path: string;
  /** Whether the guest may create, write and truncate files below it. */
  writable: boolean;
}

// WASI preview1 errno values.
const ERRNO_SUCCESS = 0;
const ERRNO_ACCES = 2;
const ERRNO_BADF = 8;
const ERRNO_EXIST = 20;
const ERRNO_FAULT = 21;
const ERRNO_INVAL = 28;
const ERRNO_IO = 29;
const ERRNO_ISDIR = 31;
const ERRNO_LOOP = 32;
const ERRNO_NAMETOOLONG = 37;
const ERRNO_NFILE = 41;
const ERRNO_NOENT = 44;
const ERRNO_NOTDIR = 54;
const ERRNO_NOTEMPTY = 55;
const ERRNO_PERM = 63;
const ERRNO_ROFS = 69;
const ERRNO_SPIPE = 70;
const ERRNO_NOTCAPABLE = 76;

const NODE_ERRNO: Readonly<Record<string, number>> = {
  EACCES: ERRNO_ACCES,
  EEXIST: ERRNO_EXIST,
  EISDIR: ERRNO_ISDIR,
  ELOOP: ERRNO_LOOP,
  ENAMETOOLONG: ERRNO_NAMETOOLONG,
  ENOENT: ERRNO_NOENT,
  ENOTDIR: ERRNO_NOTDIR,
  ENOTEMPTY: ERRNO_NOTEMPTY,
  EPERM: ERRNO_PERM,
  EROFS: ERRNO_ROFS,
  EBADF: ERRNO_BADF,
};

// filetype
const FILETYPE_UNKNOWN = 0;
const FILETYPE_CHARACTER_DEVICE = 2;
const FILETYPE_DIRECTORY = 3;
const FILETYPE_REGULAR_FILE = 4;
const FILETYPE_SYMBOLIC_LINK = 7;

const LOOKUP_SYMLINK_FOLLOW = 1;
const OFLAGS_CREAT = 1;
const OFLAGS_DIRECTORY = 2;
const OFLAGS_EXCL = 4;
const OFLAGS_TRUNC = 8;
const FDFLAGS_APPEND = 1;
const RIGHT_FD_WRITE = 1n << 6n;
/** Every right preview1 defines (bits 0..29). */
const ALL_RIGHTS = (1n << 30n) - 1n;

const WHENCE_SET = 0;
const WHENCE_CUR = 1;
const WHENCE_END = 2;

/** Thrown by `proc_exit`: ends the call like a trap. */
export class GuestExit extends Error {
  constructor(readonly exitCode: number) {
    super(`the guest called proc_exit(${exitCode})`);
  }
}

export interface WasiHost {
  imports: WasmImports;
  /** Binds the instance's memory once it exists. */
  bind(memory: WasmMemory): void;
  /** Text written to fd 1 and 2 since the last call, then forgets it. */
  takeOutput(): string | undefined;
  /** Closes every file the guest left open (the instance is being thrown away). */
  close(): void;
}

/** A preopen as checked at start: its real path is what confinement compares against. */
interface Root {
  guestPath: string;
  realPath: string;
  writable: boolean;
}

interface DirEntry {
  kind: 'dir';
  root: Root;
  /** Real host path of this directory (under root.realPath). */
  realPath: string;
  preopen: boolean;
}

interface FileEntry {
  kind: 'file';
  root: Root;
  realPath: string;
  hostFd: number;
  position: number;
  append: boolean;
  writable: boolean;
}

type Entry = DirEntry | FileEntry;

/**
 * Resolves and checks the preopens: each must be an existing directory, given as an absolute
 * path. Throws PluginLoadError naming the first that is not, so a bad config fails at start.
 */
export function checkPreopens(preopens: readonly WasiPreopen[], label = 'plugin'): Root[] {
  return preopens.map((preopen) => {
    if (!isAbsolute(preopen.path)) throw new PluginLoadError(`${label}: WASI preopen "${preopen.path}" is not an absolute path`);
    let realPath: string;
    try {
      realPath = realpathSync(preopen.path);
      if (!statSync(realPath).isDirectory()) throw new Error('not a directory');
    } catch (error) {
      throw new PluginLoadError(`${label}: WASI preopen "${preopen.path}" is not a readable directory: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    return { guestPath: resolve(preopen.path), realPath, writable: preopen.writable };
  });
}

function within(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function errnoOf(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? (NODE_ERRNO[code] ?? ERRNO_IO) : ERRNO_IO;
}

function filetypeOf(stats: BigIntStats): number {
  if (stats.isFile()) return FILETYPE_REGULAR_FILE;
  if (stats.isDirectory()) return FILETYPE_DIRECTORY;
  if (stats.isSymbolicLink()) return FILETYPE_SYMBOLIC_LINK;
  if (stats.isCharacterDevice()) return FILETYPE_CHARACTER_DEVICE;
  return FILETYPE_UNKNOWN;
}

export function wasiHost(preopens: readonly WasiPreopen[] = [], label = 'plugin'): WasiHost {
  let memory: WasmMemory | undefined;
  let output = '';
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const fds = new Map<number, Entry>();
  let nextFd = 3;
  for (const root of checkPreopens(preopens, label)) fds.set(nextFd++, { kind: 'dir', root, realPath: root.realPath, preopen: true });

  const view = (): DataView | undefined => (memory ? new DataView(memory.buffer) : undefined);
  const inBounds = (ptr: number, len: number): boolean => memory !== undefined && ptr + len <= memory.buffer.byteLength;
  const bytesAt = (ptr: number, len: number): Uint8Array => new Uint8Array(memory!.buffer, ptr, len);

  /** Reads the iovec array: [ptr, len] pairs, or undefined when any is outside memory. */
  const iovecs = (dv: DataView, iovs: number, count: number): [number, number][] | undefined => {
    if (!inBounds(iovs, count * 8)) return undefined;
    const list: [number, number][] = [];
    for (let i = 0; i < count; i++) {
      const ptr = dv.getUint32(iovs + i * 8, true);
      const len = dv.getUint32(iovs + i * 8 + 4, true);
      if (!inBounds(ptr, len)) return undefined;
      list.push([ptr, len]);
    }
    return list;
  };

  /**
   * The real host path `rel` names below directory `dir`, or an errno. `create`: the last
   * component may not exist yet (its parent is checked instead). `follow`: a symlink as the last
   * component is followed (and its target checked); otherwise it is returned as itself.
   */
  const confine = (dir: DirEntry, rel: string, follow: boolean, create: boolean): string | number => {
    if (rel === '') return ERRNO_NOENT;
    if (isAbsolute(rel) || rel.includes('\0')) return ERRNO_NOTCAPABLE;
    const lexical = resolve(dir.realPath, rel);
    if (!within(dir.root.realPath, lexical)) return ERRNO_NOTCAPABLE;
    if (lexical === dir.root.realPath) return lexical;
    let parent: string;
    try {
      parent = realpathSync(dirname(lexical));
    } catch (error) {
      return errnoOf(error);
    }
    if (!within(dir.root.realPath, parent)) return ERRNO_NOTCAPABLE;
    const last = join(parent, basename(lexical));
    let linked = false;
    try {
      linked = lstatSync(last).isSymbolicLink();
    } catch (error) {
      if (errnoOf(error) !== ERRNO_NOENT || !create) return errnoOf(error);
      return last;
    }
    if (!linked || !follow) return last;
    let target: string;
    try {
      target = realpathSync(last);
    } catch (error) {
      // A dangling link: creating through it would write wherever it points.
      return errnoOf(error) === ERRNO_NOENT && create ? ERRNO_NOTCAPABLE : errnoOf(error);
    }
    return within(dir.root.realPath, target) ? target : ERRNO_NOTCAPABLE;
  };

  const dirAt = (fd: number): DirEntry | number => {
    const entry = fds.get(fd);
    if (entry === undefined) return ERRNO_BADF;
    return entry.kind === 'dir' ? entry : ERRNO_NOTDIR;
  };

  const pathAt = (ptr: number, len: number): string | undefined => (inBounds(ptr, len) ? decoder.decode(bytesAt(ptr, len)) : undefined);

  const writeFilestat = (dv: DataView, buf: number, stats: BigIntStats): void => {
    dv.setBigUint64(buf, stats.dev, true);
    dv.setBigUint64(buf + 8, stats.ino, true);
    dv.setUint8(buf + 16, filetypeOf(stats));
    dv.setBigUint64(buf + 24, stats.nlink, true);
    dv.setBigUint64(buf + 32, stats.size, true);
    dv.setBigUint64(buf + 40, stats.atimeNs, true);
    dv.setBigUint64(buf + 48, stats.mtimeNs, true);
    dv.setBigUint64(buf + 56, stats.ctimeNs, true);
  };

  const functions = {
    fd_write(fd: number, iovs: number, iovsLen: number, nwritten: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(nwritten >>> 0, 4)) return ERRNO_FAULT;
      const list = iovecs(dv, iovs >>> 0, iovsLen >>> 0);
      if (list === undefined) return ERRNO_FAULT;
      let total = 0;
      if (fd === 1 || fd === 2) {
        for (const [ptr, len] of list) {
          if (output.length < MAX_GUEST_OUTPUT_CHARS) output += decoder.decode(bytesAt(ptr, len));
          total += len;
        }
      } else {
        const entry = fds.get(fd);
        if (entry === undefined) return ERRNO_BADF;
        if (entry.kind === 'dir') return ERRNO_ISDIR;
        if (!entry.writable) return ERRNO_BADF;
        try {
          if (entry.append) entry.position = Number(fstatSync(entry.hostFd, { bigint: true }).size);
          for (const [ptr, len] of list) {
            const written = writeSync(entry.hostFd, bytesAt(ptr, len), 0, len, entry.position);
            entry.position += written;
            total += written;
            if (written < len) break;
          }
        } catch (error) {
          return errnoOf(error);
        }
      }
      dv.setUint32(nwritten >>> 0, total, true);
      return ERRNO_SUCCESS;
    },
    fd_read(fd: number, iovs: number, iovsLen: number, nread: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(nread >>> 0, 4)) return ERRNO_FAULT;
      const list = iovecs(dv, iovs >>> 0, iovsLen >>> 0);
      if (list === undefined) return ERRNO_FAULT;
      const entry = fds.get(fd);
      if (entry === undefined) return ERRNO_BADF;
      if (entry.kind === 'dir') return ERRNO_ISDIR;
      let total = 0;
      try {
        for (const [ptr, len] of list) {
          const got = readSync(entry.hostFd, bytesAt(ptr, len), 0, len, entry.position);
          entry.position += got;
          total += got;
          if (got < len) break;
        }
      } catch (error) {
        return errnoOf(error);
      }
      dv.setUint32(nread >>> 0, total, true);
      return ERRNO_SUCCESS;
    },
    fd_seek(fd: number, offset: bigint, whence: number, newOffset: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(newOffset >>> 0, 8)) return ERRNO_FAULT;
      if (fd >= 0 && fd <= 2) return ERRNO_SPIPE;
      const entry = fds.get(fd);
      if (entry === undefined) return ERRNO_BADF;
      if (entry.kind === 'dir') return ERRNO_ISDIR;
      let base: number;
      if (whence === WHENCE_SET) base = 0;
      else if (whence === WHENCE_CUR) base = entry.position;
      else if (whence === WHENCE_END) {
        try {
          base = Number(fstatSync(entry.hostFd, { bigint: true }).size);
        } catch (error) {
          return errnoOf(error);
        }
      } else return ERRNO_INVAL;
      const next = base + Number(offset);
      if (!Number.isSafeInteger(next) || next < 0) return ERRNO_INVAL;
      entry.position = next;
      dv.setBigUint64(newOffset >>> 0, BigInt(next), true);
      return ERRNO_SUCCESS;
    },
    fd_close(fd: number): number {
      const entry = fds.get(fd);
      if (entry === undefined) return ERRNO_BADF;
      fds.delete(fd);
      if (entry.kind === 'file') {
        try {
          closeSync(entry.hostFd);
        } catch (error) {
          return errnoOf(error);
        }
      }
      return ERRNO_SUCCESS;
    },
    fd_fdstat_get(fd: number, buf: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(buf >>> 0, 24)) return ERRNO_FAULT;
      let filetype: number;
      let flags = 0;
      let rights = ALL_RIGHTS;
      if (fd >= 0 && fd <= 2) {
        filetype = FILETYPE_CHARACTER_DEVICE;
        rights = fd === 0 ? 0n : RIGHT_FD_WRITE;
      } else {
        const entry = fds.get(fd);
        if (entry === undefined) return ERRNO_BADF;
        filetype = entry.kind === 'dir' ? FILETYPE_DIRECTORY : FILETYPE_REGULAR_FILE;
        if (entry.kind === 'file') {
          if (entry.append) flags |= FDFLAGS_APPEND;
          if (!entry.writable) rights &= ~RIGHT_FD_WRITE;
        }
      }
      const at = buf >>> 0;
      dv.setUint8(at, filetype);
      dv.setUint16(at + 2, flags, true);
      dv.setBigUint64(at + 8, rights, true);
      dv.setBigUint64(at + 16, rights, true);
      return ERRNO_SUCCESS;
    },
    fd_filestat_get(fd: number, buf: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(buf >>> 0, 64)) return ERRNO_FAULT;
      const entry = fds.get(fd);
      if (entry === undefined) return ERRNO_BADF;
      try {
        writeFilestat(dv, buf >>> 0, entry.kind === 'file' ? fstatSync(entry.hostFd, { bigint: true }) : statSync(entry.realPath, { bigint: true }));
      } catch (error) {
        return errnoOf(error);
      }
      return ERRNO_SUCCESS;
    },
    path_filestat_get(fd: number, lookupFlags: number, pathPtr: number, pathLen: number, buf: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(buf >>> 0, 64)) return ERRNO_FAULT;
      const dir = dirAt(fd);
      if (typeof dir === 'number') return dir;
      const rel = pathAt(pathPtr >>> 0, pathLen >>> 0);
      if (rel === undefined) return ERRNO_FAULT;
      const follow = (lookupFlags & LOOKUP_SYMLINK_FOLLOW) !== 0;
      const real = confine(dir, rel, follow, false);
      if (typeof real === 'number') return real;
      try {
        writeFilestat(dv, buf >>> 0, lstatSync(real, { bigint: true }));
      } catch (error) {
        return errnoOf(error);
      }
      return ERRNO_SUCCESS;
    },
    fd_prestat_get(fd: number, buf: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(buf >>> 0, 8)) return ERRNO_FAULT;
      const entry = fds.get(fd);
      if (entry === undefined || entry.kind !== 'dir' || !entry.preopen) return ERRNO_BADF;
      dv.setUint8(buf >>> 0, 0); // preopentype: dir
      dv.setUint32((buf >>> 0) + 4, encoder.encode(entry.root.guestPath).byteLength, true);
      return ERRNO_SUCCESS;
    },
    fd_prestat_dir_name(fd: number, pathPtr: number, pathLen: number): number {
      const entry = fds.get(fd);
      if (entry === undefined || entry.kind !== 'dir' || !entry.preopen) return ERRNO_BADF;
      const name = encoder.encode(entry.root.guestPath);
      if ((pathLen >>> 0) < name.byteLength) return ERRNO_NAMETOOLONG;
      if (!inBounds(pathPtr >>> 0, name.byteLength)) return ERRNO_FAULT;
      bytesAt(pathPtr >>> 0, name.byteLength).set(name);
      return ERRNO_SUCCESS;
    },
    path_open(
      fd: number,
      lookupFlags: number,
      pathPtr: number,
      pathLen: number,
      oflags: number,
      rightsBase: bigint,
      _rightsInheriting: bigint,
      fdflags: number,
      fdOut: number,
    ): number {
      const dv = view();
      if (dv === undefined || !inBounds(fdOut >>> 0, 4)) return ERRNO_FAULT;
      const dir = dirAt(fd);
      if (typeof dir === 'number') return dir;
      const rel = pathAt(pathPtr >>> 0, pathLen >>> 0);
      if (rel === undefined) return ERRNO_FAULT;
      const create = (oflags & OFLAGS_CREAT) !== 0;
      const wantsWrite = (BigInt(rightsBase) & RIGHT_FD_WRITE) !== 0n || create || (oflags & OFLAGS_TRUNC) !== 0 || (fdflags & FDFLAGS_APPEND) !== 0;
      if (wantsWrite && !dir.root.writable) return ERRNO_ROFS;
      let open = 0;
      for (const entry of fds.values()) if (entry.kind === 'file' || !entry.preopen) open++;
      if (open >= MAX_GUEST_OPEN_FILES) return ERRNO_NFILE;
      const real = confine(dir, rel, (lookupFlags & LOOKUP_SYMLINK_FOLLOW) !== 0, create);
      if (typeof real === 'number') return real;
      let isDir = false;
      try {
        isDir = lstatSync(real).isDirectory();
      } catch (error) {
        if (errnoOf(error) !== ERRNO_NOENT) return errnoOf(error);
      }
      if ((oflags & OFLAGS_DIRECTORY) !== 0 && !isDir) return create ? ERRNO_INVAL : ERRNO_NOTDIR;
      const newFd = nextFd++;
      if (isDir) {
        if (wantsWrite) return ERRNO_ISDIR;
        fds.set(newFd, { kind: 'dir', root: dir.root, realPath: real, preopen: false });
      } else {
        // O_NOFOLLOW: what is opened is the path just checked, never a link swapped in since.
        let flags = (wantsWrite ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NOFOLLOW;
        if (create) flags |= constants.O_CREAT;
        if ((oflags & OFLAGS_EXCL) !== 0) flags |= constants.O_EXCL;
        if ((oflags & OFLAGS_TRUNC) !== 0) flags |= constants.O_TRUNC;
        let hostFd: number;
        try {
          hostFd = openSync(real, flags, 0o644);
        } catch (error) {
          return errnoOf(error);
        }
        fds.set(newFd, { kind: 'file', root: dir.root, realPath: real, hostFd, position: 0, append: (fdflags & FDFLAGS_APPEND) !== 0, writable: wantsWrite });
      }
      dv.setUint32(fdOut >>> 0, newFd, true);
      return ERRNO_SUCCESS;
    },
    environ_sizes_get(countPtr: number, sizePtr: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(countPtr >>> 0, 4) || !inBounds(sizePtr >>> 0, 4)) return ERRNO_FAULT;
      dv.setUint32(countPtr >>> 0, 0, true);
      dv.setUint32(sizePtr >>> 0, 0, true);
      return ERRNO_SUCCESS;
    },
    environ_get(): number {
      return ERRNO_SUCCESS;
    },
    proc_exit(code: number): never {
      throw new GuestExit(code);
    },
    random_get(ptr: number, len: number): number {
      if (memory === undefined || !inBounds(ptr >>> 0, len >>> 0)) return ERRNO_FAULT;
      randomFillSync(bytesAt(ptr >>> 0, len >>> 0));
      return ERRNO_SUCCESS;
    },
  };
  return {
    imports: { [WASI_MODULE]: functions as unknown as WasmImports[string] },
    bind(bound) {
      memory = bound;
    },
    takeOutput() {
      if (output === '') return undefined;
      const text = output.length > MAX_GUEST_OUTPUT_CHARS ? `${output.slice(0, MAX_GUEST_OUTPUT_CHARS)}...` : output;
      output = '';
      return text;
    },
    close() {
      for (const [fd, entry] of fds) {
        if (entry.kind !== 'file') continue;
        fds.delete(fd);
        try {
          closeSync(entry.hostFd);
        } catch {
          // Already gone; nothing to give back.
        }
      }
    },
  };
}
