import { describe, expect, it } from 'vitest';
import { calibrationBlocks } from './calibration-driver.js';
import type { HiddenStatesHandle } from './model-view.js';

/** A fake model of three blocks whose hidden states are strings recording the passes: 'e>0>1' = embedded, then blocks 0 and 1. */
function fakeModel() {
  const calls: string[] = [];
  const model = {
    blocks: [{ index: 0 }, { index: 1 }, { index: 2 }],
    embed: async (): Promise<HiddenStatesHandle> => {
      calls.push('embed');
      return 'e';
    },
    runBlock: async (index: number, hidden: HiddenStatesHandle): Promise<HiddenStatesHandle> => {
      calls.push(`run ${index}`);
      return `${String(hidden)}>${index}`;
    },
  };
  return { model, calls };
}

async function walk(model: ReturnType<typeof fakeModel>['model'], options: Parameters<typeof calibrationBlocks>[2], each?: (step: { block: { index: number }; input: HiddenStatesHandle; propagated(output: HiddenStatesHandle): void }) => void) {
  const inputs: string[] = [];
  const blocks = calibrationBlocks(model, [[1, 2]], options);
  let next = await blocks.next();
  while (!next.done) {
    inputs.push(`${next.value.block.index}:${String(next.value.input)}`);
    each?.(next.value);
    next = await blocks.next();
  }
  return { inputs, last: next.value };
}

describe('calibrationBlocks', () => {
  it("'updated' (default): embeds once, then runs each block once more to propagate", async () => {
    const { model, calls } = fakeModel();
    const { inputs, last } = await walk(model, {});
    expect(inputs).toEqual(['0:e', '1:e>0', '2:e>0>1']);
    expect(last).toBe('e>0>1>2');
    expect(calls).toEqual(['embed', 'run 0', 'run 1', 'run 2']);
  });

  it('propagated(output): the output the consumer computed is the next input, and the driver runs no pass', async () => {
    const { model, calls } = fakeModel();
    const { inputs, last } = await walk(model, {}, (step) => step.propagated(`${String(step.input)}|${step.block.index}`));
    expect(inputs).toEqual(['0:e', '1:e|0', '2:e|0|1']);
    expect(last).toBe('e|0|1|2');
    expect(calls).toEqual(['embed']);
  });

  it('start: no embedding, the earlier blocks skipped, the given input fed to the start block (a resumed run)', async () => {
    const { model, calls } = fakeModel();
    const { inputs } = await walk(model, { start: { block: 2, input: 'checkpoint' } });
    expect(inputs).toEqual(['2:checkpoint']);
    expect(calls).toEqual(['run 2']);
    expect((await walk(fakeModel().model, { start: { block: 3, input: 'done' } })).inputs).toEqual([]);
    await expect(walk(fakeModel().model, { start: { block: 4, input: 'x' } })).rejects.toThrow(/start\.block: got 4; expected an integer from 0 to 3/);
  });

  it('checks the signal before every block', async () => {
    const { model } = fakeModel();
    const controller = new AbortController();
    await expect(walk(model, { signal: controller.signal }, (step) => step.block.index === 1 && controller.abort())).rejects.toThrow(/abort/i);
  });
});
