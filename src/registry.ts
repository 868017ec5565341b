import type { AnySinkType, AnySourceType, AnyTransformType, Registry } from './config/load.js';
import { blackholeSink } from './sinks/blackhole.js';
import { consoleSink } from './sinks/console.js';
import { fileSink } from './sinks/file/index.js';
import { opentelemetrySink } from './sinks/opentelemetry/index.js';
import { prometheusExporterSink } from './sinks/prometheus_exporter.js';
import { fileSource } from './sources/file/index.js';
import { internalMetricsSource } from './sources/internal_metrics/index.js';
import { kubernetesLogsSource } from './sources/kubernetes_logs/index.js';
import { wasmTransform } from './transforms/wasm/index.js';

/** Every component type, under the name a config's `type = "..."` uses. */
export function defaultRegistry(): Registry {
  const sources: AnySourceType[] = [fileSource as AnySourceType, kubernetesLogsSource as AnySourceType, internalMetricsSource as AnySourceType];
  const transforms: AnyTransformType[] = [wasmTransform as AnyTransformType];
  const sinks: AnySinkType[] = [opentelemetrySink as AnySinkType, consoleSink as AnySinkType, blackholeSink as AnySinkType, fileSink as AnySinkType, prometheusExporterSink as AnySinkType];
  return {
    sources: new Map(sources.map((t) => [t.type, t])),
    transforms: new Map(transforms.map((t) => [t.type, t])),
    sinks: new Map(sinks.map((t) => [t.type, t])),
  };
}
