import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/bitsmith.ts', 'src/malloc-tunables.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'es2022',
});
