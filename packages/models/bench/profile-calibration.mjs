// Where the calibration pass's time goes on llama-docs-29m: the bench's reference pass (embedding and every block with
// an observer on every linear input, reference attention and SiLU), with timers around every backend call and the
// JavaScript between them, printed per kind of work; optionally with the runner's Hessians (--hessians).
// Usage: node packages/models/bench/profile-calibration.mjs [--rounds 3] [--hessians 1] [--root <dir with packages/>]
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = Object.fromEntries(process.argv.slice(2).reduce((p, a, i, all) => (a.startsWith('--') ? [...p, [a.slice(2), all[i + 1]]] : p), []));
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(args.root ?? join(here, '../../..'));
const load = (pkg) => import(pathToFileURL(join(root, 'packages', pkg, 'dist', existsSync(join(root, 'packages', pkg, 'dist', 'node.js')) ? 'node.js' : 'index.js')).href);
const tunables = await import(pathToFileURL(join(root, 'packages/cli/dist/malloc-tunables.js')).href).catch(() => undefined);
if (tunables && !(await tunables.relaunchWithMallocTunables())) await tunables.watchParent();
const { StatisticsCollector } = await load('core');
const { createBackend } = await load('linalg');
const { evaluationWindows, loadLlamaModel } = await load('models');
const recipe = await load('recipe').catch(() => undefined);
const rounds = Number(args.rounds ?? 3);
const withHessians = args.hessians === '1';
const shared = resolve(root, '..', 'shared');
const dir = join(shared, 'models', 'llama-docs-29m');
const text = readFileSync(join(shared, 'data', 'dev-heldout.txt'), 'utf8');
if (!existsSync(dir)) throw new Error(`${dir} missing`);

const backend = await createBackend('ort');
const timers = new Map();
const add = (name, ms) => timers.set(name, (timers.get(name) ?? 0) + ms);
for (const op of ['sgemm', 'attention', 'gatedActivation', 'gram']) {
  const f = backend[op].bind(backend);
  backend[op] = async (a) => {
    const t = performance.now();
    try {
      return await f(a);
    } finally {
      const label = op === 'sgemm' ? `sgemm ${a.m}x${a.n}x${a.k}` : op;
      add(label, performance.now() - t);
    }
  };
}
const { graph, tokenizer } = await loadLlamaModel(dir, { backend });
const c = graph.config;
const ids = tokenizer.encode(text);
const windows = evaluationWindows(ids, 512, c.bosTokenId ?? 1).filter((w) => w.length === 512).slice(0, 8);
const tokens = windows.length * 512;
let flops = 2 * graph.linearLayers().reduce((s, l) => s + l.inFeatures * l.outFeatures, 0) * tokens;
for (const w of windows) flops += c.numHiddenLayers * c.numAttentionHeads * 2 * 2 * ((w.length * (w.length + 1)) / 2) * c.headDim;
if (withHessians) flops += c.numHiddenLayers * 2 * tokens * (c.hiddenSize ** 2 + (c.numAttentionHeads * c.headDim) ** 2 + c.hiddenSize ** 2 + c.intermediateSize ** 2);

async function pass() {
  let h = graph.embed(windows);
  for (const block of graph.blocks) {
    let observe = () => undefined;
    let names;
    let collector;
    if (withHessians) {
      const prefix = `model.layers.${block.index}.`;
      names = new Set(graph.linearLayers().filter((l) => l.name.startsWith(prefix)).map((l) => l.name));
      const sharedInputs = [['q_proj', 'k_proj', 'v_proj'].map((p) => `${prefix}self_attn.${p}`), ['gate_proj', 'up_proj'].map((p) => `${prefix}mlp.${p}`)];
      collector = new StatisticsCollector([{ kind: 'hessian' }], names, backend, { sharedInputs });
      const inner = recipe.finiteInputs(block.index, collector.observe);
      observe = async (e) => {
        const t = performance.now();
        // the observer's own JavaScript (finite checks, fingerprints) plus its gram calls (also timed as gram)
        await inner(e.name, e.input);
        add('observer (incl. gram)', performance.now() - t);
      };
    }
    h = await graph.runBlock(block.index, h, { observer: observe, reference: true });
    if (collector) for (const name of names) collector.statistics(name);
  }
}
const g = 2048;
const ga = new Float32Array(g * g).fill(0.5);
const gc = new Float32Array(g * g);
await pass();
for (let r = 0; r < rounds; r++) {
  let t = performance.now();
  await backend.sgemm({ m: g, n: g, k: g, a: ga, b: ga, c: gc });
  const gemm = (2 * g ** 3) / (performance.now() - t) / 1e6;
  timers.clear();
  t = performance.now();
  await pass();
  const total = performance.now() - t;
  const rows = [...timers].sort((a, b) => b[1] - a[1]);
  let backendMs = 0;
  for (const [name, ms] of rows) if (name !== 'observer (incl. gram)') backendMs += ms;
  console.log(`round ${r + 1}: pass ${total.toFixed(0)} ms, ${(flops / total / 1e6).toFixed(1)} GFLOP/s, GEMM 2048^3 ${gemm.toFixed(1)} GFLOP/s, ratio ${(flops / total / 1e6 / gemm).toFixed(2)}`);
  for (const [name, ms] of rows) console.log(`  ${name.padEnd(28)} ${ms.toFixed(1).padStart(8)} ms`);
  console.log(`  ${'outside backend calls'.padEnd(28)} ${(total - backendMs - (timers.get('observer (incl. gram)') ?? 0) + (timers.get('gram') ?? 0)).toFixed(1).padStart(8)} ms`);
}
await backend.dispose();
