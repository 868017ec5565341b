#!/usr/bin/env node
/**
 * Seeded generator of the benchmark corpus: realistic application logs as JSON lines of about
 * 210 bytes on average, or the same lines wrapped in the CRI container log format
 * (`<RFC3339Nano> stdout F <json>`). The same seed and line count always give the same bytes, so
 * runs on different days and machines read the same file.
 *
 * About half of the lines carry `metadata.user.id` and `metadata.session.id`, so the json_parser
 * plugin has ids to lift; the rest only get `log_size_bytes` added.
 *
 *   node benchmarks/generate.js [--lines N] [--seed S] [--format json|cri] [--out DIR]
 *
 * prints the path of the written file on stdout.
 */
import { closeSync, mkdtempSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

/** Lines in the default corpus, as in issue 3. */
export const DEFAULT_LINES = 1_000_000;
/** Seed of the default corpus; any 32-bit integer works. */
export const DEFAULT_SEED = 20240501;
/** First timestamp of every corpus (2024-05-01T00:00:00Z), so the bytes do not depend on today. */
export const CORPUS_EPOCH_MS = Date.UTC(2024, 4, 1);
/** Share of lines with `metadata.user.id` and `metadata.session.id` (the plugin lifts them). */
export const METADATA_SHARE = 0.5;
/** Lines joined into one write. */
const LINES_PER_WRITE = 8192;

/** mulberry32: a small, fast, well-mixed 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SERVICES = ['checkout', 'payments', 'catalog', 'auth', 'search', 'cart', 'shipping', 'gateway'];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE'];
const ROUTES = ['/api/v1/orders', '/api/v1/users', '/api/v2/items', '/api/v1/cart', '/api/v1/login', '/healthz', '/api/v2/search'];
const MESSAGES = {
  debug: ['cache lookup', 'query plan chosen', 'retrying connection', 'token refreshed'],
  info: ['request completed', 'user logged in', 'order created', 'payment authorized', 'item added to cart'],
  warn: ['slow query detected', 'rate limit approaching', 'deprecated endpoint called'],
  error: ['upstream timeout', 'database connection refused', 'payment declined: card expired'],
};

/**
 * Returns `next()`, which gives the corpus lines one by one (without newline), and `nextCri()`,
 * which gives them in CRI format. Both advance the same sequence.
 */
export function createLineGenerator(seed = DEFAULT_SEED) {
  const random = mulberry32(seed);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const int = (min, max) => min + Math.floor(random() * (max - min + 1));
  // Eight hex digits from one draw: cheaper than one draw per digit.
  const hex8 = () => (Math.floor(random() * 4294967296) >>> 0).toString(16).padStart(8, '0');
  let isoMs = -1;
  let iso = '';
  const isoAt = (ms) => {
    if (ms !== isoMs) {
      isoMs = ms;
      iso = new Date(ms).toISOString();
    }
    return iso;
  };
  let clockMs = CORPUS_EPOCH_MS;
  let nanos = 0;

  const json = () => {
    clockMs += int(0, 3);
    nanos = int(0, 999_999);
    const r = random();
    const level = r < 0.1 ? 'debug' : r < 0.85 ? 'info' : r < 0.95 ? 'warn' : 'error';
    const service = pick(SERVICES);
    const method = pick(METHODS);
    const route = pick(ROUTES);
    const status = level === 'error' ? pick([500, 502, 503, 504]) : level === 'warn' ? pick([200, 404, 429]) : pick([200, 200, 200, 201, 204, 304]);
    let line =
      `{"ts":"${isoAt(clockMs)}","level":"${level}","msg":"${pick(MESSAGES[level])}","service":"${service}",` +
      `"method":"${method}","path":"${route}/${int(1, 99999)}","status":${status},` +
      `"duration_ms":${(random() * 250).toFixed(2)}`;
    if (random() < METADATA_SHARE) {
      line += `,"metadata":{"user":{"id":"u-${int(100000, 999999)}"},"session":{"id":"${hex8()}${hex8()}"}}`;
    } else {
      line += `,"bytes":${int(0, 65535)}`;
    }
    return `${line}}`;
  };
  const cri = () => {
    const line = json();
    // RFC3339Nano with nine fraction digits, as containerd writes it.
    const iso = isoAt(clockMs);
    const fraction = String(clockMs % 1000).padStart(3, '0') + String(nanos).padStart(6, '0');
    return `${iso.slice(0, 19)}.${fraction}Z stdout F ${line}`;
  };
  return { next: json, nextCri: cri };
}

/**
 * Writes `lines` lines (each ending in `\n`) to `file`. Returns `{ file, lines, bytes }`.
 * `format` is `json` (default) or `cri`.
 */
export function writeCorpus({ file, lines = DEFAULT_LINES, seed = DEFAULT_SEED, format = 'json' }) {
  if (!Number.isSafeInteger(lines) || lines < 0) throw new RangeError(`lines must be a non-negative integer, got ${lines}`);
  if (format !== 'json' && format !== 'cri') throw new RangeError(`format must be json or cri, got ${format}`);
  const generator = createLineGenerator(seed);
  const next = format === 'cri' ? generator.nextCri : generator.next;
  const fd = openSync(file, 'w');
  let bytes = 0;
  try {
    for (let written = 0; written < lines; ) {
      const n = Math.min(LINES_PER_WRITE, lines - written);
      const parts = new Array(n);
      for (let i = 0; i < n; i++) parts[i] = next();
      const chunk = Buffer.from(`${parts.join('\n')}\n`, 'utf8');
      writeSync(fd, chunk);
      bytes += chunk.byteLength;
      written += n;
    }
  } finally {
    closeSync(fd);
  }
  return { file, lines, bytes };
}

/** A fresh temp dir for benchmark files (`/tmp/logwasm-bench-XXXXXX`). */
export function makeBenchDir() {
  return mkdtempSync(join(tmpdir(), 'logwasm-bench-'));
}

function main() {
  const { values } = parseArgs({
    options: {
      lines: { type: 'string' },
      seed: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const lines = values.lines === undefined ? DEFAULT_LINES : Number(values.lines);
  const seed = values.seed === undefined ? DEFAULT_SEED : Number(values.seed);
  const format = values.format ?? 'json';
  const dir = values.out ?? makeBenchDir();
  const file = join(dir, format === 'cri' ? 'corpus-cri.log' : 'corpus.log');
  const result = writeCorpus({ file, lines, seed, format });
  process.stderr.write(`wrote ${result.lines} lines, ${result.bytes} bytes (${(result.bytes / Math.max(1, result.lines)).toFixed(1)} B/line)\n`);
  process.stdout.write(`${file}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
