// A real kill: `bitsmith quantize --overwrite` is started as a child process over an earlier output and killed with
// SIGKILL once its staging folder exists. The earlier output must survive byte for byte and nothing may look complete;
// `--resume` then continues from the checkpoint of the finished block to the same model file as an uninterrupted run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeCommand } from './commands/quantize.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(HERE, '../../../../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const BIN = resolve(HERE, '../bin/bitsmith.js');
const BUILT = existsSync(resolve(HERE, '../dist/bitsmith.js'));
const SKIP = (!existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true') || (!BUILT && process.env.CI !== 'true');
if (SKIP) console.warn(`[bitsmith] skipping the killed-run test: needs ${MODEL} and a built CLI (npm run build; in CI it runs)`);

const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-kill-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(SKIP)('a quantize run killed with SIGKILL', () => {
  it('mid-run leaves the earlier output byte for byte, a hidden .partial folder and the checkpoint beside it; --resume finishes it', async () => {
    const out = join(tmp, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'model.safetensors'), 'earlier weights');
    writeFileSync(join(out, 'config.json'), '{"earlier": true}');
    const recipe = join(tmp, 'gptq.yaml');
    // GPTQ on 16 sequences keeps the second block busy long enough to kill the run after the first.
    writeFileSync(recipe, 'steps:\n  - gptq: { bits: 4, groupSize: 32 }\n');
    const child = spawn(process.execPath, [BIN, 'quantize', '--model', MODEL, '--recipe', recipe, '--calibration', join(SHARED, 'data', 'calib.txt'), '--out', out, '--overwrite', '--samples', '16', '--seq-len', '64'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: the launcher runs the command in a child process (malloc-tunables.ts), and the kill
      // below takes both at once, as the system's kill of a run's process group does.
      detached: true,
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('exit', (code, signal) => done({ code, signal })));
    // Kill in the middle of quantizing: the staging folder exists and the first of the two blocks is done.
    const staged = () => readdirSync(tmp).some((f) => f.startsWith('.out.partial-'));
    const midRun = () => staged() && stderr.includes('block 1/2 done');
    for (let i = 0; i < 12000 && !midRun() && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 20));
    expect(midRun(), `not killed mid-run (exit ${child.exitCode}); stderr: ${stderr}`).toBe(true);
    process.kill(-child.pid!, 'SIGKILL');
    const { signal } = await exited;
    expect(signal).toBe('SIGKILL');
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(readFileSync(join(out, 'model.safetensors'), 'utf8')).toBe('earlier weights');
    expect(readFileSync(join(out, 'config.json'), 'utf8')).toBe('{"earlier": true}');
    // Beside it: the inputs, the earlier output, one hidden .partial folder and the checkpoint of the finished block,
    // nothing that looks like a model folder.
    expect(readdirSync(tmp).filter((f) => f !== 'out' && f !== 'gptq.yaml').map((f) => f.replace(/partial-.*/, 'partial-*')).sort()).toEqual(['.out.checkpoint', '.out.partial-*']);
    expect(readdirSync(join(tmp, '.out.checkpoint')).sort()).toEqual(['block-0.ckpt', 'head.ckpt']);

    // --resume continues the killed run from block 2 and writes the same model file as an uninterrupted run.
    const quiet = { stdout: () => undefined, stderr: () => undefined };
    const options = { model: MODEL, recipe, calibration: join(SHARED, 'data', 'calib.txt'), samples: '16', seqLen: '64' };
    const resumed = await quantizeCommand({ ...options, out, overwrite: true, resume: true }, undefined, quiet);
    expect(resumed.resumedBlocks).toBe(1);
    await quantizeCommand({ ...options, out: join(tmp, 'whole'), checkpoint: false }, undefined, quiet);
    expect(Buffer.compare(readFileSync(join(out, 'model.safetensors')), readFileSync(join(tmp, 'whole', 'model.safetensors')))).toBe(0);
    expect(existsSync(join(tmp, '.out.checkpoint'))).toBe(false);
    expect(existsSync(join(tmp, '.whole.checkpoint'))).toBe(false);
  }, 300_000);
});
