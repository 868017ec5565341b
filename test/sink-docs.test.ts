import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import toml from 'toml';
import { describe, expect, it } from 'vitest';
import { ConfigReader, isTable, type ConfigTable } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { blackholeSink } from '../src/sinks/blackhole.js';
import { consoleSink } from '../src/sinks/console.js';
import { fileSink } from '../src/sinks/file/index.js';
import { opentelemetrySink } from '../src/sinks/opentelemetry/index.js';
import { prometheusExporterSink } from '../src/sinks/prometheus_exporter.js';
import { internalMetricsSource } from '../src/sources/internal_metrics/index.js';

const DOCS = fileURLToPath(new URL('../docs/sinks/', import.meta.url));
const TYPES = { opentelemetry: opentelemetrySink, console: consoleSink, blackhole: blackholeSink, file: fileSink, prometheus_exporter: prometheusExporterSink } as const;

const examples = readdirSync(DOCS)
  .filter((name) => name.endsWith('.md'))
  .flatMap((name) =>
    [...readFileSync(DOCS + name, 'utf8').matchAll(/```toml\n([\s\S]*?)```/g)].map((m, i) => [`${name} #${i + 1}`, m[1]!] as const),
  );

describe('docs/sinks examples', () => {
  it('there are examples to check', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(examples)('%s parses without problems', (_name, source) => {
    const parsed = toml.parse(source) as { sinks?: Record<string, ConfigTable>; sources?: Record<string, ConfigTable> };
    // prometheus_exporter.md also documents the internal_metrics source it is fed by.
    for (const [id, table] of Object.entries(parsed.sources ?? {})) {
      const { type, ...rest } = table;
      expect(type).toBe('internal_metrics');
      const problems: ConfigProblem[] = [];
      const reader = new ConfigReader(`sources.${id}`, rest, problems);
      internalMetricsSource.parse(reader);
      reader.finish();
      expect(problems).toEqual([]);
    }
    for (const [id, table] of Object.entries(parsed.sinks ?? {})) {
      expect(isTable(table)).toBe(true);
      const { type, inputs, ...rest } = table;
      expect(inputs).toBeDefined();
      const problems: ConfigProblem[] = [];
      const reader = new ConfigReader(`sinks.${id}`, rest, problems);
      TYPES[type as keyof typeof TYPES].parse(reader);
      reader.finish();
      expect(problems).toEqual([]);
    }
  });
});
