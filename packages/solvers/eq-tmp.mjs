import { fillNormal, defaultBackend } from '@bitsmith/linalg';
import { parseFormat } from '@bitsmith/core';
import { gptqQuantizeLayer } from '/work/main/packages/solvers/dist/index.js';
const rows = Number(process.argv[2] ?? 4096), columns = Number(process.argv[3] ?? 4096), tokens = Number(process.argv[4] ?? 4096);
const backend = await defaultBackend();
const x = fillNormal(new Float32Array(tokens * columns), 1);
for (let t = 0; t < tokens; t++) { const o = t * columns; for (let j = 1; j < columns; j++) x[o + j] += 0.5 * x[o + j - 1]; }
const w = fillNormal(new Float32Array(rows * columns), 0.02);
const hessian = new Float64Array(columns * columns);
await backend.gram({ rows: tokens, columns, x, h: hessian, alpha: 1, beta: 0 });
for (const opts of (process.argv[5] ?? 'int4:g128').split(',')) {
  const [fmt, gran, act] = opts.split(':');
  const granularity = gran === 'channel' ? { type: 'channel' } : { type: 'group', size: Number(gran.slice(1)) };
  const res = {};
  for (const loop of ['js', 'wasm']) {
    const t = performance.now();
    res[loop] = await gptqQuantizeLayer({ dtype: 'float32', shape: [rows, columns], data: w }, hessian, { format: parseFormat(fmt), granularity, backend, columnLoop: loop, actOrder: act === 'act' });
    console.log(opts, loop, 'total', ((performance.now() - t) / 1000).toFixed(2), 'solve', res[loop].timings.solve.toFixed(2));
  }
  let diff = 0; for (let i = 0; i < res.js.weight.data.length; i++) if (res.js.weight.data[i] !== res.wasm.weight.data[i]) diff++;
  let cd = 0; for (let i = 0; i < res.js.quantized.codes.length; i++) if (res.js.quantized.codes[i] !== res.wasm.quantized.codes[i]) cd++;
  console.log(opts, 'weights differing', diff, 'codes differing', cd);
}
