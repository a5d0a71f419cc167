import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputFolderError, stageOutputFolder, writeOutputFolder } from './output-folder.js';

const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-out-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const dir = join(tmp, `case-${n++}`);
  mkdirSync(dir);
  return dir;
};
const rejection = async (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

describe('stageOutputFolder', () => {
  it('writes into a hidden staging folder and moves it onto the target only at commit', async () => {
    const root = fresh();
    const out = join(root, 'out');
    const staged = await stageOutputFolder(out);
    writeFileSync(join(staged.path, 'config.json'), '{}');
    expect(readdirSync(root)).toEqual([staged.path.slice(root.length + 1)]);
    expect(staged.path).toMatch(/\/\.out\.partial-/);
    await staged.commit();
    expect(readdirSync(root)).toEqual(['out']);
    expect(readdirSync(out)).toEqual(['config.json']);
  });

  it('gives the finished folder the permissions of a folder made by mkdir (not the 0700 of a temporary folder)', async () => {
    const root = fresh();
    const reference = join(root, 'made-by-mkdir');
    mkdirSync(reference);
    const staged = await stageOutputFolder(join(root, 'out'));
    await staged.commit();
    expect((statSync(join(root, 'out')).mode & 0o777).toString(8)).toBe((statSync(reference).mode & 0o777).toString(8));
  });

  it('refuses the input itself, a folder inside the input, and a folder that contains the input', async () => {
    const root = fresh();
    const model = join(root, 'model');
    mkdirSync(model);
    writeFileSync(join(model, 'config.json'), '{}');
    for (const [out, pattern] of [
      [model, /is the input/],
      [`${model}/`, /is the input/],
      [join(model, 'q'), /lies inside the input/],
      [root, /contains the input/],
    ] as const) {
      const e = await rejection(stageOutputFolder(out, { inputs: [model], overwrite: true }));
      expect(OutputFolderError.isInstance(e), out).toBe(true);
      expect((e as Error).message).toMatch(pattern);
    }
    expect(readdirSync(model)).toEqual(['config.json']);
    expect(readdirSync(root)).toEqual(['model']);
  });

  it('refuses a non-empty folder unless overwrite, and then keeps the old content until commit', async () => {
    const root = fresh();
    const out = join(root, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'model.gguf'), 'stale');
    const e = await rejection(stageOutputFolder(out));
    expect(OutputFolderError.isInstance(e)).toBe(true);
    expect((e as Error).message).toBe(`--out ${out}: is not empty (1 entries, e.g. model.gguf); pass --overwrite to replace it, or choose a new folder`);
    const staged = await stageOutputFolder(out, { overwrite: true });
    writeFileSync(join(staged.path, 'model.safetensors'), 'new');
    expect(readdirSync(out)).toEqual(['model.gguf']);
    await staged.commit();
    // Replaced, not merged: the stale file is gone.
    expect(readdirSync(out)).toEqual(['model.safetensors']);
    expect(readdirSync(root)).toEqual(['out']);
  });

  it('accepts an existing empty folder, refuses a file and a path under a file (ENOTDIR)', async () => {
    const root = fresh();
    mkdirSync(join(root, 'empty'));
    const staged = await stageOutputFolder(join(root, 'empty'));
    await staged.commit();
    writeFileSync(join(root, 'file'), 'x');
    expect(((await rejection(stageOutputFolder(join(root, 'file')))) as Error).message).toMatch(/is a file; expected a folder/);
    const e = await rejection(stageOutputFolder(join(root, 'file', 'out')));
    expect(OutputFolderError.isInstance(e)).toBe(true);
    expect((e as Error).message).toMatch(/ENOTDIR/);
  });

  it('a run killed before commit (no commit, no discard) leaves the earlier output byte for byte and only a .partial folder', async () => {
    const root = fresh();
    const out = join(root, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'model.safetensors'), 'earlier weights');
    writeFileSync(join(out, 'config.json'), '{"a":1}');
    const staged = await stageOutputFolder(out, { overwrite: true });
    writeFileSync(join(staged.path, 'model.safetensors'), 'trunc'); // the process dies here
    expect(readFileSync(join(out, 'model.safetensors'), 'utf8')).toBe('earlier weights');
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(readdirSync(root).filter((f) => !f.startsWith('.out.partial-'))).toEqual(['out']);
  });
});

describe('writeOutputFolder', () => {
  it('turns a full disk (ENOSPC, from /dev/full) into an OutputFolderError, removes the staging folder and keeps the old output', async () => {
    const root = fresh();
    const out = join(root, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'model.safetensors'), 'earlier');
    const staged = await stageOutputFolder(out, { overwrite: true });
    const e = await rejection(
      writeOutputFolder(staged, async (dir) => {
        await writeFile(join(dir, 'config.json'), '{}');
        await writeFile('/dev/full', new Uint8Array(1 << 16)); // a real ENOSPC
      }),
    );
    expect(OutputFolderError.isInstance(e)).toBe(true);
    expect((e as Error).message).toMatch(/writing failed \(ENOSPC: .*\); nothing was written and any earlier content is unchanged/);
    expect(readdirSync(root)).toEqual(['out']);
    expect(readFileSync(join(out, 'model.safetensors'), 'utf8')).toBe('earlier');
  });

  it('passes bitsmith errors through unchanged and commits on success', async () => {
    const root = fresh();
    const out = join(root, 'out');
    const boom = new OutputFolderError('x', 'test');
    expect(await rejection(writeOutputFolder(await stageOutputFolder(out), async () => Promise.reject(boom)))).toBe(boom);
    expect(readdirSync(root)).toEqual([]);
    expect(await writeOutputFolder(await stageOutputFolder(out), async (dir) => writeFile(join(dir, 'a'), 'b').then(() => 7))).toBe(7);
    expect(readdirSync(out)).toEqual(['a']);
  });
});
