import { defineConfig } from 'vitest/config';

/**
 * Shared vitest configuration for every package: the default console reporter plus a JSON
 * report at `<package>/reports/vitest.json`, which `.ci/run` sums into its `N passed, N failed` line.
 */
export function packageTestConfig(options: { testTimeout?: number } = {}) {
  return defineConfig({
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      reporters: ['default', ['json', { outputFile: 'reports/vitest.json' }]],
      // Timeouts only catch hangs: tests are kept under ~20 s idle, and CI runs on a shared 2-core machine at load 10
      // or more, where a 20 s test can take several times longer. 300 s keeps load from failing them.
      testTimeout: options.testTimeout ?? 300_000,
      hookTimeout: 300_000,
    },
  });
}
