// `bitsmith quantize --resume`: a run that fails after its first block (an error thrown from the progress output,
// as a crash would) continues from its checkpoint and writes byte-identical model files to an uninterrupted run.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointMismatchError } from '@bitsmith/recipe';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpointFolder } from '../run-fingerprint.js';
import { quantizeCommand, type QuantizeOptions } from './quantize.js';

const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const SKIP = !existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP) console.warn(`[bitsmith] skipping the resume tests: ${MODEL} not found (in CI they run)`);

const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-resume-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** quantization.json without what differs between any two runs (wall times, memory, the resume note). */
function comparableReport(path: string): unknown {
  const json = JSON.parse(readFileSync(path, 'utf8')) as { report: Record<string, unknown> & { layers: Record<string, unknown>[]; steps: Record<string, unknown>[] }; resources?: unknown };
  const { seconds: _s, resumedBlocks: _r, ...report } = json.report;
  delete json.resources;
  return { ...json, report: { ...report, layers: json.report.layers.map(({ seconds: _t, ...l }) => l), steps: json.report.steps.map(({ seconds: _t, ...s }) => s) } };
}

/** Fails the run right after block `block` (1-based) is reported done, as a crash there would. */
const crashAfter = (block: number) => ({
  stdout: () => undefined,
  stderr: (text: string) => {
    if (text.startsWith(`block ${block}/`)) throw new Error(`injected crash after block ${block}`);
  },
});
const quiet = { stdout: () => undefined, stderr: () => undefined };

describe.skipIf(SKIP)('bitsmith quantize --resume on tinystories-656k', () => {
  const recipe = join(tmp, 'gptq.yaml');
  writeFileSync(recipe, 'name: gptq-w4g32\nsteps:\n  - gptq: { bits: 4, groupSize: 32 }\n');
  const base = (out: string): QuantizeOptions => ({ model: MODEL, recipe, calibration: join(SHARED, 'data', 'calib.txt'), out, samples: '8', seqLen: '64', save: 'fake,gptq' });

  it('continues a crashed run from its checkpoint to byte-identical model files, then removes the checkpoint', async () => {
    const whole = join(tmp, 'a', 'out');
    await quantizeCommand(base(whole), undefined, quiet);
    expect(existsSync(checkpointFolder(whole))).toBe(false);

    const out = join(tmp, 'b', 'out');
    await expect(quantizeCommand(base(out), undefined, crashAfter(1))).rejects.toThrow(/injected crash after block 1/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(checkpointFolder(out)).sort()).toEqual(['block-0.ckpt', 'head.ckpt']);

    const notes: string[] = [];
    const report = await quantizeCommand({ ...base(out), resume: true }, undefined, { stdout: () => undefined, stderr: (t) => void notes.push(t) });
    expect(report.resumedBlocks).toBe(1);
    expect(notes.join('')).toMatch(/resuming: blocks 1-1 of 2 read from the checkpoint/);
    expect(notes.join('')).toMatch(/block 2\/2 done in .* ETA 0 s; RSS \d+ MiB \(peak \d+ MiB\)/);
    expect(existsSync(checkpointFolder(out))).toBe(false);

    expect(files(out)).toEqual(files(whole));
    for (const f of files(whole)) {
      if (f.endsWith('quantization.json')) expect(comparableReport(join(out, f)), f).toEqual(comparableReport(join(whole, f)));
      else expect(Buffer.compare(readFileSync(join(out, f)), readFileSync(join(whole, f))), f).toBe(0);
    }
    const written = JSON.parse(readFileSync(join(out, 'fake', 'quantization.json'), 'utf8')) as { resources: { peakRssBytes: number }; report: { resumedBlocks: number } };
    expect(written.resources.peakRssBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(written.report.resumedBlocks).toBe(1);
  });

  it('refuses to resume with another recipe or other calibration options, and starts over without --resume', async () => {
    const out = join(tmp, 'c', 'out');
    mkdirSync(dirname(out), { recursive: true });
    await expect(quantizeCommand(base(out), undefined, crashAfter(1))).rejects.toThrow(/injected crash/);
    const other = join(tmp, 'gptq-g64.yaml');
    writeFileSync(other, 'name: gptq-w4g64\nsteps:\n  - gptq: { bits: 4, groupSize: 64 }\n');
    const refused = await quantizeCommand({ ...base(out), recipe: other, resume: true }, undefined, quiet).catch((e: unknown) => e);
    expect(CheckpointMismatchError.isInstance(refused)).toBe(true);
    expect((refused as Error).message).toMatch(/was made with a different recipe; resuming would mix two runs/);
    await expect(quantizeCommand({ ...base(out), samples: '7', resume: true }, undefined, quiet)).rejects.toThrow(/different calibration, calibration options/);
    // Another training arithmetic is another run too (its learned steps would compute other bits).
    await expect(quantizeCommand({ ...base(out), trainingArithmetic: 'reference', resume: true }, undefined, quiet)).rejects.toThrow(/different calibration options; resuming would mix two runs/);
    // The refused resumes left the checkpoint alone; without --resume the run starts over (and says so).
    const notes: string[] = [];
    const report = await quantizeCommand({ ...base(out), recipe: other }, undefined, { stdout: () => undefined, stderr: (t) => void notes.push(t) });
    expect(report.resumedBlocks).toBeUndefined();
    expect(notes.join('')).toMatch(/holds the checkpoint of an earlier, unfinished run; starting over/);
    expect(existsSync(checkpointFolder(out))).toBe(false);
  });
});
