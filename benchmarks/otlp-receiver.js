#!/usr/bin/env node
/**
 * OTLP/HTTP logs receiver for the end-to-end benchmark cases, run as a separate child process
 * (`fork`) so that its CPU is not counted in logwasm's process. Listens on 127.0.0.1, port 0.
 *
 * Every `POST /v1/logs` body (protobuf, optionally gzip) is decoded at the wire level down to each
 * LogRecord: every length, varint and nested message is checked and every record must carry a
 * body, so a truncated or garbled request is answered 400 and counted as bad instead of being
 * counted as delivered. A full protobufjs decode would cost the receiver several times the CPU
 * for no stronger check of what the benchmark verifies (how many records arrived).
 *
 * IPC protocol with the parent: it sends `{ type: 'listening', port }` once; it answers
 * `{ type: 'stats' }` with `{ type: 'stats', records, requests, badRequests, bodyBytes, cpuMs }`;
 * `{ type: 'close' }` closes the server and exits.
 */
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';

const stats = { records: 0, requests: 0, badRequests: 0, bodyBytes: 0 };

/**
 * The decoder keeps its cursor in module state instead of returning [value, offset] pairs or
 * calling back per field: the receiver shares the benchmark's 2 cores with logwasm, so every
 * allocation per field is CPU taken from the system under test.
 */
let cursor = 0;

/** Reads a varint at `cursor` and advances it. Values above 2^53 lose precision (unused here). */
function varint(buf) {
  let at = cursor;
  let byte = buf[at++];
  if (byte < 0x80 && at <= buf.length) {
    cursor = at;
    return byte;
  }
  let value = 0;
  let scale = 1;
  at = cursor;
  for (let i = 0; i < 10; i++) {
    if (at >= buf.length) throw new Error('truncated varint');
    byte = buf[at++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      cursor = at;
      return value;
    }
    scale *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

/**
 * Reads one field key at `cursor` and skips its value, checking it ends by `to`. Returns the
 * key (field * 8 + wire type); a length-delimited value's bounds are left in `valueStart` and
 * `cursor` (its end).
 */
let valueStart = 0;
function field(buf, to) {
  const key = varint(buf);
  const wire = key & 7;
  valueStart = cursor;
  switch (wire) {
    case 0:
      varint(buf);
      break;
    case 1:
      cursor += 8;
      break;
    case 2: {
      const len = varint(buf);
      valueStart = cursor;
      cursor += len;
      break;
    }
    case 5:
      cursor += 4;
      break;
    default:
      throw new Error(`unsupported wire type ${wire}`);
  }
  if (key < 8 || cursor > to) throw new Error('malformed field');
  return key;
}

/** Checks that buf[from, to) is a sequence of well-formed fields. */
function skipMessage(buf, from, to) {
  cursor = from;
  while (cursor < to) field(buf, to);
}

const RESOURCE_LOGS = (1 << 3) | 2;
const SCOPE_LOGS = (2 << 3) | 2;
const LOG_RECORDS = (2 << 3) | 2;
const BODY = (5 << 3) | 2;

/** Counts LogRecords in an ExportLogsServiceRequest; throws on malformed input or a record without body. */
export function countLogRecords(buf) {
  let records = 0;
  cursor = 0;
  while (cursor < buf.length) {
    if (field(buf, buf.length) !== RESOURCE_LOGS) continue;
    const resourceEnd = cursor;
    cursor = valueStart;
    while (cursor < resourceEnd) {
      if (field(buf, resourceEnd) !== SCOPE_LOGS) continue;
      const scopeEnd = cursor;
      cursor = valueStart;
      while (cursor < scopeEnd) {
        if (field(buf, scopeEnd) !== LOG_RECORDS) continue;
        const recordEnd = cursor;
        cursor = valueStart;
        let hasBody = false;
        while (cursor < recordEnd) {
          if (field(buf, recordEnd) !== BODY) continue;
          hasBody = true;
          const bodyEnd = cursor;
          skipMessage(buf, valueStart, bodyEnd); // AnyValue: well-formed
        }
        if (!hasBody) throw new Error('log record without body');
        records++;
      }
    }
  }
  return records;
}

function main() {
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      stats.requests++;
      if (req.method !== 'POST' || req.url !== '/v1/logs') {
        stats.badRequests++;
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      try {
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        if (!String(req.headers['content-type']).startsWith('application/x-protobuf')) throw new Error('not protobuf');
        stats.records += countLogRecords(body);
        stats.bodyBytes += body.length;
      } catch {
        stats.badRequests++;
        res.writeHead(400).end();
        return;
      }
      // An empty ExportLogsServiceResponse: full success.
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' }).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.send({ type: 'listening', port: server.address().port });
  });
  process.on('message', (message) => {
    if (message?.type === 'stats') {
      const cpu = process.cpuUsage();
      process.send({ type: 'stats', ...stats, cpuMs: (cpu.user + cpu.system) / 1000 });
    } else if (message?.type === 'close') {
      server.close();
      server.closeAllConnections();
      process.disconnect();
    }
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.send !== undefined) main();
