// Weights held in their stored dtype (loadLlamaGraph's keepStoredDtype, what `bitsmith quantize` uses) must export
// exactly what float32-loaded weights export: a bf16 checkpoint quantized with RTN and written as fake-quant
// safetensors and compressed-tensors gives byte-identical files either way (the fixture's 16-row layers are too small
// for GPTQ packing; llama-docs-29m was checked for GPTQ, GGUF and ONNX too: docs/models.md, "Bounded memory").
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rtn, type StoredForm } from '@bitsmith/core';
import { exportableGrids, saveCompressedTensors } from '@bitsmith/formats';
import { createJsBackend } from '@bitsmith/linalg';
import { isWeightResident, llamaQuantizableModel, loadLlamaGraph, writeSafetensors } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { afterAll, describe, expect, it } from 'vitest';

const FIXTURE = resolve(dirname(fileURLToPath(import.meta.url)), '../../models/test-fixtures/architectures/llama3');
const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-lazy-export-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const files = (d: string) => readdirSync(d, { recursive: true }).map(String).filter((f) => statSync(join(d, f)).isFile()).sort();

describe('exports of a model held in its stored dtype', () => {
  it('are byte-identical to those of the float32-loaded model, and finished blocks are released', async () => {
    const backend = createJsBackend();
    const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
    const sequences = [Array.from({ length: 24 }, (_, i) => (i * 7) % 60 + 1), Array.from({ length: 17 }, (_, i) => (i * 11) % 60 + 2)];
    for (const keepStoredDtype of [false, true]) {
      const graph = await loadLlamaGraph(FIXTURE, { backend, keepStoredDtype });
      const stored = new Map<string, StoredForm>();
      await runRecipe(llamaQuantizableModel(graph), [rtn({ format: 'int4', granularity: { type: 'group', size: 16 } })], sequences, { backend, onStored: (n, f) => void stored.set(n, f) });
      const layers = graph.blocks.flatMap((b) => b.linears);
      expect(layers.some((l) => isWeightResident(l))).toBe(!keepStoredDtype);
      const out = join(tmp, String(keepStoredDtype));
      mkdirSync(join(out, 'fake'), { recursive: true });
      await writeSafetensors(join(out, 'fake', 'model.safetensors'), graph.tensors());
      await saveCompressedTensors(join(out, 'ct'), { tensors: graph.tensors(), quantized: exportableGrids('compressed-tensors', stored), config: structuredClone(config) });
      expect(layers.some((l) => isWeightResident(l)), 'writing did not bring the weights back').toBe(!keepStoredDtype);
    }
    const eager = join(tmp, 'false');
    const lazy = join(tmp, 'true');
    expect(files(lazy)).toEqual(files(eager));
    for (const f of files(eager)) expect(Buffer.compare(readFileSync(join(lazy, f)), readFileSync(join(eager, f))), f).toBe(0);
  });
});
