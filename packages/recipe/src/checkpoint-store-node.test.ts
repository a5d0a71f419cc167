import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { directoryCheckpointStore } from './checkpoint-store-node.js';
import { memoryCheckpointStore } from './run-checkpoint.js';

const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('directoryCheckpointStore', () => {
  it('writes entries that read back equal, replacing earlier ones; clear removes the folder', async () => {
    const dir = join(tmp, 'a', '.out.checkpoint');
    const store = directoryCheckpointStore(dir);
    expect(await store.read('head')).toBeUndefined();
    const big = new Float32Array(300_001).map((_, i) => Math.sin(i));
    const bytes = await store.write('block-0', { weight: { shape: [3, 100_000], data: big }, codes: Uint8Array.of(1, 2, 3), note: 'x' });
    expect(bytes).toBe(statSync(join(dir, 'block-0.ckpt')).size);
    await store.write('head', { nextBlock: 1 });
    await store.write('head', { nextBlock: 2, odd: Int16Array.of(-3) });
    const block = (await store.read('block-0')) as { weight: { data: Float32Array }; codes: Uint8Array; note: string };
    expect(block.weight.data).toEqual(big);
    expect(block.codes).toEqual(Uint8Array.of(1, 2, 3));
    expect(await store.read('head')).toEqual({ nextBlock: 2, odd: Int16Array.of(-3) });
    expect(readdirSync(dir).sort()).toEqual(['block-0.ckpt', 'head.ckpt']);
    await store.clear();
    expect(() => readdirSync(dir)).toThrow();
    expect(await store.read('head')).toBeUndefined();
  });

  it('ignores the temporary file of an interrupted write and reports a truncated or foreign file', async () => {
    const dir = join(tmp, 'b');
    const store = directoryCheckpointStore(dir);
    await store.write('head', { nextBlock: 1, data: new Float64Array(64) });
    // A write killed before its rename leaves only a temporary file: the entry keeps its earlier value.
    writeFileSync(join(dir, 'head.ckpt.tmp-deadbeef'), 'half a file');
    expect(await store.read('head')).toEqual({ nextBlock: 1, data: new Float64Array(64) });
    truncateSync(join(dir, 'head.ckpt'), statSync(join(dir, 'head.ckpt')).size - 8);
    await expect(store.read('head')).rejects.toThrow(/truncated/);
    writeFileSync(join(dir, 'head.ckpt'), 'not a checkpoint at all');
    await expect(store.read('head')).rejects.toThrow(/not a bitsmith checkpoint/);
    await store.clear();
    expect(() => readdirSync(dir)).toThrow();
  });
});

describe('memoryCheckpointStore', () => {
  it('gives copies, so later changes to the written value do not reach the checkpoint', async () => {
    const store = memoryCheckpointStore();
    const data = Float32Array.of(1, 2);
    await store.write('head', { data });
    data[0] = 99;
    expect(await store.read('head')).toEqual({ data: Float32Array.of(1, 2) });
  });
});
