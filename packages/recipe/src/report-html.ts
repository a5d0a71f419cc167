/**
 * Escapes text for HTML content and attribute values.
 *
 * @example
 * ```ts
 * escapeHtml('<b> & "x"'); // '&lt;b&gt; &amp; &quot;x&quot;'
 * ```
 */
export function escapeHtml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** One layer row of a run. */
export interface ReportLayerRow {
  readonly name: string;
  readonly block: number;
  readonly bitsPerWeight: number;
  readonly outputError: number;
  readonly steps: readonly string[];
  /** Bit-plan label, when an allocate step assigned one. */
  readonly assignment?: string;
}

/** One quantization run (a method) of a report. */
export interface ReportRun {
  readonly name: string;
  readonly layers: readonly ReportLayerRow[];
  /** Headline numbers, label → value. */
  readonly summary: ReadonlyArray<readonly [string, string]>;
}

/** Per-layer activation statistics. */
export interface ReportActivation {
  readonly layer: string;
  readonly stage: string;
  readonly channels: number;
  readonly maxAbs: number;
  readonly meanAbs: number;
  readonly outlierRatio: number;
  readonly channelAbsMax?: readonly number[];
}

/** What the renderer draws, normalised from either report kind. */
export interface ReportView {
  readonly title: string;
  readonly facts: ReadonlyArray<readonly [string, string]>;
  readonly runs: readonly ReportRun[];
  readonly activations: readonly ReportActivation[];
  readonly notes: readonly string[];
}

type Json = Record<string, unknown>;

function num(x: unknown, digits = 4): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function layerRows(report: Json | undefined, settings?: Json): ReportLayerRow[] {
  const layers = (report?.['layers'] as Json[] | undefined) ?? [];
  return layers.map((l) => {
    const assignment = (l['assignment'] as Json | undefined)?.['label'] ?? l['assignmentLabel'] ?? settings?.[String(l['name'])];
    return {
      name: String(l['name'] ?? '?'),
      block: Number(l['block'] ?? 0),
      bitsPerWeight: Number(l['bitsPerWeight'] ?? 16),
      outputError: Number(l['outputError'] ?? 0),
      steps: Array.isArray(l['steps']) ? (l['steps'] as unknown[]).map(String) : [],
      ...(assignment !== undefined ? { assignment: String(assignment) } : {}),
    };
  });
}

function activationRows(list: unknown): ReportActivation[] {
  if (!Array.isArray(list)) return [];
  return (list as Json[]).map((a) => ({
    layer: String(a['layer'] ?? '?'),
    stage: String(a['stage'] ?? ''),
    channels: Number(a['channels'] ?? 0),
    maxAbs: Number(a['maxAbs'] ?? 0),
    meanAbs: Number(a['meanAbs'] ?? 0),
    outlierRatio: Number(a['outlierRatio'] ?? 0),
    ...(Array.isArray(a['channelAbsMax']) ? { channelAbsMax: (a['channelAbsMax'] as unknown[]).map(Number) } : {}),
  }));
}

/**
 * Normalises a report file into a {@link ReportView}: the main job's `report.json` (`kind: 'bitsmith-main-job'`) or
 * the `quantization.json` that `bitsmith quantize` writes (`{ recipe, model, protocol, report }`; its runner report
 * may carry `activations`, per-layer input statistics).
 *
 * @example
 * ```ts
 * const view = reportView(JSON.parse(await (await fetch('out/quantization.json')).text()));
 * view.runs[0].layers.length;
 * ```
 */
