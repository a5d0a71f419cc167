// Backward pass of one decoder block against its forward: time and GFLOP/s on llama-docs-29m (falls back to
// tinystories-656k), one block, sequences of 512 tokens, on the default backend.
// Usage: node packages/models/bench/block-backward.mjs [sequences=2] [length=512]   (after building @bitsmith/models)
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultBackend } from '@bitsmith/linalg';
import { BlockWorkspace, llamaBlockBackward, llamaBlockForward, loadLlamaModel } from '@bitsmith/models';

const shared = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared');
const docs = join(shared, 'models', 'llama-docs-29m');
const dir = existsSync(docs) ? docs : join(shared, 'models', 'tinystories-656k');
const count = Number(process.argv[2] ?? 2);
const length = Number(process.argv[3] ?? 512);
const backend = await defaultBackend();
const { graph, tokenizer } = await loadLlamaModel(dir, { backend });
const ids = tokenizer.encode(readFileSync(join(shared, 'data', existsSync(docs) ? 'docs-calib.txt' : 'calib.txt'), 'utf8'));
const sequences = Array.from({ length: count }, (_, s) => [1, ...ids.slice(s * (length - 1), (s + 1) * (length - 1))]);
const hidden = graph.embed(sequences);
const block = graph.blocks[0];
const c = graph.config;
const tokens = hidden.states.shape[0];
const linearParams = block.linears.reduce((a, l) => a + l.inFeatures * l.outFeatures, 0);
const pairs = hidden.lengths.reduce((a, n) => a + (n * (n + 1)) / 2, 0);
const attentionForward = 4 * pairs * c.headDim * c.numAttentionHeads; // q.k and p.v
const forwardFlops = 2 * tokens * linearParams + attentionForward;
// Backward: dX and dW per linear (2x the forward), attention recomputes scores and forms dP, dV, dQ, dK (5 products).
const backwardFlops = 4 * tokens * linearParams + (10 / 4) * attentionForward;
const time = async (fn, runs = 3) => {
  await fn();
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best / 1000;
};
const ones = new Float32Array(tokens * c.hiddenSize).fill(1e-3);
const workspace = new BlockWorkspace(); // as AutoRound's iterations run: scratch reused across passes
const forward = await time(() => llamaBlockForward(c, block, hidden, backend, { workspace }));
const both = await time(() => llamaBlockBackward(c, block, hidden, backend, () => ones, { workspace }));
const backward = both - forward;
const gf = (flops, s) => (flops / s / 1e9).toFixed(2);
console.log(`${dir.split('/').pop()}, block 0, ${count} x ${length} tokens, backend ${backend.name} (${backend.threads} threads)`);
console.log(`forward:  ${(forward * 1000).toFixed(0)} ms, ${gf(forwardFlops, forward)} GFLOP/s`);
console.log(`backward: ${(backward * 1000).toFixed(0)} ms (forward + backward ${(both * 1000).toFixed(0)} ms), ${gf(backwardFlops, backward)} GFLOP/s`);
console.log(`backward / forward GFLOP/s: ${(backwardFlops / backward / (forwardFlops / forward)).toFixed(2)} (target >= 0.5); backward time / forward time ${(backward / forward).toFixed(2)}`);
await backend.dispose();
