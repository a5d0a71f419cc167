// Writes src/fixtures/ggml-oracle.json: inputs and the bytes that ggml's own quantizers (compiled from llama.cpp's
// ggml-quants.c with -ffp-contract=off, see setup-llama-cpp.sh) produce for them, with and without importance weights.
// The unit tests compare bitsmith's encoders with these bytes.
//
//   node packages/formats/bench/ggml-oracle/make-fixtures.mjs /path/to/ggml-quant-oracle
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const oracle = process.argv[2];
if (!oracle) throw new Error('usage: make-fixtures.mjs PATH-TO-ggml-quant-oracle');
const here = new URL('.', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'ggml-oracle-'));

// Deterministic inputs (mulberry32): Laplace-like weights with a few outliers and one all-zero 32-block, and
// importance weights spanning four orders of magnitude like real imatrix columns.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rows = 3;
const columns = 512;
const r = rng(14);
const values = new Float32Array(rows * columns);
for (let i = 0; i < values.length; i++) {
  const u = r() - 0.5;
  values[i] = -Math.sign(u) * Math.log(1 - 2 * Math.abs(u)) * 0.02 * (r() < 0.01 ? 12 : 1);
}
values.fill(0, 64, 96);
const importance = new Float32Array(columns);
for (let i = 0; i < columns; i++) importance[i] = Math.exp((r() - 0.5) * 9) * (i === 200 ? 1000 : 1);

const valuesPath = join(dir, 'values.f32');
const importancePath = join(dir, 'importance.f32');
writeFileSync(valuesPath, Buffer.from(values.buffer));
writeFileSync(importancePath, Buffer.from(importance.buffer));
const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const cases = [];
for (const type of ['Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS']) {
  for (const weighted of [false, true]) {
    const out = join(dir, `${type}-${weighted}.bin`);
    execFileSync(oracle, [type, String(rows), String(columns), valuesPath, weighted ? importancePath : '-', out]);
    cases.push({ type, importance: weighted, bytes: readFileSync(out).toString('base64') });
  }
}
const fixture = {
  source: "ggml-quants.c of the llama.cpp release bundled in node-llama-cpp 3.22.1 (llama.cpp.info.json tag v0.5.0), compiled with -ffp-contract=off; ggml's quantize_<type>(values, rows, columns, importance) as llama-quantize calls it",
  rows,
  columns,
  values: b64(values),
  importance: b64(importance),
  cases,
};
writeFileSync(join(here, '../../src/fixtures/ggml-oracle.json'), `${JSON.stringify(fixture, null, 1)}\n`);
console.log(`wrote ${cases.length} cases`);