export function reportView(data: unknown): ReportView {
  const d = (data ?? {}) as Json;
  if (d['kind'] === 'bitsmith-main-job') {
    const model = d['model'] as Json;
    const protocol = d['protocol'] as Json;
    const rotation = d['rotation'] as Json;
    const setting = d['setting'] as Json;
    const methods = (d['methods'] as Json[]) ?? [];
    return {
      title: `bitsmith main job: ${String(model?.['name'] ?? 'model')}`,
      facts: [
        ['model', `${String(model?.['name'])}: ${Number(model?.['weights']).toLocaleString('en-US')} weights, ${String(model?.['linears'])} linear kernels`],
        ['setting', `${String(setting?.['format'])} ${String(setting?.['granularity'])}`],
        ['calibration', `${String((protocol?.['calibration'] as Json)?.['sentences'])} sentences, ${String((protocol?.['calibration'] as Json)?.['tokens'])} tokens`],
        ['held out', `${String((protocol?.['evaluation'] as Json)?.['sentences'])} sentences, ${String((protocol?.['evaluation'] as Json)?.['tokens'])} tokens`],
        ['sentences', String(protocol?.['sentences'] ?? '')],
        ['rotation', `${rotation?.['applied'] ? 'applied' : 'not applied'}: ${String(rotation?.['reason'] ?? '')}`],
        ['total time', `${num(d['seconds'], 1)} s`],
      ],
      runs: methods.map((m) => {
        const f = m['fidelity'] as Json;
        const bytes = m['bytes'] as Json;
        return {
          name: String(m['name']),
          layers: layerRows(m['report'] as Json),
          summary: [
            ['bits/weight', num(m['bitsPerWeight'], 3)],
            ['model bytes', `${Number(bytes?.['float32']).toLocaleString('en-US')} → ${Number(bytes?.['packed']).toLocaleString('en-US')}`],
            ['cosine mean', num(f?.['meanCosine'], 5)],
            ['cosine worst', num(f?.['worstCosine'], 5)],
            ['Spearman', num(f?.['rankingSpearman'], 5)],
            ['time', `${num(m['seconds'], 1)} s`],
          ],
        };
      }),
      activations: activationRows(d['activations']),
      notes: [],
    };
  }
  const report = d['report'] as Json | undefined;
  const recipe = d['recipe'] as Json | string | undefined;
  const recipeName = typeof recipe === 'string' ? recipe : String(recipe?.['name'] ?? report?.['recipe'] ?? 'recipe');
  const calibration = ((d['protocol'] as Json | undefined)?.['calibration'] as Json | undefined)?.['description'];
  const evaluation = d['evaluation'] as Json | undefined;
  const summary: [string, string][] = [['bits/weight', num(report?.['averageBitsPerWeight'], 3)]];
  const facts: [string, string][] = [
    ['model', String(d['model'] ?? '-')],
    ['recipe', recipeName],
    ['saved as', String(d['save'] ?? '-')],
    ['calibration', String(calibration ?? '-')],
    ['average bits/weight', num(report?.['averageBitsPerWeight'], 3)],
    ['time', `${num(report?.['seconds'], 1)} s`],
  ];
  if (evaluation) {
    summary.push(
      ['perplexity', `${num(evaluation['referencePerplexity'], 2)} → ${num(evaluation['perplexity'], 2)}`],
      ['KL to float', num(evaluation['kl'], 4)],
      ['top-1 agreement', typeof evaluation['top1Agreement'] === 'number' ? `${(100 * (evaluation['top1Agreement'] as number)).toFixed(1)}%` : '-'],
    );
    facts.push(['evaluation', `${String(evaluation['text'])}: ${String(evaluation['tokens'])} tokens in ${String(evaluation['windows'])} windows of ${String(evaluation['ctx'])}; perplexity of the float model ${num(evaluation['referencePerplexity'], 2)}`]);
  }
  summary.push(['time', `${num(report?.['seconds'], 1)} s`]);
  return {
    title: `bitsmith quantization report: ${recipeName}`,
    facts,
    runs: [{ name: recipeName, layers: layerRows(report, d['settings'] as Json | undefined), summary }],
    activations: activationRows(report?.['activations'] ?? d['activations']),
    notes: [],
  };
}

/**
 * One view of several runs (`bitsmith report A B C`): each input's runs, renamed after `names` (the folders) when a
 * report holds a single run; facts list what each run is; activation statistics come from the first report that has
 * them (each run's own inputs differ after its first quantized block).
 *
 * @example
 * ```ts
 * const html = renderReportHtml(compareReportViews([reportView(a), reportView(b)], ['out/rtn', 'out/gptq']));
 * ```
 */
