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

/** Reads a varint at `at`; returns [value, next offset]. Values above 2^53 lose precision (unused here). */
function varint(buf, at) {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= buf.length) throw new Error('truncated varint');
    const byte = buf[at++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
    scale *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

/** Calls `onField(field, wireType, start, end)` for each field of the message in buf[from, to). */
function walk(buf, from, to, onField) {
  let at = from;
  while (at < to) {
    let key;
    [key, at] = varint(buf, at);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    let start = at;
    switch (wire) {
      case 0:
        [, at] = varint(buf, at);
        break;
      case 1:
        at += 8;
        break;
      case 2: {
        let len;
        [len, start] = varint(buf, at);
        at = start + len;
        break;
      }
      case 5:
        at += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wire}`);
    }
    if (field === 0 || at > to) throw new Error('malformed field');
    onField(field, wire, start, at);
  }
}

/** Counts LogRecords in an ExportLogsServiceRequest; throws on malformed input or a record without body. */
export function countLogRecords(buf) {
  let records = 0;
  walk(buf, 0, buf.length, (field, wire, start, end) => {
    if (field !== 1 || wire !== 2) return; // resource_logs
    walk(buf, start, end, (f2, w2, s2, e2) => {
      if (f2 !== 2 || w2 !== 2) return; // scope_logs
      walk(buf, s2, e2, (f3, w3, s3, e3) => {
        if (f3 !== 2 || w3 !== 2) return; // log_records
        let hasBody = false;
        walk(buf, s3, e3, (f4, w4, s4, e4) => {
          if (f4 === 5 && w4 === 2) {
            hasBody = true;
            walk(buf, s4, e4, () => {}); // AnyValue: well-formed
          }
        });
        if (!hasBody) throw new Error('log record without body');
        records++;
      });
    });
  });
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
