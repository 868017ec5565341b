#!/usr/bin/env node
/**
 * Benchmark reference: a plain single-threaded Node script doing the json_parser rewrite per line
 * with JSON.parse / JSON.stringify — what a straightforward JavaScript implementation costs.
 * Reads the file in 1 MiB chunks, splits on `\n`, and for each line that parses as a JSON object
 * adds `user_id` (from metadata.user.id), `session_id` (from metadata.session.id) and
 * `log_size_bytes` (the line's byte length), as the plugin does. Prints one JSON object:
 * `{ lines, rewritten, in_bytes, out_bytes, seconds }` (seconds of the whole read-and-rewrite loop).
 *
 *   node benchmarks/reference/node-json.js FILE
 */
import { closeSync, openSync, readSync } from 'node:fs';

const CHUNK_BYTES = 1 << 20;

function rewrite(text, byteLength) {
  let object;
  try {
    object = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (object === null || typeof object !== 'object' || Array.isArray(object)) return undefined;
  const metadata = object.metadata;
  const user = metadata?.user;
  const session = metadata?.session;
  if (user !== null && typeof user === 'object' && 'id' in user) object.user_id = user.id;
  if (session !== null && typeof session === 'object' && 'id' in session) object.session_id = session.id;
  object.log_size_bytes = byteLength;
  return JSON.stringify(object);
}

function main(file) {
  const started = performance.now();
  const fd = openSync(file, 'r');
  let buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let held = 0;
  let lines = 0;
  let rewritten = 0;
  let inBytes = 0;
  let outBytes = 0;
  for (;;) {
    if (held === buffer.length) {
      const grown = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(grown, 0, 0, held);
      buffer = grown;
    }
    const read = readSync(fd, buffer, held, buffer.length - held, null);
    const end = held + read;
    let start = 0;
    for (let nl = buffer.indexOf(10, 0); nl !== -1 && nl < end; nl = buffer.indexOf(10, start)) {
      if (nl > start) {
        lines++;
        const out = rewrite(buffer.toString('utf8', start, nl), nl - start);
        if (out === undefined) outBytes += nl - start;
        else {
          rewritten++;
          outBytes += Buffer.byteLength(out);
        }
      }
      start = nl + 1;
    }
    inBytes += read;
    buffer.copy(buffer, 0, start, end);
    held = end - start;
    if (read === 0) break;
  }
  closeSync(fd);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ lines, rewritten, in_bytes: inBytes, out_bytes: outBytes, seconds })}\n`);
}

main(process.argv[2]);
