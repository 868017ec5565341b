/** The committed json_parser plugin and its golden fixtures, for the wasm tests. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const JSON_PARSER_WASM = fileURLToPath(new URL('../../plugins/json_parser/json_parser.wasm', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../plugins/json_parser/fixtures', import.meta.url));

export interface GoldenCase {
  name: string;
  input: Uint8Array;
  expected: Uint8Array;
}

export function jsonParserFixtures(): GoldenCase[] {
  return readdirSync(FIXTURES)
    .filter((name) => statSync(join(FIXTURES, name)).isDirectory())
    .sort()
    .map((name) => ({
      name,
      input: new Uint8Array(readFileSync(join(FIXTURES, name, 'input'))),
      expected: new Uint8Array(readFileSync(join(FIXTURES, name, 'expected'))),
    }));
}

/** Lines in the LineBatch layout. */
export function toBatchLayout(lines: readonly Uint8Array[]): { data: Uint8Array; offsets: Uint32Array } {
  const offsets = new Uint32Array(lines.length + 1);
  let total = 0;
  lines.forEach((line, i) => {
    total += line.byteLength;
    offsets[i + 1] = total;
  });
  const data = new Uint8Array(total);
  lines.forEach((line, i) => data.set(line, offsets[i]!));
  return { data, offsets };
}

export function fromBatchLayout(data: Uint8Array, offsets: Uint32Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  for (let i = 0; i + 1 < offsets.length; i++) lines.push(data.slice(offsets[i]!, offsets[i + 1]!));
  return lines;
}
