/**
 * The slice of the global `WebAssembly` API that logwasm uses, typed here because the project's
 * `lib` (ES2023, no DOM) does not declare it. Kept module-scoped on purpose: a global
 * `declare namespace WebAssembly` would clash with anyone who later adds the DOM lib.
 */

/** A compiled module: cloneable to worker threads (structured clone keeps the compiled code). */
export interface WasmModule {
  readonly __brand?: 'WebAssembly.Module';
}

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

/** Host functions by module and name, for `instantiateWith`. */
export type WasmImports = Record<string, Record<string, (...args: never[]) => unknown>>;

export type WasmExternKind = 'function' | 'table' | 'memory' | 'global' | 'tag';

export interface WasmImportDescriptor {
  module: string;
  name: string;
  kind: WasmExternKind;
}

export interface WasmExportDescriptor {
  name: string;
  kind: WasmExternKind;
}

interface WasmApi {
  Module: {
    new (bytes: Uint8Array): WasmModule;
    imports(module: WasmModule): WasmImportDescriptor[];
    exports(module: WasmModule): WasmExportDescriptor[];
    customSections(module: WasmModule, name: string): ArrayBuffer[];
  };
  Instance: new (module: WasmModule, imports: WasmImports) => WasmInstance;
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  compile(bytes: Uint8Array): Promise<WasmModule>;
}

const api = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Compiles off the calling thread's critical path (V8 compiles in background threads). */
export function compileModule(bytes: Uint8Array): Promise<WasmModule> {
  return api.compile(bytes);
}

export function compileModuleSync(bytes: Uint8Array): WasmModule {
  return new api.Module(bytes);
}

export function moduleImports(module: WasmModule): WasmImportDescriptor[] {
  return api.Module.imports(module);
}

/** Contents of the module's custom sections called `name` (e.g. `producers`). */
export function moduleCustomSections(module: WasmModule, name: string): ArrayBuffer[] {
  return api.Module.customSections(module, name);
}

export function moduleExports(module: WasmModule): WasmExportDescriptor[] {
  return api.Module.exports(module);
}

/** Instantiates with no imports at all: ABI v1 plugins import nothing. */
export function instantiate(module: WasmModule): WasmInstance {
  return new api.Instance(module, {});
}

/** Instantiates with host functions: only for the opt-in WASI subset (wasi.ts). */
export function instantiateWith(module: WasmModule, imports: WasmImports): WasmInstance {
  return new api.Instance(module, imports);
}

export function isMemory(value: unknown): value is WasmMemory {
  return value instanceof (api.Memory as unknown as abstract new (...args: never[]) => unknown);
}