export function compareReportViews(views: readonly ReportView[], names: readonly string[]): ReportView {
  const runs = views.flatMap((v, i) => (v.runs.length === 1 ? [{ ...v.runs[0]!, name: names[i] ?? v.runs[0]!.name }] : v.runs.map((r) => ({ ...r, name: `${names[i] ?? v.title}: ${r.name}` }))));
  const withActivations = views.findIndex((v) => v.activations.length > 0);
  return {
    title: `bitsmith comparison: ${names.join(' vs ')}`,
    facts: views.map((v, i) => [names[i] ?? `run ${i + 1}`, v.facts.filter(([k]) => k === 'recipe' || k === 'model' || k === 'calibration' || k === 'evaluation').map(([k, x]) => `${k}: ${x}`).join('; ') || v.title] as const),
    runs,
    activations: withActivations < 0 ? [] : views[withActivations]!.activations.map((a) => ({ ...a, stage: `${names[withActivations] ?? ''} ${a.stage}`.trim() })),
    notes: views.flatMap((v) => v.notes),
  };
}

/**
 * The bit plan of each run from the settings its layers were quantized with (the run's assignment): one line when every
 * layer shares one setting, otherwise the count per setting and the layers that differ from the most common one. Runs
 * without recorded settings but with layers of different bits per weight list those bits.
 */
function bitPlanSection(runs: readonly ReportRun[]): string {
  const parts: string[] = [];
  for (const run of runs) {
    const quantized = run.layers.filter((l) => l.steps.length > 0);
    const labelled = quantized.filter((l) => l.assignment);
    const key = (l: ReportLayerRow) => (labelled.length > 0 ? (l.assignment ?? 'not recorded') : `${l.bitsPerWeight.toFixed(3)} bits/w`);
    const counts = new Map<string, { layers: number; bits: number }>();
    for (const l of quantized) {
      const c = counts.get(key(l)) ?? { layers: 0, bits: l.bitsPerWeight };
      c.layers++;
      counts.set(key(l), c);
    }
    const title = runs.length > 1 ? `<strong>${escapeHtml(run.name)}</strong>: ` : '';
    if (counts.size === 0) {
      parts.push(`<p class="muted">${title}no quantized layers.</p>`);
      continue;
    }
    if (counts.size === 1) {
      const [label, c] = [...counts][0]!;
      parts.push(`<p>${title}every quantized layer (${c.layers}) uses <code>${escapeHtml(label)}</code> (${c.bits.toFixed(3)} bits/weight).</p>`);
      continue;
    }
    const common = [...counts].sort((a, b) => b[1].layers - a[1].layers)[0]![0];
    parts.push(`<p>${title}${[...counts].map(([label, c]) => `<code>${escapeHtml(label)}</code> × ${c.layers}`).join(', ')}; the layers not at <code>${escapeHtml(common)}</code>:</p>`);
    parts.push(
      table(
        ['layer', 'setting', 'bits/w'],
        quantized.filter((l) => key(l) !== common).map((l) => [`<code>${escapeHtml(l.name)}</code>`, escapeHtml(key(l)), l.bitsPerWeight.toFixed(3)]),
        new Set([2]),
      ),
    );
  }
  return parts.join('\n');
}

const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed'];

function errorChart(runs: readonly ReportRun[]): string {
  const names = [...new Set(runs.flatMap((r) => r.layers.map((l) => l.name)))];
  if (names.length === 0) return '<p class="muted">No layers were quantized.</p>';
  const max = Math.max(1e-12, ...runs.flatMap((r) => r.layers.map((l) => l.outputError)));
  const label = 300;
  const width = 560;
  const barH = 12;
  const rowH = runs.length * (barH + 2) + 8;
  const height = names.length * rowH + 30;
  const parts: string[] = [];
  names.forEach((name, i) => {
    const y = 20 + i * rowH;
    parts.push(`<text x="${label - 8}" y="${y + rowH / 2}" text-anchor="end" dominant-baseline="middle" class="lbl">${escapeHtml(name)}</text>`);
    runs.forEach((run, k) => {
      const layer = run.layers.find((l) => l.name === name);
      if (!layer) return;
      const w = Math.max(1, (layer.outputError / max) * width);
      const by = y + k * (barH + 2);
      parts.push(`<rect x="${label}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[k % COLORS.length]}"><title>${escapeHtml(run.name)}: ${layer.outputError.toFixed(5)}</title></rect>`);
      parts.push(`<text x="${label + w + 4}" y="${by + barH / 2}" dominant-baseline="middle" class="val">${layer.outputError.toFixed(4)}</text>`);
    });
  });
  const legend = runs.map((r, k) => `<rect x="${label + k * 200}" y="2" width="10" height="10" fill="${COLORS[k % COLORS.length]}"/><text x="${label + k * 200 + 14}" y="11" class="lbl">${escapeHtml(r.name)}</text>`).join('');
  return `<svg role="img" aria-label="per-layer output error" width="${label + width + 80}" height="${height}" viewBox="0 0 ${label + width + 80} ${height}" xmlns="http://www.w3.org/2000/svg">${legend}${parts.join('')}</svg>`;
}

