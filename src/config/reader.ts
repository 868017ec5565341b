import type { ConfigProblem } from '../errors.js';

export type ConfigTable = Record<string, unknown>;

interface NumberOptions {
  min?: number;
  max?: number;
  integer?: boolean;
}

/**
 * Reads one component's table and records every problem instead of throwing, so that a config
 * with several mistakes is reported in one pass. Each getter marks its key as known; `finish()`
 * reports the keys nobody asked for. Messages name the key path and show the actual value.
 */
export class ConfigReader {
  private readonly seen = new Set<string>();

  constructor(
    /** `sources.app_logs`, `sinks.otlp`, ... */
    readonly component: string,
    private readonly values: ConfigTable,
    private readonly problems: ConfigProblem[],
    /** Prefix of nested tables, `protocol.` for `[sinks.x.protocol]`. */
    private readonly path = '',
  ) {}

  problem(message: string): void {
    this.problems.push({ component: this.component, message });
  }

  has(key: string): boolean {
    return this.values[key] !== undefined;
  }

  /** Marks a key as known without reading it (accepted for compatibility, no effect). */
  accept(...keys: string[]): void {
    for (const key of keys) this.seen.add(key);
  }

  /** The value as it is, for keys with a shape of their own. */
  raw(key: string): unknown {
    this.seen.add(key);
    return this.values[key];
  }

  string(key: string): string | undefined;
  string(key: string, fallback: string): string;
  string(key: string, fallback?: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value === 'string') return value;
    this.invalid(key, 'a string', value);
    return fallback;
  }

  requiredString(key: string): string {
    const value = this.string(key);
    if (value === undefined && !this.has(key)) this.problem(`missing required key "${this.path}${key}"`);
    return value ?? '';
  }

  number(key: string, fallback: number, options?: NumberOptions): number;
  number(key: string, fallback?: undefined, options?: NumberOptions): number | undefined;
  number(key: string, fallback?: number, options: NumberOptions = {}): number | undefined {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || Number.isNaN(value)) {
      this.invalid(key, options.integer ? 'an integer' : 'a number', value);
      return fallback;
    }
    if (options.integer && !Number.isInteger(value)) {
      this.invalid(key, 'an integer', value);
      return fallback;
    }
    if (options.min !== undefined && value < options.min) {
      this.invalid(key, `a number >= ${options.min}`, value);
      return fallback;
    }
    if (options.max !== undefined && value > options.max) {
      this.invalid(key, `a number <= ${options.max}`, value);
      return fallback;
    }
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value === 'boolean') return value;
    this.invalid(key, 'true or false', value);
    return fallback;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    this.invalid(key, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`, value);
    return fallback;
  }

  stringArray(key: string, fallback: string[] = []): string[] {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value as string[];
    this.invalid(key, 'an array of strings', value);
    return fallback;
  }

  /** A nested table (`[sinks.x.batch]` or `batch = { ... }`); absent reads as empty. */
  table(key: string): ConfigReader {
    const value = this.raw(key);
    if (value !== undefined && !isTable(value)) this.invalid(key, 'a table', value);
    const table = isTable(value) ? value : {};
    return new ConfigReader(this.component, table, this.problems, `${this.path}${key}.`);
  }

  /** A table of string values (headers, labels); absent reads as empty. */
  stringMap(key: string): Record<string, string> {
    const value = this.raw(key);
    if (value === undefined) return {};
    if (isTable(value) && Object.values(value).every((v) => typeof v === 'string')) {
      return value as Record<string, string>;
    }
    this.invalid(key, 'a table of strings', value);
    return {};
  }

  /** Reports every key of this table that no getter asked for. Call once, after parsing. */
  finish(): void {
    for (const key of Object.keys(this.values)) {
      if (!this.seen.has(key)) this.problem(`unknown key "${this.path}${key}"`);
    }
  }

  private invalid(key: string, expected: string, actual: unknown): void {
    this.problem(`invalid value for "${this.path}${key}": expected ${expected}, actual: ${show(actual)}`);
  }
}

export function isTable(value: unknown): value is ConfigTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Date) return value.toISOString();
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
