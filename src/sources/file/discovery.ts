import { stat } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';
import { glob } from 'tinyglobby';

/**
 * Expands `include`/`exclude` globs into absolute file paths: tinyglobby expands, picomatch
 * matches. The source watches the globs' base directories (see `baseDirectories`) with fs.watch
 * and rescans when something appears there; `scanIfChanged` is the cheap periodic rescan.
 */
export class Discovery {
  private readonly include: string[];
  private readonly exclude: string[];
  private readonly isIncluded: (p: string) => boolean;
  private readonly isExcluded: (p: string) => boolean;

  constructor(include: readonly string[], exclude: readonly string[], cwd = process.cwd()) {
    this.include = include.map((g) => toAbsoluteGlob(g, cwd));
    this.exclude = exclude.map((g) => toAbsoluteGlob(g, cwd));
    this.isIncluded = picomatch(this.include, { dot: true });
    this.isExcluded = this.exclude.length > 0 ? picomatch(this.exclude, { dot: true }) : () => false;
  }

  /** Whether an absolute path is a file this source wants. */
  matches(file: string): boolean {
    const p = toPosix(file);
    return this.isIncluded(p) && !this.isExcluded(p);
  }

  /** Directory -> `mtime:ctime` (ns) when the last glob expansion ran. */
  private dirStamps = new Map<string, string>();
  private lastFound: string[] | null = null;
  private lastFullMs = 0;

  /**
   * The cheap rescan: the previous expansion again, without reading any directory, when every
   * directory it found files in (and every base directory) still has the mtime it had then and
   * the last full expansion is less than `maxAgeMs` old; otherwise a full `scan`. A new
   * subdirectory of a directory that held no match is missed until the next full expansion (or
   * the watch event that reports it).
   */
  async scanIfChanged(maxAgeMs: number, now = Date.now()): Promise<string[]> {
    if (this.lastFound !== null && now - this.lastFullMs < maxAgeMs) {
      const stamps = await stampAll([...this.dirStamps.keys()]);
      let same = stamps.size === this.dirStamps.size;
      if (same) for (const [dir, stamp] of stamps) if (this.dirStamps.get(dir) !== stamp) same = false;
      if (same) return this.lastFound;
    }
    return this.scan(now);
  }

  /** Every matching regular file, absolute, sorted (so reads start in a stable order). */
  async scan(now = Date.now()): Promise<string[]> {
    // Stamped before listing: a change during the listing shows as a changed stamp next time.
    const before = await stampAll(this.watchedDirectories(this.lastFound ?? []));
    const found = await glob(this.include, {
      absolute: true,
      onlyFiles: true,
      dot: true,
      expandDirectories: false,
      followSymbolicLinks: true,
      ignore: this.exclude,
    });
    const result = found.filter((f) => this.matches(f)).sort();
    const stamps = new Map<string, string>();
    const fresh: string[] = [];
    for (const dir of this.watchedDirectories(result)) {
      const stamp = before.get(dir);
      if (stamp === undefined) fresh.push(dir);
      else stamps.set(dir, stamp);
    }
    for (const [dir, stamp] of await stampAll(fresh)) stamps.set(dir, stamp);
    this.dirStamps = stamps;
    this.lastFound = result;
    this.lastFullMs = now;
    return result;
  }

  /** Base directories plus every directory holding a matched file. */
  private watchedDirectories(files: readonly string[]): string[] {
    const dirs = new Set(this.baseDirectories());
    for (const f of files) dirs.add(path.dirname(f));
    return [...dirs];
  }

  /** The directories to watch: the non-glob prefix of each include (a plain path watches its directory). */
  baseDirectories(): string[] {
    const dirs = new Set<string>();
    for (const g of this.include) {
      const scanned = picomatch.scan(g);
      dirs.add(scanned.isGlob ? scanned.base || '/' : path.posix.dirname(g));
    }
    return [...dirs];
  }
}

/** `mtime:ctime` of each directory that can be stat'ed ("missing" for one that cannot). */
async function stampAll(dirs: readonly string[]): Promise<Map<string, string>> {
  const stamps = new Map<string, string>();
  await Promise.all(
    dirs.map(async (dir) => {
      try {
        const s = await stat(dir, { bigint: true });
        stamps.set(dir, `${s.mtimeNs}:${s.ctimeNs}`);
      } catch {
        stamps.set(dir, 'missing');
      }
    }),
  );
  return stamps;
}

function toPosix(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

function toAbsoluteGlob(pattern: string, cwd: string): string {
  return path.isAbsolute(pattern) ? toPosix(pattern) : toPosix(path.join(cwd, pattern));
}
