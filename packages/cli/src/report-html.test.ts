import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareReportViews, escapeHtml, renderReportHtml, reportView } from '@bitsmith/recipe';
import { countColor, findChromium, screenshot } from './screenshot.test-support.js';

const layer = (name: string, block: number, bits: number, error: number) => ({ name, block, bitsPerWeight: bits, outputError: error, steps: ['gptq'], seconds: 0.1 });

const mainJob = {
  kind: 'bitsmith-main-job',
  model: { name: 'USE <lite> & co', path: 'x', weights: 100, linears: 3, linearWeights: 80 },
  setting: { format: 'int4', granularity: 'g128' },
  protocol: { sentences: 'sotu', calibration: { sentences: 4, tokens: 40 }, evaluation: { sentences: 4, tokens: 41 } },
  rotation: { applied: false, reason: 'LayerNorm' },
  methods: [
    {
      name: 'GPTQ int4 g128',
      recipe: 'gptq',
      bitsPerWeight: 4.125,
      bytes: { float32: 400, packed: 100, kernelsFloat32: 320, kernelsPacked: 41 },
      fidelity: { texts: 4, meanCosine: 0.98, worstCosine: 0.93, worstIndex: 1, rankingSpearman: 0.985 },
      seconds: 3,
      report: { layers: [layer('Layer_0/FFN/conv1', 0, 4.125, 0.05), layer('Layer_1/<script>alert(1)</script>', 1, 4.125, 0.07), layer('head/a&b', 2, 4.125, 0.02)] },
    },
    {
      name: 'RTN int4 g128',
      recipe: 'rtn',
      bitsPerWeight: 4.125,
      bytes: { float32: 400, packed: 100, kernelsFloat32: 320, kernelsPacked: 41 },
      fidelity: { texts: 4, meanCosine: 0.95, worstCosine: 0.9, worstIndex: 2, rankingSpearman: 0.96 },
      seconds: 1,
      report: { layers: [layer('Layer_0/FFN/conv1', 0, 4.125, 0.09), layer('Layer_1/<script>alert(1)</script>', 1, 4.125, 0.1), layer('head/a&b', 2, 4.125, 0.04)] },
    },
  ],
  activations: [{ layer: 'Layer_0/FFN/conv1', stage: 'calibration', channels: 4, tokens: 40, maxAbs: 5, meanAbs: 0.5, outlierRatio: 2.5, channelAbsMax: [1, 5, 1, 1] }],
  seconds: 5,
};

/** Checks that elements open and close in a properly nested order (void elements aside). */
function wellFormed(html: string): boolean {
  const voids = new Set(['meta', 'br', 'hr', 'img', 'input', 'link']);
  const stack: string[] = [];
  const body = html.replace(/<!doctype html>/i, '').replace(/<style>[\s\S]*?<\/style>/, '');
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*?)(\/?)>/g)) {
    const [, close, rawName, , selfClose] = m;
    const name = rawName!.toLowerCase();
    if (voids.has(name) || selfClose) continue;
    if (close) {
      if (stack.pop() !== name) return false;
    } else stack.push(name);
  }
  return stack.length === 0;
}

