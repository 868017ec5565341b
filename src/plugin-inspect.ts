/**
 * `logwasm plugin inspect FILE`: what a plugin module is, before anyone runs it. Prints one JSON
 * document: size, sha256 (the value for the transform's `sha256` pin), exports with arities,
 * imports, the ABI version the module claims, whether the host accepts or refuses it (and why) as
 * `abi = "logwasm"` (and, for a module that imports WASI, with `wasi = true`) and as
 * `abi = "fluent-bit"`, the `producers` custom section (compiler and
 * language versions that rustc and others record), and a CycloneDX component fragment for the
 * module that an SBOM can include as is.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { LogwasmError } from './errors.js';
import { bindInstance, instantiatePlugin, isProvidedWasiImport, validateModule } from './wasm-memory/abi.js';
import { validateFluentBitModule } from './wasm-memory/fluent-bit.js';
import { wasiHost } from './wasm-memory/wasi.js';
import {
  compileModule,
  instantiate,
  instantiateWith,
  isMemory,
  moduleCustomSections,
  moduleExports,
  moduleImports,
  type WasmExportDescriptor,
  type WasmImportDescriptor,
  type WasmModule,
} from './wasm-memory/wasm-api.js';

/** CycloneDX version of the fragment's schema. */
export const CYCLONEDX_SPEC_VERSION = '1.5';

export interface PluginReport {
  file: string;
  size: number;
  sha256: string;
  /**
   * `logwasm_abi_version()` when the module can be instantiated and exports it, else null. This is
   * what the module claims, not a verdict: a module may claim version 1 and still be refused (see
   * `logwasm`).
   */
  abiVersion: number | null;
  /** Empty when the module fits logwasm's ABI v1 (docs/plugin-abi.md). */
  abiProblems: string[];
  /**
   * What the transform does with the module as `abi = "logwasm"` (and `wasi = false`, the
   * default): runs it, or refuses it and why. `withWasi`, only for a module that imports WASI
   * functions and nothing else: the verdict with `wasi = true`; when that accepts it, the module
   * is accepted only with `wasi = true`.
   */
  logwasm: AbiVerdict & { withWasi?: AbiVerdict };
  /**
   * As `abi = "fluent-bit"` with `function` = the first of `fluentBitFunctions`: runs it (with
   * `wasi = true` when `needsWasi`), or refuses it and why.
   */
  fluentBit: AbiVerdict & { needsWasi: boolean };
  /**
   * Exports shaped like a Fluent Bit filter_wasm function (six parameters): candidates for
   * `abi = "fluent-bit"` with `function = "..."`; `wasi = true` is needed when `imports` is not empty.
   */
  fluentBitFunctions: string[];
  exports: (WasmExportDescriptor & { params?: number })[];
  imports: WasmImportDescriptor[];
  /** The `producers` section: field (`language`, `processed-by`, `sdk`) -> `name version` list. */
  producers: Record<string, string[]>;
  cyclonedx: CycloneDxFragment;
}

/** Whether the host would run a module under one ABI; `refusedBecause` is empty when accepted. */
export interface AbiVerdict {
  accepted: boolean;
  refusedBecause: string[];
}

export interface CycloneDxFragment {
  bomFormat: 'CycloneDX';
  specVersion: string;
  components: {
    type: 'library';
    'bom-ref': string;
    name: string;
    hashes: { alg: 'SHA-256'; content: string }[];
    properties: { name: string; value: string }[];
  }[];
}

export async function inspectPlugin(path: string): Promise<PluginReport> {
  const bytes = await readFile(path);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const module = await compileModule(bytes);
  const imports = moduleImports(module);
  const abiProblems: string[] = [];
  let abiVersion: number | null = null;
  let arities: Record<string, unknown> = {};
  try {
    validateModule(module, 'module');
  } catch (error) {
    abiProblems.push(stripLabel(error));
  }
  const wasiOnly = imports.length > 0 && imports.every(isProvidedWasiImport);
  if (imports.length === 0 || wasiOnly) {
    // A WASI guest is instantiated with the host's WASI subset, no preopens, its memory bound and
    // `_initialize` run first: a Rust wasm32-wasi cdylib runs its libc constructors (which ask
    // for preopens) at the start of every export, and exits with 71 when the host cannot answer.
    const host = wasiHost();
    try {
      const instance = imports.length === 0 ? instantiate(module) : instantiateWith(module, host.imports);
      if (imports.length > 0) {
        const memory = instance.exports['memory'];
        if (isMemory(memory)) host.bind(memory);
        const initialize = instance.exports['_initialize'];
        if (typeof initialize === 'function') (initialize as () => unknown)();
      }
      arities = instance.exports;
      const version = instance.exports['logwasm_abi_version'];
      if (typeof version === 'function') abiVersion = Number((version as () => unknown)());
      if (abiProblems.length === 0 && imports.length === 0) bindInstance(instance, 'module');
    } catch (error) {
      abiProblems.push(stripLabel(error));
    } finally {
      host.close();
    }
  }
  const withWasi = wasiOnly ? logwasmWithWasi(module) : undefined;
  const exports = moduleExports(module).map((e) => {
    const fn = arities[e.name];
    return typeof fn === 'function' ? { ...e, params: fn.length } : e;
  });
  const fluentBitFunctions = exports.filter((e) => 'params' in e && e.params === 6).map((e) => e.name);
  const fluentBit = fluentBitVerdict(module, fluentBitFunctions, imports.length > 0);
  const producers = readProducers(module);
  const name = basename(path).replace(/\.wasm$/, '');
  const properties = [
    { name: 'logwasm:size', value: String(bytes.byteLength) },
    { name: 'logwasm:abi_version', value: abiVersion === null ? 'none' : String(abiVersion) },
    { name: 'logwasm:abi_logwasm', value: abiProblems.length === 0 ? 'accepted' : 'refused' },
    ...(withWasi === undefined ? [] : [{ name: 'logwasm:abi_logwasm_wasi', value: withWasi.accepted ? 'accepted' : 'refused' }]),
    { name: 'logwasm:abi_fluent_bit', value: fluentBit.accepted ? 'accepted' : 'refused' },
    { name: 'logwasm:imports', value: imports.map((i) => `${i.module}.${i.name}`).join(',') },
  ];
  for (const [field, values] of Object.entries(producers)) properties.push({ name: `wasm:producers:${field}`, value: values.join(', ') });
  return {
    file: path,
    size: bytes.byteLength,
    sha256,
    abiVersion,
    abiProblems,
    logwasm: { accepted: abiProblems.length === 0, refusedBecause: abiProblems, ...(withWasi === undefined ? {} : { withWasi }) },
    fluentBit,
    fluentBitFunctions,
    exports,
    imports,
    producers,
    cyclonedx: {
      bomFormat: 'CycloneDX',
      specVersion: CYCLONEDX_SPEC_VERSION,
      components: [{ type: 'library', 'bom-ref': `wasm:${name}@sha256:${sha256}`, name, hashes: [{ alg: 'SHA-256', content: sha256 }], properties }],
    },
  };
}

