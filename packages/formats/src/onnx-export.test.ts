import { describe, expect, it } from 'vitest';
import { readMatMulNBits } from './onnx-file.js';
import { loadOrt } from './onnx-ort.test-support.js';
import { runOnnxCheck, SKIP_SHARED } from './onnx-real-model.test-support.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ort = await loadOrt();

describe.skipIf(SKIP_SHARED || !ort)('ONNX export of tinystories-656k in onnxruntime-node', () => {
  it('float and GPTQ w4 g32 MatMulNBits logits match bitsmith within 1e-4; perplexity agrees; MatMulNBits reads back bit-exactly', async () => {
    const lines: string[] = [];
    const r = await runOnnxCheck(ort!, { floatPerplexity: false, calibrationSequences: 4, compareWindows: 4, perplexityTokens: 2048, log: (l) => lines.push(l) });
    console.log(lines.join('\n'));
    expect(r.floatLogits.maxDiff).toBeLessThan(1e-4);
    expect(r.q4Logits.maxDiff).toBeLessThan(1e-4);
    expect(r.q4.matMulNBits).toHaveLength(14);
    expect(Math.abs(r.q4OnnxPpl.perplexity - r.q4Ours.perplexity) / r.q4Ours.perplexity).toBeLessThan(1e-5);
    expect(r.q4OnnxPpl.tokens).toBe(r.q4Ours.tokens);
    const dir = await mkdtemp(join(tmpdir(), 'bitsmith-onnx-'));
    try {
      await writeFile(join(dir, 'model.onnx'), r.q4.bytes);
      const back = await readMatMulNBits(join(dir, 'model.onnx'));
      expect([...back.keys()].sort()).toEqual([...r.quantized.keys()].sort());
      for (const [name, q] of r.quantized) {
        const b = back.get(name)!;
        expect(b.shape).toEqual(q.shape);
        expect(b.format).toEqual(q.format);
        expect(b.granularity).toEqual(q.granularity);
        expect(b.scaleEncoding).toBe(q.scaleEncoding);
        expect(Buffer.from(b.codes.buffer, b.codes.byteOffset, b.codes.byteLength).equals(Buffer.from(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength))).toBe(true);
        expect(Array.from(b.scales)).toEqual(Array.from(q.scales));
        expect(b.zeroPoints).toEqual(q.zeroPoints);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