describe('renderReportHtml', () => {
  it('renders a well-formed, self-contained page with every layer', () => {
    const html = renderReportHtml(mainJob);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(wellFormed(html)).toBe(true);
    expect(html).not.toMatch(/<script|<link|src=|href=/i);
    expect(html).toContain('Layer_0/FFN/conv1');
    expect(html).toContain('head/a&amp;b');
    expect(html).toContain('GPTQ int4 g128');
    expect(html).toContain('RTN int4 g128');
    expect(html).toContain('outlier ratio');
  });

  it('escapes names from the report', () => {
    const html = renderReportHtml(mainJob);
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('Layer_1/&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('USE &lt;lite&gt; &amp; co');
    expect(escapeHtml(`a"b'c`)).toBe('a&quot;b&#39;c');
  });

  it('reads quantization.json from bitsmith quantize, and says what is missing', () => {
    const html = renderReportHtml({
      recipe: { name: 'gptq-w4g32' },
      model: 'models/tiny',
      save: 'fake-quant',
      protocol: { calibration: { description: '8 sequences' } },
      report: { recipe: 'gptq', averageBitsPerWeight: 4.5, seconds: 2, layers: [layer('model.layers.0.mlp.down_proj', 0, 4.5, 0.03)], steps: [] },
    });
    expect(wellFormed(html)).toBe(true);
    expect(html).toContain('model.layers.0.mlp.down_proj');
    expect(html).toContain('every quantized layer (1) uses <code>4.500 bits/w</code>');
    expect(html).toContain('Not captured');
    expect(reportView({ report: { layers: [] } }).runs[0]!.layers).toEqual([]);
  });

  it('shows a bit plan when layers carry assignments', () => {
    const html = renderReportHtml({ report: { layers: [{ ...layer('a', 0, 3.5, 0.1), assignment: { label: 'int3-g32' } }] } });
    expect(html).toContain('int3-g32');
  });

  it("shows the bit plan from the run's settings: counts per setting and the layers off the common one", () => {
    const html = renderReportHtml({
      report: { layers: [layer('a', 0, 3.5, 0.1), layer('b', 0, 4.5, 0.05), layer('c', 1, 3.5, 0.1)] },
      settings: { a: 'int3 g32', b: 'int4 g32', c: 'int3 g32' },
    });
    expect(html).toContain('<code>int3 g32</code> × 2, <code>int4 g32</code> × 1');
    expect(html).toContain('<tr><td><code>b</code></td><td>int4 g32</td><td class="num">4.500</td></tr>');
    expect(html).not.toContain('<tr><td><code>a</code></td><td>int3 g32</td>');
  });

  it('puts the evaluation (perplexity float -> quantized, KL, top-1) in the summary', () => {
    const view = reportView({
      report: { averageBitsPerWeight: 4.5, seconds: 1, layers: [layer('a', 0, 4.5, 0.1)] },
      evaluation: { text: 'dev.txt', tokens: 5222, windows: 42, ctx: 128, perplexity: 44.49, referencePerplexity: 43.19, kl: 0.0503, top1Agreement: 0.912 },
    });
    expect(view.runs[0]!.summary).toEqual([
      ['bits/weight', '4.500'],
      ['perplexity', '43.19 → 44.49'],
      ['KL to float', '0.0503'],
      ['top-1 agreement', '91.2%'],
      ['time', '1.0 s'],
    ]);
  });
});

const chromium = findChromium();
if (!chromium) console.warn('[bitsmith] skipping the report screenshot test: no chromium on PATH (apt-get install chromium)');

describe('comparison report (bitsmith report A B)', () => {
  const quantization = (error: number, ppl: number) => ({
    recipe: { name: 'r' },
    report: { averageBitsPerWeight: 4.5, seconds: 1, layers: [layer('model.layers.0.mlp.down_proj', 0, 4.5, error), layer('model.layers.0.self_attn.q_proj', 0, 4.5, error / 2)] },
    evaluation: { text: 't', tokens: 100, windows: 1, ctx: 128, perplexity: ppl, referencePerplexity: 43.19, kl: 0.05, top1Agreement: 0.9 },
  });
  const view = compareReportViews([reportView(quantization(0.08, 46.05)), reportView(quantization(0.04, 44.49))], ['rtn-w4g32', 'gptq-w4g32']);
  const html = renderReportHtml(view);

  it('names each run after its folder and tabulates their headline numbers', () => {
    expect(view.runs.map((r) => r.name)).toEqual(['rtn-w4g32', 'gptq-w4g32']);
    expect(html).toContain('<h2>Comparison</h2>');
    expect(html).toContain('<td>rtn-w4g32</td><td class="num">4.500</td><td class="num">43.19 → 46.05</td>');
    expect(html).toContain('<td>gptq-w4g32</td><td class="num">4.500</td><td class="num">43.19 → 44.49</td>');
  });

  const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-report-shot-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  it.skipIf(!chromium)('renders in headless Chromium with both runs drawn in the error chart (screenshot)', () => {
    const file = join(tmp, 'compare.html');
    writeFileSync(file, html);
    const png = screenshot(chromium!, `file://${file}`, join(tmp, 'compare.png'));
    expect([png.width, png.height]).toEqual([1200, 1600]);
    // Each run's bars are drawn in its colour (first run blue #2563eb, second red #dc2626): the rtn bars are twice
    // as long as gptq's (errors 0.08 vs 0.04), so the blue area is larger than the red one.
    const blue = countColor(png, '#2563eb');
    const red = countColor(png, '#dc2626');
    expect(red).toBeGreaterThan(500);
    expect(blue).toBeGreaterThan(1.5 * red);
  });
});
