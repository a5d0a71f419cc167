import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerEval } from './eval.js';
import { registerGenerate } from './generate.js';

const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const SKIP = !existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP) console.warn(`[bitsmith] skipping CLI tests on the real model: ${MODEL} not found (set BITSMITH_SHARED; in CI they run)`);

async function run(args: string[]): Promise<string> {
  let out = '';
  const program = new Command('bitsmith').exitOverride();
  registerEval(program, { stdout: (t) => void (out += t) });
  registerGenerate(program, { stdout: (t) => void (out += t) });
  await program.parseAsync(['node', 'bitsmith', ...args]);
  return out;
}

const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(SKIP)('bitsmith eval / generate on tinystories-656k', () => {
  const reference = (): { greedyText: string; greedyIds: number[]; devHeldout: { perplexity: number; tokens: number } } =>
    JSON.parse(readFileSync(join(MODEL, 'reference.json'), 'utf8'));

  it('eval prints one JSON object with perplexity, the protocol, and kl/top1 against a reference', async () => {
    const text = join(tmp, 'short.txt');
    writeFileSync(text, readFileSync(join(SHARED, 'data', 'dev-heldout.txt'), 'utf8').slice(0, 3000));
    const result = JSON.parse(await run(['eval', '--model', MODEL, '--text', text, '--ctx', '64', '--reference', MODEL, '--against', MODEL, '--json'])) as Record<string, unknown>;
    // Against itself: the same perplexity, ratio exactly 1 and a zero-width interval.
    const against = result.against as { perplexity: number; perplexityRatio: number; interval: number[]; kl: number };
    expect(against.perplexity).toBe(result.perplexity);
    expect(against.perplexityRatio).toBe(1);
    expect(against.interval).toEqual([1, 1]);
    expect(against.kl).toBe(0);
    expect(result.ctx).toBe(64);
    expect(result.tokens).toBeGreaterThan(100);
    expect(result.perplexity).toBeGreaterThan(1);
    expect(result.kl).toBe(0);
    expect(result.top1Agreement).toBe(1);
    expect(String(result.protocol)).toContain('[BOS] + chunk');
  });

  it('eval without --json prints a summary line before the JSON, with the numbers of the JSON', async () => {
    const text = join(tmp, 'short2.txt');
    writeFileSync(text, readFileSync(join(SHARED, 'data', 'dev-heldout.txt'), 'utf8').slice(0, 2000));
    const out = await run(['eval', '--model', MODEL, '--text', text, '--ctx', '64', '--reference', MODEL]);
    const newline = out.indexOf('\n');
    const summary = out.slice(0, newline);
    const result = JSON.parse(out.slice(newline + 1)) as { perplexity: number; tokens: number; windows: number };
    expect(summary).toBe(`perplexity ${Number(result.perplexity.toPrecision(4))} on ${result.tokens} tokens (${result.windows} windows of 64); vs reference: KL 0, top-1 agreement 100.0%`);
  });

  it('generate continues the prompt greedily like the reference', async () => {
    const ref = reference();
    const json = JSON.parse(await run(['generate', '--model', MODEL, '--prompt', 'Once upon a time', '--tokens', '40', '--json'])) as { ids: number[]; continuation: string };
    expect(json.ids).toEqual(ref.greedyIds);
    expect(json.continuation).toBe(ref.greedyText);
    expect(await run(['generate', '--model', MODEL, '--prompt', 'Once upon a time', '--tokens', '3'])).toMatch(/^Once upon a time, a little/);
  });

  it('names a missing or malformed file', async () => {
    await expect(run(['eval', '--model', MODEL, '--text', join(tmp, 'nope.txt')])).rejects.toThrow(/nope\.txt: file not found/);
    const broken = join(tmp, 'broken-model');
    mkdirSync(broken, { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(MODEL, f), join(broken, f));
    writeFileSync(join(broken, 'model.safetensors'), readFileSync(join(MODEL, 'model.safetensors')).subarray(0, 1000));
    await expect(run(['generate', '--model', broken, '--prompt', 'Hi'])).rejects.toThrow(/model\.safetensors: truncated/);
    writeFileSync(join(broken, 'config.json'), '{ "model_type": ');
    await expect(run(['generate', '--model', broken, '--prompt', 'Hi'])).rejects.toThrow(/config\.json: not valid JSON/);
  });
});

describe('bitsmith eval / generate options', () => {
  it('rejects a bad --ctx and a missing model folder with clear messages', async () => {
    await expect(run(['eval', '--model', tmp, '--text', 'x.txt', '--ctx', 'abc'])).rejects.toThrow(/--ctx: must be an integer >= 2, got "abc"/);
    await expect(run(['generate', '--model', join(tmp, 'missing'), '--prompt', 'x'])).rejects.toThrow(/missing: model folder not found/);
  });
});
