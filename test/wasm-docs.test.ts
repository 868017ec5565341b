/**
 * Every `[transforms.*]` example in the plugin docs (docs/plugin-abi.md, docs/plugins/*.md)
 * parses through the wasm transform's config reader without a problem.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import toml from 'toml';
import { describe, expect, it } from 'vitest';
import { ConfigReader, type ConfigTable } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { wasmTransform } from '../src/transforms/wasm/index.js';

const DOCS = fileURLToPath(new URL('../docs/', import.meta.url));
const files = ['plugin-abi.md', ...readdirSync(`${DOCS}plugins`).filter((n) => n.endsWith('.md')).map((n) => `plugins/${n}`)];
const examples = files.flatMap((name) =>
  [...readFileSync(DOCS + name, 'utf8').matchAll(/```toml\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .filter((source) => source.includes('[transforms.'))
    .map((source, i) => [`${name} #${i + 1}`, source] as const),
);

describe('wasm transform examples in the plugin docs', () => {
  it('there are examples to check', () => {
    expect(examples.length).toBeGreaterThanOrEqual(3);
  });

  it.each(examples)('%s parses without problems', (_name, source) => {
    const parsed = toml.parse(source) as { transforms?: Record<string, ConfigTable> };
    const transforms = Object.entries(parsed.transforms ?? {});
    expect(transforms.length).toBeGreaterThan(0);
    for (const [id, table] of transforms) {
      const { type, inputs: _inputs, ...rest } = table;
      expect(type).toBe('wasm');
      const problems: ConfigProblem[] = [];
      const reader = new ConfigReader(`transforms.${id}`, rest, problems);
      wasmTransform.parse(reader);
      reader.finish();
      expect(problems).toEqual([]);
    }
  });
});
