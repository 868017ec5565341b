/**
 * `heap_memory_size` enforced by the engine itself: the module's memory section is rewritten so
 * that its declared maximum is at most the limit. A `memory.grow` past it then returns -1 inside
 * the guest (Rust's allocator reports out of memory, which aborts: a trap), instead of the host
 * noticing after the fact that a call took gigabytes. The runner still checks the size after each
 * call, for modules run without this rewrite.
 */
import { PluginAbiError } from '../errors.js';

/** Bytes in one WebAssembly page. */
export const WASM_PAGE_BYTES = 65536;

const MEMORY_SECTION = 5;

/**
 * Returns `bytes` with every defined memory's maximum lowered to `maxBytes` (rounded down to
 * whole pages, at least one). Throws PluginAbiError when a memory's initial size is already past
 * the limit, or the module is not a wasm binary this can read. Modules without a memory section
 * come back unchanged (the ABI check refuses them later).
 */
export function capMemory(bytes: Uint8Array, maxBytes: number, label = 'plugin'): Uint8Array {
  const capPages = Math.max(1, Math.floor(maxBytes / WASM_PAGE_BYTES));
  if (bytes.byteLength < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new PluginAbiError(`${label}: not a WebAssembly binary (bad magic number)`);
  }
  let at = 8;
  while (at < bytes.byteLength) {
    const sectionStart = at;
    const id = bytes[at++]!;
    const size = readLeb(bytes, at);
    const payloadStart = size.next;
    const payloadEnd = payloadStart + size.value;
    if (payloadEnd > bytes.byteLength) throw new PluginAbiError(`${label}: truncated section ${id}`);
    if (id === MEMORY_SECTION) {
      const payload = rewriteMemories(bytes.subarray(payloadStart, payloadEnd), capPages, maxBytes, label);
      const header = [MEMORY_SECTION, ...writeLeb(payload.length)];
      const out = new Uint8Array(sectionStart + header.length + payload.length + (bytes.byteLength - payloadEnd));
      out.set(bytes.subarray(0, sectionStart), 0);
      out.set(header, sectionStart);
      out.set(payload, sectionStart + header.length);
      out.set(bytes.subarray(payloadEnd), sectionStart + header.length + payload.length);
      return out;
    }
    at = payloadEnd;
  }
  return bytes;
}

function rewriteMemories(payload: Uint8Array, capPages: number, maxBytes: number, label: string): number[] {
  const count = readLeb(payload, 0);
  const out = writeLeb(count.value);
  let at = count.next;
  for (let i = 0; i < count.value; i++) {
    const flags = payload[at++]!;
    if (flags > 3) throw new PluginAbiError(`${label}: memory ${i} uses flags 0x${flags.toString(16)} (memory64?), which this host does not run`);
    const min = readLeb(payload, at);
    at = min.next;
    let max = Infinity;
    if (flags & 1) {
      const declared = readLeb(payload, at);
      at = declared.next;
      max = declared.value;
    }
    if (min.value > capPages) {
      throw new PluginAbiError(
        `${label}: memory starts at ${min.value * WASM_PAGE_BYTES} bytes, more than heap_memory_size (${maxBytes} bytes)`,
      );
    }
    out.push(flags | 1, ...writeLeb(min.value), ...writeLeb(Math.min(max, capPages)));
  }
  return out;
}

function readLeb(bytes: Uint8Array, start: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  let at = start;
  for (;;) {
    if (at >= bytes.byteLength || shift > 28) throw new PluginAbiError('plugin: malformed LEB128 number in the module');
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { value, next: at };
    shift += 7;
  }
}

function writeLeb(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
}
