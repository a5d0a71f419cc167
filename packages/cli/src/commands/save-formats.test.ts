import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ActivationSchemeRefusedError, StoredFormRefusedError, dequantize, type Matrix, type StoredForm } from '@bitsmith/core';
import { EXPORTER_STORED_KINDS, ggufLlamaTensorName, loadCompressedTensors, loadGptq, permuteForGgmlRope, readGguf, readMatMulNBits, refuseDeclaredKinds } from '@bitsmith/formats';
import { openSafetensors } from '@bitsmith/models';
import { loadRecipe } from '@bitsmith/recipe';
import { afterAll, describe, expect, it } from 'vitest';
import { OptionError } from '../command-output.js';
import { defaultRegistry } from '../default-registry.js';
import { SAVE_EXPORTERS, SAVE_FORMATS, declaredStoredKinds, runQuantizeJob, writeQuantizedModel, type QuantizeJob, type QuantizeOptions, type SaveFormat } from './quantize.js';

// Every recipe of examples/recipes x every `--save` format on tinystories-656k: the recipe runs once (2 calibration
// sequences of 32 tokens: the point is the export, not the quality), then each format is written and read back. Each
// pair either reads back the fake-quant weights exactly or is refused with a named error (StoredFormRefusedError, or
// ActivationSchemeRefusedError / OptionError for activation quantizers and run-time input transforms a format cannot carry).
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(ROOT, '../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const SKIP = !existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP) console.warn(`[bitsmith] skipping the recipe x --save format test: ${MODEL} not found (in CI it runs)`);
const RECIPES = join(ROOT, 'examples', 'recipes');
// By default one recipe per stored kind and exporter corner (grid, asymmetric grid, 3-bit grid for ONNX, float16 zero
// points, integer zero points, LUT, LUT + sparse outliers, codebook, low-rank around a grid from a quantize step and
// from a compensate step, fused rotation); BITSMITH_ALL_RECIPES=1 runs every file of examples/recipes (about 10 minutes on a busy 2-core machine),
// BITSMITH_RECIPES=<regex> a chosen few.
const DEFAULT_RECIPES = /^(w8a8-rtn-static|rtn-w4g32|rtn-asym-w3g32|hqq-w4g32|hqq-int-zero-w4g32|squeezellm-w2|squeezellm-sparse-w3|vq-d2k4|svdquant-r8-w3g32|rtn-w3g32-lorc-r8|rotation-rtn-w4g32)\.yaml$/;
const chosen = process.env.BITSMITH_ALL_RECIPES === '1' ? /./ : process.env.BITSMITH_RECIPES ? new RegExp(process.env.BITSMITH_RECIPES) : DEFAULT_RECIPES;
const files = existsSync(RECIPES) ? readdirSync(RECIPES).filter((f) => f.endsWith('.yaml') && chosen.test(f)).sort() : [];
const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-save-formats-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const quiet = { stdout: () => undefined, stderr: () => undefined };
// A short calibration text (the first 8 KB of calib.txt): tokenizing the whole file would cost more than the recipes.
const CALIBRATION = join(tmp, 'calib-head.txt');
if (!SKIP) writeFileSync(CALIBRATION, readFileSync(join(SHARED, 'data', 'calib.txt'), 'utf8').slice(0, 8192));

function expectSame(name: string, format: string, actual: ArrayLike<number>, expected: Matrix): void {
  expect(actual.length, `${format} ${name}`).toBe(expected.data.length);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected.data[i]) expect(`${format} ${name}[${i}] = ${actual[i]}`).toBe(`${format} ${name}[${i}] = ${expected.data[i]}`);
  }
}

