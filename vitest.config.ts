import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // End-to-end suites spawn the real CLI and worker threads; two cores do not
    // take more than two such files at once without timing noise.
    maxWorkers: 2,
  },
});
