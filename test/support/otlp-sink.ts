/** The opentelemetry sink's tests' shared setup: a sink table parsed as the config loader does, and a receiver closed after the test. */
import { onTestFinished } from 'vitest';
import { ConfigReader, type ConfigTable } from '../../src/config/reader.js';
import type { ConfigProblem } from '../../src/errors.js';
import { opentelemetrySink, type OpentelemetrySinkConfig } from '../../src/sinks/opentelemetry/index.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';

/** `[sinks.otlp]` with `table` parsed, and the messages of its problems. */
export function parseSinkTable(table: ConfigTable): { config: OpentelemetrySinkConfig; problems: string[] } {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.otlp', table, problems);
  const config = opentelemetrySink.parse(reader);
  reader.finish();
  return { config, problems: problems.map((p) => p.message) };
}

/** A real OTLP receiver on 127.0.0.1, closed when the test finishes. */
export async function testReceiver(): Promise<OtlpReceiver> {
  const receiver = await startOtlpReceiver();
  onTestFinished(() => receiver.close());
  return receiver;
}