/** Reads the written weights back and compares every quantized layer with the fake-quant weight of the job's graph. */
async function expectReadBack(format: SaveFormat, out: string, job: QuantizeJob): Promise<void> {
  const layers = job.loaded.graph.linearLayers().filter((l) => job.stored.has(l.name));
  const packed = (s: StoredForm) => s.kind === 'grid';
  if (format === 'fake') {
    const file = await openSafetensors(join(out, 'model.safetensors'));
    for (const l of layers) expectSame(l.name, format, (await file.readTensor(`${l.name}.weight`)).data, l.weight);
    await file.close();
  } else if (format === 'compressed-tensors' || format === 'gptq' || format === 'gptq-v2') {
    const loaded = format === 'compressed-tensors' ? await loadCompressedTensors(out) : await loadGptq(out);
    for (const l of layers) {
      const q = loaded.quantized.get(l.name);
      if (packed(job.stored.get(l.name)!)) expectSame(l.name, format, dequantize(q!).data, l.weight);
      else expectSame(l.name, format, loaded.tensors.get(`${l.name}.weight`)!.data, l.weight);
    }
  } else if (format === 'onnx') {
    // The transformers.js layout: the quantized file (q4 / q2 / q8 by the grids' widths) holds every grid's codes;
    // a low-rank layer holds its base grid there (its branch is two float MatMuls beside it).
    const quantizedFile = readdirSync(join(out, 'onnx')).find((f) => /^model_(q\d|quantized)\.onnx$/.test(f));
    if (!quantizedFile) return;
    const read = await readMatMulNBits(join(out, 'onnx', quantizedFile));
    for (const l of layers) {
      const s = job.stored.get(l.name)!;
      if (packed(s)) expectSame(l.name, format, dequantize(read.get(l.name)!).data, l.weight);
      else if (s.kind === 'low-rank' && s.base.kind === 'grid') expectSame(l.name, format, dequantize(read.get(l.name)!).data, dequantize(s.base.tensor));
    }
  } else {
    const gguf = await readGguf(join(out, 'model.gguf'));
    const { numAttentionHeads, numKeyValueHeads, headDim } = job.loaded.graph.config;
    for (const l of layers) {
      const name = ggufLlamaTensorName(`${l.name}.weight`)!;
      const [rows, columns] = l.weight.shape;
      const heads = /\.attn_q\./.test(name) ? numAttentionHeads : /\.attn_k\./.test(name) ? numKeyValueHeads : 0;
      const expected = heads ? permuteForGgmlRope(l.weight.data as Float32Array, heads, headDim, columns) : l.weight.data;
      expectSame(l.name, format, gguf.tensorValues(name), { dtype: 'float32', shape: [rows, columns], data: expected as Float32Array });
    }
  }
}

describe.skipIf(SKIP)('every example recipe x every --save format (tinystories-656k)', () => {
  it.each(files)('%s: each format reads back the fake-quant weights or is refused by name', async (file) => {
    // Plan paths in recipes are relative to the repository root.
    const recipe = join(tmp, file);
    writeFileSync(recipe, readFileSync(join(RECIPES, file), 'utf8').replace(/plan: examples\//g, `plan: ${ROOT}/examples/`));
    const options: QuantizeOptions = { model: MODEL, recipe, calibration: CALIBRATION, out: '', samples: '2', seqLen: '32', ggufType: 'F32' };
    const declared = declaredStoredKinds(await loadRecipe(recipe, defaultRegistry));
    const job = await runQuantizeJob(options, defaultRegistry, quiet);
    expect(job.stored.size, 'the recipe quantizes layers').toBeGreaterThan(0);
    const kinds = new Set([...job.stored.values()].map((s) => s.kind));
    for (const format of SAVE_FORMATS) {
      const out = join(tmp, `${file}-${format}`);
      // Refused before the run exactly when a declared kind is not accepted; the run's kinds agree with the declaration.
      const early = (() => {
        try {
          refuseDeclaredKinds(format, declared);
          return undefined;
        } catch (error) {
          return error;
        }
      })();
      // The exporter says which kinds it accepts (the same list as EXPORTER_STORED_KINDS).
      const exporter = SAVE_EXPORTERS[format];
      expect(exporter.accepts).toEqual(EXPORTER_STORED_KINDS[format]);
      const refusedKinds = [...kinds].filter((k) => !exporter.accepts.includes(k));
      // The exporter's check, which reads only the run object, refuses what writing refuses (before any work).
      const checked = (() => {
        try {
          exporter.check(job.run, (format === 'gguf' ? { type: 'F32' } : {}) as never);
          return undefined;
        } catch (error) {
          return error;
        }
      })();
      if (early !== undefined) {
        expect(StoredFormRefusedError.isInstance(early), String(early)).toBe(true);
        expect(refusedKinds).toContain((early as StoredFormRefusedError).kind);
      }
      const written = await writeQuantizedModel(job, { ...options, out, save: format }, quiet).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (written === undefined) {
        expect(early, `${format} was refused before the run but wrote a file`).toBeUndefined();
        expect(checked, `${format}: check() refused a run that was written`).toBeUndefined();
        await expectReadBack(format, out, job);
      } else {
        const named =
          StoredFormRefusedError.isInstance(written) || ActivationSchemeRefusedError.isInstance(written) || (written instanceof OptionError && /run-time input transforms|key\/value cache/.test(written.message));
        expect(named, `${format}: ${String(written)}`).toBe(true);
        expect(existsSync(join(out, 'model.safetensors')) || existsSync(join(out, 'onnx')) || existsSync(join(out, 'model.gguf')), 'nothing written before a refusal').toBe(false);
        if (refusedKinds.length > 0) expect(StoredFormRefusedError.isInstance(written)).toBe(true);
        if (StoredFormRefusedError.isInstance(written) || ActivationSchemeRefusedError.isInstance(written)) {
          expect((checked as { code?: string } | undefined)?.code, `${format}: check() refuses as writing does`).toBe(written.code);
        }
      }
    }
  });
});
