/**
 * Plugin ABI v1 (docs/plugin-abi.md): what a module must export, and the checks that refuse a
 * module before any line reaches it. `validateModule` works on the compiled module (kinds, imports)
 * and runs once on the main thread; `bindInstance` works on an instance (arities, result area,
 * version) and runs on every (re-)instantiation.
 */
import { PluginAbiError } from '../errors.js';
import { instantiate, isMemory, moduleExports, moduleImports, type WasmInstance, type WasmMemory, type WasmModule } from './wasm-api.js';

/** The ABI version this host speaks; `logwasm_abi_version()`, when exported, must return it. */
export const ABI_VERSION = 1;

/** `process_log` status: emit the output bytes in place of the line. */
export const STATUS_EMIT = 0;
/** `process_log` status: drop the line on purpose. */
export const STATUS_DROP = 1;
/** `process_log` status: the plugin failed on this line; the output bytes are a UTF-8 message. */
export const STATUS_ERROR = 2;
/** `process_log` status: emit several records; the output bytes are records separated by `\n`. */
export const STATUS_EMIT_MANY = 3;

/** Required function exports and their parameter counts (every parameter and result is i32). */
export const REQUIRED_FUNCTIONS: Readonly<Record<string, number>> = {
  alloc: 1,
  dealloc: 2,
  process_log: 2,
  logwasm_result: 0,
};

/** Optional function exports and their parameter counts. */
export const OPTIONAL_FUNCTIONS: Readonly<Record<string, number>> = {
  logwasm_abi_version: 0,
  /** `init(ptr, len) -> status`: the transform's `options` as JSON, once per instance. */
  init: 2,
  /** `process_batch(ptr, len, count) -> status`: a whole batch in one call (see docs/plugin-abi.md). */
  process_batch: 3,
};

/** Bytes of the result area: output pointer then output length, two little-endian u32. */
export const RESULT_AREA_BYTES = 8;

/** A bound instance: the exports the host calls, typed. */
export interface GuestBinding {
  memory: WasmMemory;
  alloc: (len: number) => number;
  dealloc: (ptr: number, len: number) => void;
  processLog: (ptr: number, len: number) => number;
  /** Address of the result area in `memory`; fixed for the instance's lifetime. */
  resultPtr: number;
  /** The optional `init` export. */
  init?: (ptr: number, len: number) => number;
  /** The optional `process_batch` export. */
  processBatch?: (ptr: number, len: number, count: number) => number;
}

/**
 * Refuses a module that imports anything (ABI v1 has no host functions, no WASI) or lacks an
 * export of the right kind. Reports every problem at once. Arity needs an instance: see
 * `bindInstance`.
 */
export function validateModule(module: WasmModule, label = 'plugin'): void {
  const problems: string[] = [];
  for (const imported of moduleImports(module)) {
    problems.push(
      `imports ${imported.kind} "${imported.module}"."${imported.name}", but ABI v${ABI_VERSION} allows no imports (no WASI)`,
    );
  }
  const kinds = new Map(moduleExports(module).map((e) => [e.name, e.kind] as const));
  const expect = (name: string, kind: string, required: boolean): void => {
    const actual = kinds.get(name);
    if (actual === undefined) {
      if (required) problems.push(`does not export ${kind} "${name}"`);
    } else if (actual !== kind) {
      problems.push(`exports "${name}" as a ${actual}, expected a ${kind}`);
    }
  };
  expect('memory', 'memory', true);
  for (const name of Object.keys(REQUIRED_FUNCTIONS)) expect(name, 'function', true);
  for (const name of Object.keys(OPTIONAL_FUNCTIONS)) expect(name, 'function', false);
  if (problems.length > 0) throw new PluginAbiError(`${label}: ${problems.join('; ')}`);
}

/**
 * Checks an instance's function arities, its ABI version and its result area, and returns the
 * typed exports. Throws PluginAbiError; a trap inside `logwasm_abi_version`/`logwasm_result` is
 * the cause.
 */
export function bindInstance(instance: WasmInstance, label = 'plugin'): GuestBinding {
  const exports = instance.exports;
  const problems: string[] = [];
  const memory = exports['memory'];
  if (!isMemory(memory)) problems.push('does not export a memory named "memory"');
  const arity = (name: string, params: number, required: boolean): void => {
    const fn = exports[name];
    if (fn === undefined && !required) return;
    if (typeof fn !== 'function') problems.push(`does not export function "${name}"`);
    else if (fn.length !== params) problems.push(`function "${name}" takes ${fn.length} parameters, expected ${params}`);
  };
  for (const [name, params] of Object.entries(REQUIRED_FUNCTIONS)) arity(name, params, true);
  for (const [name, params] of Object.entries(OPTIONAL_FUNCTIONS)) arity(name, params, false);
  if (problems.length > 0 || !isMemory(memory)) throw new PluginAbiError(`${label}: ${problems.join('; ')}`);

  const call = (name: string): unknown => {
    try {
      return (exports[name] as () => unknown)();
    } catch (error) {
      throw new PluginAbiError(`${label}: "${name}()" trapped: ${String(error)}`, { cause: error });
    }
  };
  if (exports['logwasm_abi_version'] !== undefined) {
    const version = call('logwasm_abi_version');
    if (version !== ABI_VERSION) {
      throw new PluginAbiError(`${label}: logwasm_abi_version() returned ${String(version)}, this host speaks ${ABI_VERSION}`);
    }
  }
  const returned = call('logwasm_result');
  // i32 results arrive signed: an address past 2 GiB reads negative until made unsigned.
  const resultPtr = typeof returned === 'number' ? returned >>> 0 : -1;
  if (typeof returned !== 'number' || resultPtr <= 0 || resultPtr + RESULT_AREA_BYTES > memory.buffer.byteLength) {
    throw new PluginAbiError(
      `${label}: logwasm_result() returned ${String(returned)}, not an address of ${RESULT_AREA_BYTES} bytes inside memory (${memory.buffer.byteLength} bytes)`,
    );
  }
  const binding: GuestBinding = {
    memory,
    alloc: exports['alloc'] as GuestBinding['alloc'],
    dealloc: exports['dealloc'] as GuestBinding['dealloc'],
    processLog: exports['process_log'] as GuestBinding['processLog'],
    resultPtr,
  };
  if (exports['init'] !== undefined) binding.init = exports['init'] as NonNullable<GuestBinding['init']>;
  if (exports['process_batch'] !== undefined) binding.processBatch = exports['process_batch'] as NonNullable<GuestBinding['processBatch']>;
  return binding;
}

/** Instantiates a validated module with no imports and binds it. */
export function instantiatePlugin(module: WasmModule, label = 'plugin'): GuestBinding {
  let instance: WasmInstance;
  try {
    instance = instantiate(module);
  } catch (error) {
    throw new PluginAbiError(`${label}: instantiation failed: ${String(error)}`, { cause: error });
  }
  return bindInstance(instance, label);
}
