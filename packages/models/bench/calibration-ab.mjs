// Interleaved A/B of the calibration pass on llama-docs-29m (the forward-llama-docs bench's reference pass: embedding
// and every block with an observer, reference attention and SiLU; with --hessians 1 the runner's StatisticsCollector
// and finite-input checks as well), side A on the `ort` backend of one checkout's built @bitsmith/linalg, side B on
// another's (or the same one with other backend options), everything else from B's checkout. One process, rounds
// alternating A B / B A with a full collection before each side; prints each round's times and major collections,
// the per-round ratios B/A and their median, and first checks that both sides give the same bits (block outputs, and
// every Hessian with --hessians 1).
// Usage: node packages/models/bench/calibration-ab.mjs --a <checkout with packages/linalg/dist> [--b <checkout>]
//        [--hessians 1] [--rounds 6] [--optsA '{"referenceThreads":1}'] [--optsB '{...}']   (after building both)
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { blockWithHessians } from './hessian-pass.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((p, a, i, all) => (a.startsWith('--') ? [...p, [a.slice(2), all[i + 1]]] : p), []));
const here = dirname(fileURLToPath(import.meta.url));
const rootB = resolve(args.b ?? join(here, '../../..'));
const rootA = resolve(args.a ?? rootB);
const dist = (root, pkg) => {
  const dir = join(root, 'packages', pkg, 'dist');
  return pathToFileURL(join(dir, existsSync(join(dir, 'node.js')) ? 'node.js' : 'index.js')).href;
};
const tunables = await import(pathToFileURL(join(rootB, 'packages/cli/dist/malloc-tunables.js')).href).catch(() => undefined);
if (tunables && !(await tunables.relaunchWithMallocTunables())) await tunables.watchParent();
v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc');
const linalgA = await import(dist(rootA, 'linalg'));
const linalgB = rootA === rootB ? linalgA : await import(dist(rootB, 'linalg'));
const { StatisticsCollector } = await import(dist(rootB, 'core'));
const recipe = await import(dist(rootB, 'recipe'));
const { evaluationWindows, loadLlamaModel } = await import(dist(rootB, 'models'));
const shared = resolve(rootB, '..', 'shared');
const dir = join(shared, 'models', 'llama-docs-29m');
const textPath = join(shared, 'data', 'dev-heldout.txt');
if (!existsSync(join(dir, 'model.safetensors')) || !existsSync(textPath)) throw new Error(`${dir} or ${textPath} is missing`);
const hessians = args.hessians === '1';
const rounds = Number(args.rounds ?? 6);
const sides = [];
for (const [name, linalg, options] of [['A', linalgA, JSON.parse(args.optsA ?? '{}')], ['B', linalgB, JSON.parse(args.optsB ?? '{}')]]) {
  const backend = await linalg.createBackend('ort', options);
  const { graph, tokenizer } = await loadLlamaModel(dir, { backend });
  sides.push({ name, backend, graph, tokenizer, times: [] });
}
const ids = sides[0].tokenizer.encode(readFileSync(textPath, 'utf8'));
const windows = evaluationWindows(ids, 512, sides[0].graph.config.bosTokenId ?? 1).filter((w) => w.length === 512).slice(0, 8);
const major = { count: 0, ms: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
    major.count++;
    major.ms += e.duration;
  }
}).observe({ entryTypes: ['gc'] });

async function pass({ graph, backend }) {
  let h = graph.embed(windows);
  const statistics = [];
  for (const block of graph.blocks) {
    if (!hessians) {
      h = await graph.runBlock(block.index, h, { observer: () => undefined, reference: true });
      continue;
    }
    const result = await blockWithHessians({ graph, block, h, backend, StatisticsCollector, recipe });
    h = result.output;
    for (const name of result.names) statistics.push(result.collector.statistics(name).hessian);
  }
  return { output: h.states.data, statistics };
}

const bytes = (x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
const [a, b] = [await pass(sides[0]), await pass(sides[1])];
const sameOutput = bytes(a.output).equals(bytes(b.output));
const sameStatistics = a.statistics.length === b.statistics.length && a.statistics.every((x, i) => bytes(x).equals(bytes(b.statistics[i])));
console.log(`A: ${rootA} ${args.optsA ?? ''}; B: ${rootB} ${args.optsB ?? ''}; ${hessians ? 'with Hessians' : 'forward only'}`);
console.log(`same bits: block outputs ${sameOutput}${hessians ? `, ${a.statistics.length} Hessians ${sameStatistics}` : ''}`);
for (let r = 0; r < rounds; r++) {
  const line = [];
  for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
    collectGarbage();
    await new Promise((done) => setTimeout(done, 30));
    major.count = 0;
    major.ms = 0;
    const t = performance.now();
    await pass(side);
    const seconds = (performance.now() - t) / 1000;
    await new Promise((done) => setTimeout(done, 10));
    side.times.push(seconds);
    line.push(`${side.name} ${seconds.toFixed(2)} s (${major.count} major GC, ${major.ms.toFixed(0)} ms)`);
  }
  console.log(`round ${r + 1}: ${line.join(', ')}; B/A ${(sides[1].times[r] / sides[0].times[r]).toFixed(3)}`);
}
const ratios = sides[0].times.map((t, i) => sides[1].times[i] / t).sort((x, y) => x - y);
console.log(
  `B/A per round, sorted: ${ratios.map((x) => x.toFixed(3)).join(' ')}; median ${ratios[Math.floor(ratios.length / 2)].toFixed(3)}; ` +
    `best B / best A ${(Math.min(...sides[1].times) / Math.min(...sides[0].times)).toFixed(3)}`,
);
for (const side of sides) await side.backend.dispose();
