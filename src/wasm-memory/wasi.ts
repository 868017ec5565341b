/**
 * The smallest WASI preview1 subset a Fluent Bit filter built for wasm32-wasi imports (Rust's std
 * pulls in exactly these): `fd_write` to stdout/stderr (captured, never written to the agent's
 * own streams), an empty environment, `proc_exit` (a trap), and `random_get`. Nothing touches
 * the filesystem, clock or network: any other WASI import is refused when the module is checked.
 * Only used when the transform sets `wasi = true`.
 */
import { randomFillSync } from 'node:crypto';
import type { WasmImports, WasmMemory } from './wasm-api.js';

export const WASI_MODULE = 'wasi_snapshot_preview1';

/** The WASI functions this host provides. */
export const WASI_FUNCTIONS: readonly string[] = ['fd_write', 'environ_get', 'environ_sizes_get', 'proc_exit', 'random_get'];

/** Longest guest stdout/stderr text kept per batch, in characters. */
export const MAX_GUEST_OUTPUT_CHARS = 2048;

const ERRNO_SUCCESS = 0;
const ERRNO_BADF = 8;
const ERRNO_FAULT = 21;

/** Thrown by `proc_exit`: ends the call like a trap. */
export class GuestExit extends Error {
  constructor(readonly exitCode: number) {
    super(`the guest called proc_exit(${exitCode})`);
  }
}

export interface WasiHost {
  imports: WasmImports;
  /** Binds the instance's memory once it exists. */
  bind(memory: WasmMemory): void;
  /** Text written to fd 1 and 2 since the last call, then forgets it. */
  takeOutput(): string | undefined;
}

export function wasiHost(): WasiHost {
  let memory: WasmMemory | undefined;
  let output = '';
  const decoder = new TextDecoder();
  const view = (): DataView | undefined => (memory ? new DataView(memory.buffer) : undefined);
  const inBounds = (ptr: number, len: number): boolean => memory !== undefined && ptr + len <= memory.buffer.byteLength;
  const functions = {
    fd_write(fd: number, iovs: number, iovsLen: number, nwritten: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(iovs >>> 0, (iovsLen >>> 0) * 8) || !inBounds(nwritten >>> 0, 4)) return ERRNO_FAULT;
      if (fd !== 1 && fd !== 2) return ERRNO_BADF;
      let total = 0;
      for (let i = 0; i < iovsLen >>> 0; i++) {
        const ptr = dv.getUint32((iovs >>> 0) + i * 8, true);
        const len = dv.getUint32((iovs >>> 0) + i * 8 + 4, true);
        if (!inBounds(ptr, len)) return ERRNO_FAULT;
        if (output.length < MAX_GUEST_OUTPUT_CHARS) output += decoder.decode(new Uint8Array(memory!.buffer, ptr, len));
        total += len;
      }
      dv.setUint32(nwritten >>> 0, total, true);
      return ERRNO_SUCCESS;
    },
    environ_sizes_get(countPtr: number, sizePtr: number): number {
      const dv = view();
      if (dv === undefined || !inBounds(countPtr >>> 0, 4) || !inBounds(sizePtr >>> 0, 4)) return ERRNO_FAULT;
      dv.setUint32(countPtr >>> 0, 0, true);
      dv.setUint32(sizePtr >>> 0, 0, true);
      return ERRNO_SUCCESS;
    },
    environ_get(): number {
      return ERRNO_SUCCESS;
    },
    proc_exit(code: number): never {
      throw new GuestExit(code);
    },
    random_get(ptr: number, len: number): number {
      if (memory === undefined || !inBounds(ptr >>> 0, len >>> 0)) return ERRNO_FAULT;
      randomFillSync(new Uint8Array(memory.buffer, ptr >>> 0, len >>> 0));
      return ERRNO_SUCCESS;
    },
  };
  return {
    imports: { [WASI_MODULE]: functions as unknown as WasmImports[string] },
    bind(bound) {
      memory = bound;
    },
    takeOutput() {
      if (output === '') return undefined;
      const text = output.length > MAX_GUEST_OUTPUT_CHARS ? `${output.slice(0, MAX_GUEST_OUTPUT_CHARS)}...` : output;
      output = '';
      return text;
    },
  };
}
