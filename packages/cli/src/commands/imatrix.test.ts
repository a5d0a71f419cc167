import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readGguf, readImatrix } from '@bitsmith/formats';
import { afterAll, describe, expect, it } from 'vitest';
import { imatrixCommand } from './imatrix.js';
import { quantizeCommand } from './quantize.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(ROOT, '../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const TEXT = join(SHARED, 'data', 'dev-heldout.txt');
const SKIP = !existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP) console.warn(`[bitsmith] skipping bitsmith imatrix: ${MODEL} not found (in CI it runs)`);
const quiet = { stdout: () => undefined, stderr: () => undefined };

describe.skipIf(SKIP)('bitsmith imatrix (tinystories-656k)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bitsmith-imatrix-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes both layouts with one entry per block linear, the same means, and the token count of the calibration cut', async () => {
    const gguf = join(dir, 'm.imatrix.gguf');
    const dat = join(dir, 'm.imatrix.dat');
    const written = await imatrixCommand({ model: MODEL, calibration: TEXT, out: gguf, samples: '4', seqLen: '64' }, quiet);
    await imatrixCommand({ model: MODEL, calibration: TEXT, out: dat, samples: '4', seqLen: '64' }, quiet);
    const a = await readImatrix(gguf);
    const b = await readImatrix(dat);
    expect(a.entries.size).toBe(14); // 2 blocks x 7 linears; the tied LM head is not collected, as in llama-imatrix
    expect(a.chunkCount).toBe(4);
    expect(a.chunkSize).toBe(64);
    expect(a.entries.get('blk.0.attn_q.weight')!.count).toBe(4 * 64);
    expect([...a.entries.get('blk.1.attn_q.weight')!.sums]).toEqual([...a.entries.get('blk.1.attn_v.weight')!.sums]); // q, k, v share their input
    for (const [name, e] of a.entries) {
      const legacy = b.entries.get(name)!;
      for (let j = 0; j < e.sums.length; j++) expect(legacy.sums[j]! / legacy.count).toBeCloseTo(e.sums[j]! / e.count, 5);
    }
    expect(written.entries.size).toBe(14);
  });

  it('quantize --save gguf --imatrix uses it for the importance-weighted encoders and refuses it without --save gguf', async () => {
    const imatrix = join(dir, 'q.imatrix.gguf');
    await imatrixCommand({ model: MODEL, calibration: TEXT, out: imatrix, samples: '2', seqLen: '64' }, quiet);
    const out = join(dir, 'iq4');
    await quantizeCommand({ model: MODEL, preset: undefined, recipe: join(ROOT, 'examples', 'recipes', 'rtn-w4g32.yaml'), out, samples: '1', seqLen: '32', save: 'gguf', ggufType: 'IQ4_NL', imatrix }, undefined, quiet);
    const file = await readGguf(join(out, 'model.gguf'));
    expect(file.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')?.type).toBe('IQ4_NL');
    await expect(quantizeCommand({ model: MODEL, recipe: join(ROOT, 'examples', 'recipes', 'rtn-w4g32.yaml'), out: join(dir, 'x'), samples: '1', seqLen: '32', save: 'fake', imatrix }, undefined, quiet)).rejects.toThrow(/--imatrix/);
  });
});
