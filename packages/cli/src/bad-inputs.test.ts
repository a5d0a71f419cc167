// The bad-input suite: every malformed input and fault that bad-inputs.test-support.ts generates must end in exactly
// its expected outcome — a named error (class and code), a warning, or a correct result — and a failing case must have
// written nothing (no output folder, no partial folder, inputs and earlier outputs unchanged). docs/reliability.md
// lists the guarantees; the counts printed at the end go into it.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BitsmithError } from '@bitsmith/core';
import { disposeDefaultBackend } from '@bitsmith/linalg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badInputCases, quantize, type CaseEnv } from './bad-inputs.test-support.js';

const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const SKIP = !existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP) console.warn(`[bitsmith] skipping the bad-input suite: ${MODEL} not found (in CI it runs)`);

/** Every file under `dir` with a hash of its content (folders as entries too). */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const rel = relative(dir, path);
      if (statSync(path).isDirectory()) {
        out.set(`${rel}/`, 'dir');
        walk(path);
      } else out.set(rel, createHash('sha1').update(readFileSync(path)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

function differences(before: Map<string, string>, after: Map<string, string>, allowed?: string): string[] {
  const changed: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v && !(allowed && (k === `${allowed}/` || k.startsWith(`${allowed}/`)))) changed.push(`${before.has(k) ? 'changed' : 'added'} ${k}`);
  for (const k of before.keys()) if (!after.has(k) && !(allowed && (k === `${allowed}/` || k.startsWith(`${allowed}/`)))) changed.push(`removed ${k}`);
  return changed;
}

const cases = badInputCases();
const outcomes: Record<string, number> = {};
const root = mkdtempSync(join(tmpdir(), 'bitsmith-bad-inputs-'));
const checkpoints = { compressedTensors: join(root, 'checkpoints', 'ct'), gptq: join(root, 'checkpoints', 'gptq') };
const modelBefore = SKIP ? new Map<string, string>() : snapshot(MODEL);

afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await disposeDefaultBackend();
  const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
  if (total > 0) console.log(`[bitsmith] bad-input suite: ${total} cases: ${Object.entries(outcomes).map(([k, v]) => `${v} ${k}`).join(', ')}`);
});

describe.skipIf(SKIP)('bad inputs: each ends in its named error, warning or correct result, and a failure writes nothing', () => {
  beforeAll(async () => {
    // Quantized checkpoints for the reader cases (RTN int4 g32 through the CLI itself).
    const env = { dir: join(root, 'checkpoints'), model: MODEL, calibration: join(SHARED, 'data', 'calib.txt'), checkpoints, mark: () => undefined } satisfies CaseEnv;
    mkdirSync(env.dir, { recursive: true });
    await quantize(env, { save: 'compressed-tensors', out: checkpoints.compressedTensors });
    await quantize(env, { save: 'gptq', out: checkpoints.gptq });
  }, 300_000);

  it('generates at least 40 cases across outputs, NaN, readers and inputs, with unique names', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    for (const group of ['output', 'nan', 'reader', 'input']) expect(cases.filter((c) => c.group === group).length, group).toBeGreaterThanOrEqual(5);
  });

  it.each(cases.map((c, i) => [`${c.group}: ${c.name}`, i] as const))('%s', async (_label, index) => {
    const c = cases[index]!;
    const dir = join(root, `case-${index}`);
    mkdirSync(dir);
    let before: Map<string, string> | undefined;
    const env: CaseEnv = { dir, model: MODEL, calibration: join(SHARED, 'data', 'calib.txt'), checkpoints, mark: () => void (before = snapshot(dir)) };
    let printed = '';
    let error: unknown;
    try {
      printed = await c.run(env);
    } catch (e) {
      error = e;
    }
    if (before === undefined) throw new Error(`the case failed before marking its inputs: ${String((error as Error)?.stack ?? error)}`);
    const after = snapshot(dir);
    // Never a leftover staging folder, never a change to the real model.
    expect([...after.keys()].filter((k) => k.includes('.partial-'))).toEqual([]);
    expect(differences(modelBefore, snapshot(MODEL))).toEqual([]);
    const expected = c.expected;
    if (expected.outcome === 'error') {
      if (!BitsmithError.isInstance(error)) throw new Error(`expected ${expected.name} (${expected.code}); got ${error === undefined ? `no error, output:\n${printed}` : String((error as Error).stack ?? error)}`);
      expect({ code: error.code, name: error.name }).toEqual({ code: expected.code, name: expected.name });
      expect(error.message).toMatch(expected.message);
      expect(error.message).not.toMatch(/undefined|\[object Object\]/);
      // Nothing written: the folder is as the case built it.
      expect(differences(before!, after)).toEqual([]);
      outcomes['named error'] = (outcomes['named error'] ?? 0) + 1;
    } else {
      if (error !== undefined) throw error;
      expect(differences(before!, after, expected.writes)).toEqual([]);
      if (expected.outcome === 'warning') {
        expect(printed).toMatch(expected.message);
        outcomes.warning = (outcomes.warning ?? 0) + 1;
      } else {
        expected.check(env, printed);
        outcomes['correct result'] = (outcomes['correct result'] ?? 0) + 1;
      }
      // A run that wrote a model wrote finite numbers only (checked by loading it back).
      if (expected.writes && existsSync(join(dir, expected.writes, 'model.safetensors'))) {
        const { loadSafetensorsWeights } = await import('@bitsmith/models');
        await loadSafetensorsWeights(join(dir, expected.writes));
      }
    }
  }, 300_000);
});
