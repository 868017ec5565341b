/**
 * Plugin ABI v1 (docs/plugin-abi.md): what a module must export, and the checks that refuse a
 * module before any line reaches it. `validateModule` works on the compiled module (kinds, imports)
 * and runs once on the main thread; `bindInstance` works on an instance (arities, result area,
 * version) and runs on every (re-)instantiation.
 */
import { PluginAbiError } from '../errors.js';
import { WASI_FUNCTIONS, WASI_MODULE, type WasiHost } from './wasi.js';
import { instantiate, instantiateWith, isMemory, moduleExports, moduleImports, type WasmInstance, type WasmMemory, type WasmModule } from './wasm-api.js';

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
  /**
   * `process_batch_packed(ptr, len, count) -> status`: the same call with the packed result layout
   * (statuses, then offsets, then data), preferred over `process_batch` when both are exported.
   */
  process_batch_packed: 3,
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
  /** The optional `process_batch_packed` export. */
  processBatchPacked?: (ptr: number, len: number, count: number) => number;
}

/** What a module may import: nothing (the default), or the WASI subset of wasi.ts with `wasi = true`. */
export interface ImportPolicy {
  /** The transform sets `wasi = true`: `wasi_snapshot_preview1` functions of WASI_FUNCTIONS are allowed. */
  wasi?: boolean;
}

/** Whether an import is a WASI function this host provides (wasi.ts). */
export function isProvidedWasiImport(imported: { module: string; name: string; kind: string }): boolean {
  return imported.module === WASI_MODULE && imported.kind === 'function' && WASI_FUNCTIONS.includes(imported.name);
}

/**
 * Refuses a module that imports anything it may not (ABI v1 has no host functions; WASI only
 * with `wasi = true`, and then only the functions wasi.ts provides) or lacks an export of the
 * right kind. Reports every problem at once. Arity needs an instance: see `bindInstance`.
 */
export function validateModule(module: WasmModule, label = 'plugin', policy: ImportPolicy = {}): void {
  const problems: string[] = [];
  for (const imported of moduleImports(module)) {
    const what = `imports ${imported.kind} "${imported.module}"."${imported.name}"`;
    if (!isProvidedWasiImport(imported)) {
      problems.push(
        imported.module === WASI_MODULE
          ? `${what}, which this host does not provide (WASI subset: ${WASI_FUNCTIONS.join(', ')})`
          : `${what}, but ABI v${ABI_VERSION} allows no imports besides WASI (${WASI_MODULE}, with wasi = true)`,
      );
    } else if (policy.wasi !== true) {
      problems.push(`${what}, but the transform does not enable WASI (set wasi = true)`);
    }
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
  if (exports['process_batch_packed'] !== undefined) {
    binding.processBatchPacked = exports['process_batch_packed'] as NonNullable<GuestBinding['processBatchPacked']>;
  }
  return binding;
}

/**
 * Instantiates a validated module and binds it: with no imports, or with `wasi`'s functions.
 * A WASI instance gets its memory bound to the host first, then its `_initialize` export (the
 * reactor model: wasi-libc constructors, Rust's std setup) is called once, before any ABI
 * export; a trap there refuses the instance.
 */
export function instantiatePlugin(module: WasmModule, label = 'plugin', wasi?: WasiHost): GuestBinding {
  let instance: WasmInstance;
  try {
    instance = wasi === undefined ? instantiate(module) : instantiateWith(module, wasi.imports);
  } catch (error) {
    throw new PluginAbiError(`${label}: instantiation failed: ${String(error)}`, { cause: error });
  }
  if (wasi !== undefined) {
    const memory = instance.exports['memory'];
    if (isMemory(memory)) wasi.bind(memory);
    const initialize = instance.exports['_initialize'];
    if (typeof initialize === 'function') {
      try {
        (initialize as () => unknown)();
      } catch (error) {
        throw new PluginAbiError(`${label}: "_initialize()" trapped: ${String(error)}`, { cause: error });
      }
    }
  }
  return bindInstance(instance, label);
}