/**
 * `logwasm plugin <subcommand> ...`: returns the exit code. Only `inspect FILE` exists.
 */
export async function pluginCommand(args: readonly string[], out: (text: string) => void, err: (text: string) => void): Promise<number> {
  if (args[0] !== 'inspect' || args.length !== 2) {
    err('usage: logwasm plugin inspect FILE.wasm\n');
    return 1;
  }
  try {
    const report = await inspectPlugin(args[1]!);
    out(`${JSON.stringify(report, null, 2)}\n`);
    // The JSON says it too; a person at a terminal should not have to read that far.
    if (!report.logwasm.accepted && report.logwasm.withWasi?.accepted === true) {
      err(`logwasm plugin inspect: ${args[1]!}: refused unless wasi = true: abi = "logwasm" accepts it only with wasi = true; as it is: ${report.logwasm.refusedBecause.join('; ')}\n`);
    } else if (!report.logwasm.accepted && !report.fluentBit.accepted) {
      err(`logwasm plugin inspect: ${args[1]!}: refused: abi = "logwasm": ${report.logwasm.refusedBecause.join('; ')}; abi = "fluent-bit": ${report.fluentBit.refusedBecause.join('; ')}\n`);
    }
    return 0;
  } catch (error) {
    err(`logwasm plugin inspect: ${args[1]!}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/**
 * The `abi = "logwasm"` checks the transform runs at start with `wasi = true` and no preopens:
 * the imports, then an instance with its own WASI host (`_initialize` run, arities, result area).
 * `init` is not called: it needs the transform's options and may need its preopens.
 */
function logwasmWithWasi(module: WasmModule): AbiVerdict {
  const refusedBecause: string[] = [];
  const host = wasiHost();
  try {
    validateModule(module, 'module', { wasi: true });
    instantiatePlugin(module, 'module', host);
  } catch (error) {
    refusedBecause.push(stripLabel(error));
  } finally {
    host.close();
  }
  return { accepted: refusedBecause.length === 0, refusedBecause };
}

/** The `abi = "fluent-bit"` check the transform runs at start, with WASI enabled when imported. */
function fluentBitVerdict(module: WasmModule, functions: string[], needsWasi: boolean): AbiVerdict & { needsWasi: boolean } {
  const refusedBecause: string[] = [];
  if (functions.length === 0) {
    refusedBecause.push('exports no function of six parameters (tag_ptr, tag_len, time_sec, time_nsec, record_ptr, record_len)');
  } else {
    try {
      validateFluentBitModule(module, { functionName: functions[0]!, wasi: true }, 'module');
    } catch (error) {
      refusedBecause.push(stripLabel(error));
    }
  }
  return { accepted: refusedBecause.length === 0, refusedBecause, needsWasi };
}

function stripLabel(error: unknown): string {
  const message = error instanceof LogwasmError || error instanceof Error ? error.message : String(error);
  return message.replace(/^module: /, '');
}

/** Parses the `producers` custom section (tool-conventions/ProducersSection.md). */
function readProducers(module: WasmModule): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const section of moduleCustomSections(module, 'producers')) {
    const bytes = new Uint8Array(section);
    let at = 0;
    const leb = (): number => {
      let value = 0;
      let shift = 0;
      for (;;) {
        if (at >= bytes.byteLength) throw new RangeError('truncated producers section');
        const byte = bytes[at++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if ((byte & 0x80) === 0) return value;
        shift += 7;
      }
    };
    const str = (): string => {
      const len = leb();
      const text = new TextDecoder().decode(bytes.subarray(at, at + len));
      at += len;
      return text;
    };
    try {
      for (let fields = leb(); fields > 0; fields--) {
        const field = str();
        const values: string[] = [];
        for (let n = leb(); n > 0; n--) values.push(`${str()} ${str()}`.trim());
        result[field] = [...(result[field] ?? []), ...values];
      }
    } catch {
      // A malformed producers section describes nothing; the rest of the report stands.
    }
  }
  return result;
}
