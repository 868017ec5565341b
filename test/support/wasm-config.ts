/**
 * A `wasm` transform config for tests: the real parser's defaults for `module`, then `overrides`,
 * so tests do not restate every option (and pick up new ones as they are added).
 */
import { ConfigReader } from '../../src/config/reader.js';
import type { ConfigProblem } from '../../src/errors.js';
import { wasmTransform, type WasmTransformConfig } from '../../src/transforms/wasm/index.js';

export function wasmConfig(module: string, overrides: Partial<WasmTransformConfig> = {}): WasmTransformConfig {
  const problems: ConfigProblem[] = [];
  const config = wasmTransform.parse(new ConfigReader('transforms.test', { module, pool_size: 2 }, problems));
  if (problems.length > 0) throw new Error(`wasmConfig: ${problems.map((p) => p.message).join('; ')}`);
  return { ...config, ...overrides };
}
