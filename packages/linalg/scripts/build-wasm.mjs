#!/usr/bin/env node
// Compiles assembly/kernels.ts (AssemblyScript) into wasm/kernels.wasm (128-bit SIMD) and
// wasm/kernels-relaxed.wasm (plus relaxed SIMD fused multiply-adds), both importing one shared memory.
// The built files are committed, so installing or testing the package needs no compiler.
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await mkdir(join(root, 'wasm'), { recursive: true });

const common = [
  join(root, 'assembly', 'kernels.ts'),
  '-O3', '--converge', '--noAssert', '--runtime', 'stub', '--use', 'abort=',
  '--enable', 'simd', '--enable', 'threads',
  '--importMemory', '--sharedMemory', '--initialMemory', '1', '--maximumMemory', '65536',
];
const variants = [
  { out: 'kernels.wasm', flags: [] },
  { out: 'kernels-relaxed.wasm', flags: ['--enable', 'relaxed-simd'] },
];
for (const { out, flags } of variants) {
  const { error, stderr } = await asc.main([...common, ...flags, '--outFile', join(root, 'wasm', out)]);
  if (error) {
    console.error(stderr.toString());
    throw error;
  }
  console.log(`built wasm/${out}`);
}

// GPTQ's column loop for integer grids (solvers' gptqQuantizeLayer), and the reference kernels of the decoder
// forward (attention's softmax rows, the SiLU gate), and AutoRound's learnable-rounding loops: one instance each with its
// own growable memory.
for (const name of ['gptq-columns', 'reference-kernels', 'learnable-rounding']) {
  const out = `${name}.wasm`;
  const { error, stderr } = await asc.main([
    join(root, 'assembly', `${name}.ts`),
    '-O3', '--converge', '--noAssert', '--runtime', 'stub', '--use', 'abort=', '--enable', 'simd',
    '--initialMemory', '1', '--outFile', join(root, 'wasm', out),
  ]);
  if (error) {
    console.error(stderr.toString());
    throw error;
  }
  console.log(`built wasm/${out}`);
}
