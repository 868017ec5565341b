/**
 * BufferReleaser: a worker's dead batch buffers are freed once a few MiB of them piled up, not
 * when V8's external-memory trigger (~64 MiB) fires.
 */
import { describe, expect, it } from 'vitest';
import { BufferReleaser, exposedGc, RELEASE_EVERY_BYTES, type CollectGarbage } from '../src/buffer-release.js';

describe('BufferReleaser', () => {
  it('runs one minor collection each time the released bytes pass the threshold', () => {
    const calls: string[] = [];
    const collect: CollectGarbage = (options) => calls.push(options.type);
    const releaser = new BufferReleaser(collect, 1000);
    releaser.released(600);
    expect(calls).toEqual([]);
    releaser.released(600);
    expect(calls).toEqual(['minor']);
    releaser.released(999);
    expect(calls).toEqual(['minor']);
    releaser.released(1);
    expect(calls).toEqual(['minor', 'minor']);
    expect(releaser.collections).toBe(2);
  });

  it('without a gc function it only counts', () => {
    const releaser = new BufferReleaser(null, 10);
    releaser.released(100);
    expect(releaser.collections).toBe(0);
  });

  it('frees dead ArrayBuffers for real, well before V8 would on its own', () => {
    const gc = exposedGc();
    expect(gc).toBeTypeOf('function');
    const releaser = new BufferReleaser(gc ?? null);
    // Young garbage the size of a few batches, past the threshold, far under V8's own trigger.
    const size = 512 * 1024;
    const count = Math.ceil((2 * RELEASE_EVERY_BYTES) / size);
    const before = process.memoryUsage().arrayBuffers;
    let live: Uint8Array | undefined;
    for (let i = 0; i < count; i++) {
      live = new Uint8Array(size);
      live[i] = 1;
    }
    expect(live?.[count - 1]).toBe(1);
    live = undefined;
    const piled = process.memoryUsage().arrayBuffers - before;
    expect(piled).toBeGreaterThan(RELEASE_EVERY_BYTES);
    releaser.released(count * size);
    expect(releaser.collections).toBe(1);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(piled / 4);
  });
});
