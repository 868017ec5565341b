import path from 'node:path';
import picomatch from 'picomatch';
import { glob } from 'tinyglobby';

/**
 * Expands `include`/`exclude` globs into absolute file paths. chokidar 5 dropped glob support, so
 * globs are expanded by tinyglobby and matched by picomatch; chokidar only watches the globs' base
 * directories (see `baseDirectories`) and the source rescans when something appears there.
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

  /** Every matching regular file, absolute, sorted (so reads start in a stable order). */
  async scan(): Promise<string[]> {
    const found = await glob(this.include, {
      absolute: true,
      onlyFiles: true,
      dot: true,
      expandDirectories: false,
      followSymbolicLinks: true,
      ignore: this.exclude,
    });
    return found.filter((f) => this.matches(f)).sort();
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

function toPosix(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

function toAbsoluteGlob(pattern: string, cwd: string): string {
  return path.isAbsolute(pattern) ? toPosix(pattern) : toPosix(path.join(cwd, pattern));
}
