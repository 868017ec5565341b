/**
 * Golden fixtures of the SDK plugins: `plugins/<name>/fixtures/<case>/` holds `input` and
 * `expected` (newline-terminated lines: the plugin's output records for the input lines, in order)
 * and optionally `options.json` (the transform's `options`, handed to `init`).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PLUGINS_DIR = fileURLToPath(new URL('../../plugins', import.meta.url));

export function pluginWasm(name: string): string {
  return join(PLUGINS_DIR, name, `${name}.wasm`);
}

export interface LinesCase {
  name: string;
  dir: string;
  input: Uint8Array[];
  expected: Uint8Array[] | undefined;
  options: string;
}

/** Splits a newline-terminated file into its lines (bytes, no newline). */
export function splitLines(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      lines.push(bytes.slice(start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length) lines.push(bytes.slice(start));
  return lines;
}

export function linesFixtures(plugin: string): LinesCase[] {
  const root = join(PLUGINS_DIR, plugin, 'fixtures');
  return readdirSync(root)
    .filter((name) => statSync(join(root, name)).isDirectory())
    .sort()
    .map((name) => {
      const dir = join(root, name);
      const expectedPath = join(dir, 'expected');
      const optionsPath = join(dir, 'options.json');
      return {
        name,
        dir,
        input: splitLines(new Uint8Array(readFileSync(join(dir, 'input')))),
        expected: existsSync(expectedPath) ? splitLines(new Uint8Array(readFileSync(expectedPath))) : undefined,
        options: existsSync(optionsPath) ? readFileSync(optionsPath, 'utf8').trim() : '{}',
      };
    });
}