function sparkline(values: readonly number[], width = 260, height = 36): string {
  if (values.length === 0) return '';
  const buckets = Math.min(values.length, width / 2);
  const per = values.length / buckets;
  const pooled: number[] = [];
  for (let b = 0; b < buckets; b++) {
    let m = 0;
    const end = Math.max(Math.floor(b * per) + 1, Math.floor((b + 1) * per));
    for (let i = Math.floor(b * per); i < end; i++) m = Math.max(m, values[i] ?? 0);
    pooled.push(m);
  }
  const max = Math.max(1e-12, ...pooled);
  const step = width / buckets;
  // One filled step-shaped area: channel buckets left to right, height = max |x| of the bucket.
  let d = `M0 ${height}`;
  pooled.forEach((v, i) => {
    const y = (height - (v / max) * height).toFixed(1);
    d += ` L${(i * step).toFixed(1)} ${y} L${((i + 1) * step).toFixed(1)} ${y}`;
  });
  d += ` L${width} ${height} Z`;
  return `<svg class="spark" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg"><path d="${d}" fill="#64748b"/></svg>`;
}

function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>, numeric: ReadonlySet<number> = new Set()): string {
  const th = head.map((h, i) => `<th${numeric.has(i) ? ' class="num"' : ''}>${escapeHtml(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c, i) => `<td${numeric.has(i) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#0f172a;margin:24px auto;max-width:1120px;padding:0 16px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{padding:4px 10px;border-bottom:1px solid #e2e8f0;text-align:left;vertical-align:middle}
th{background:#f8fafc;font-weight:600}td:last-child{white-space:nowrap}.facts td:last-child,.card td:last-child{white-space:normal}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.facts td:first-child{color:#475569;white-space:nowrap}.muted{color:#64748b}.lbl{font-size:11px;fill:#334155}.val{font-size:10px;fill:#475569}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px;min-width:230px}
.card h3{margin:0 0 6px;font-size:14px}.card table{margin:0}.bar{display:inline-block;height:9px;background:#2563eb;border-radius:2px;vertical-align:middle}
svg.spark{display:block}code{background:#f1f5f9;padding:1px 4px;border-radius:3px}
`;

/**
 * Renders a quantization report as one self-contained HTML page (inline CSS and SVG, no scripts, no external
 * assets): headline numbers per run, per-layer output error (chart and table), bits per weight per layer, the bit
 * plan when an allocate step assigned one, and activation outlier statistics (per-channel max|x|) when captured.
 * Every name from the report is HTML-escaped.
 *
 * @param data - The main job's `report.json`, `quantization.json` from `bitsmith quantize`, or a {@link ReportView}.
 * @example
 * ```ts
 * await writeFile('out/report.html', renderReportHtml(JSON.parse(await readFile('out/report.json', 'utf8'))));
 * ```
 */
export function renderReportHtml(data: unknown): string {
  const view = (data as ReportView)?.runs && (data as ReportView)?.facts ? (data as ReportView) : reportView(data);
  const sections: string[] = [];
  sections.push(`<h1>${escapeHtml(view.title)}</h1>`);
  sections.push(`<table class="facts"><tbody>${view.facts.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join('')}</tbody></table>`);

  sections.push('<h2>Summary</h2><div class="cards">');
  for (const run of view.runs) {
    sections.push(`<div class="card"><h3>${escapeHtml(run.name)}</h3><table><tbody>${run.summary.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td class="num">${escapeHtml(v)}</td></tr>`).join('')}</tbody></table></div>`);
  }
  sections.push('</div>');
  if (view.runs.length > 1) {
    const keys = [...new Set(view.runs.flatMap((r) => r.summary.map(([k]) => k)))];
    sections.push('<h2>Comparison</h2>');
    sections.push(
      table(
        ['run', ...keys],
        view.runs.map((r) => [escapeHtml(r.name), ...keys.map((k) => escapeHtml(r.summary.find(([key]) => key === k)?.[1] ?? '-'))]),
        new Set(keys.map((_, i) => i + 1)),
      ),
    );
  }

  sections.push('<h2>Per-layer output error</h2><p class="muted">‖X Wᵀ − X Qᵀ‖ / ‖X Wᵀ‖ on the calibration inputs of each layer (lower is better).</p>');
  sections.push(errorChart(view.runs));

  sections.push('<h2>Bits per weight and error per layer</h2>');
  const names = [...new Set(view.runs.flatMap((r) => r.layers.map((l) => l.name)))];
  const head = ['layer', 'block', ...view.runs.flatMap((r) => [`${r.name} bits/w`, `${r.name} error`]), 'steps'];
  const numeric = new Set(view.runs.flatMap((_, k) => [2 + 2 * k, 3 + 2 * k]));
  const maxBits = Math.max(1, ...view.runs.flatMap((r) => r.layers.map((l) => l.bitsPerWeight)));
  const rows = names.map((name) => {
    const first = view.runs.map((r) => r.layers.find((l) => l.name === name)).find(Boolean)!;
    const cells = view.runs.flatMap((r) => {
      const l = r.layers.find((x) => x.name === name);
      if (!l) return ['-', '-'];
      return [`<span class="bar" style="width:${((l.bitsPerWeight / maxBits) * 40).toFixed(0)}px"></span> ${l.bitsPerWeight.toFixed(3)}`, l.outputError.toFixed(5)];
    });
    return [`<code>${escapeHtml(name)}</code>`, String(first.block), ...cells, escapeHtml([...new Set(view.runs.map((r) => r.layers.find((l) => l.name === name)?.steps.join('+') ?? '').filter(Boolean))].join(' / ') || '-')];
  });
  sections.push(table(head, rows, numeric));

  sections.push('<h2>Bit plan</h2>');
  sections.push(bitPlanSection(view.runs));

  sections.push('<h2>Activation outliers</h2>');
  if (view.activations.length > 0) {
    const stages = [...new Set(view.activations.map((a) => a.stage))];
    const oneStage = stages.length === 1;
    sections.push(
      `<p class="muted">Per input channel max|x| of each layer's calibration input${oneStage && stages[0] ? ` (${escapeHtml(stages[0])})` : ''}; ` +
        'the profile shows the channels in order, max-pooled. Outlier ratio = largest channel max / mean channel max: large ratios are what rotation and smoothing flatten.</p>',
    );
    const head = ['layer', ...(oneStage ? [] : ['stage']), 'channels', 'max |x|', 'mean |x|', 'outlier ratio', 'per-channel max |x|'];
    const offset = oneStage ? 0 : 1;
    sections.push(
      table(
        head,
        view.activations.map((a) => [
          `<code>${escapeHtml(a.layer)}</code>`,
          ...(oneStage ? [] : [escapeHtml(a.stage)]),
          String(a.channels),
          a.maxAbs.toPrecision(4),
          a.meanAbs.toPrecision(4),
          a.outlierRatio.toFixed(2),
          sparkline(a.channelAbsMax ?? []),
        ]),
        new Set([1 + offset, 2 + offset, 3 + offset, 4 + offset]),
      ),
    );
  } else {
    sections.push('<p class="muted">Not captured in this report.</p>');
  }
  for (const n of view.notes) sections.push(`<p class="muted">${escapeHtml(n)}</p>`);
  return `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${escapeHtml(view.title)}</title>\n<style>${CSS}</style>\n</head>\n<body>\n${sections.join('\n')}\n</body>\n</html>\n`;
}
