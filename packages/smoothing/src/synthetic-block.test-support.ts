import type { BlockView, LayerState, LinearView, Matrix, NormView, StepContext } from '@bitsmith/core';
import { createJsBackend, createRandom, type Random } from '@bitsmith/linalg';

/** Test support (not exported): a small Llama-shaped block with writable views, and its float forward pass. */
export const backend = createJsBackend();

function gaussian(rng: Random): number {
  return rng.normal();
}

export function randomMatrix(rng: Random, rows: number, columns: number, std = 1): Matrix {
  const data = new Float32Array(rows * columns);
  for (let i = 0; i < data.length; i++) data[i] = gaussian(rng) * std;
  return { dtype: 'float32', shape: [rows, columns], data };
}

export interface SyntheticBlock {
  block: BlockView;
  linear(kind: string): LinearView;
  norms: NormView[];
}

/** hidden 64, intermediate 128: norm → q/k/v; o_proj ('none'); norm → gate/up; up → down. */
export function syntheticBlock(seed = 1, hidden = 64, intermediate = 128): SyntheticBlock {
  const rng = createRandom(seed);
  const lin = (kind: string, out: number, inp: number): LinearView => ({
    name: `model.layers.0.${kind.startsWith('q') || kind.startsWith('k') || kind.startsWith('v') || kind.startsWith('o') ? 'self_attn' : 'mlp'}.${kind}`,
    kind,
    weight: randomMatrix(rng, out, inp, 1 / Math.sqrt(inp)),
    bias: undefined,
    inputTransform: undefined,
  });
  const normWeight = (): Float32Array => {
    const w = new Float32Array(hidden);
    for (let j = 0; j < hidden; j++) w[j] = 0.5 + Math.abs(gaussian(rng)) * 0.5;
    return w;
  };
  const q = lin('q_proj', hidden, hidden);
  const k = lin('k_proj', hidden / 2, hidden);
  const v = lin('v_proj', hidden / 2, hidden);
  const o = lin('o_proj', hidden, hidden);
  const gate = lin('gate_proj', intermediate, hidden);
  const up = lin('up_proj', intermediate, hidden);
  const down = lin('down_proj', hidden, intermediate);
  const n1: NormView = { name: 'model.layers.0.input_layernorm', type: 'rms', weight: normWeight() };
  const n2: NormView = { name: 'model.layers.0.post_attention_layernorm', type: 'rms', weight: normWeight() };
  const block: BlockView = {
    index: 0,
    name: 'model.layers.0',
    linears: [q, k, v, o, gate, up, down],
    norms: [n1, n2],
    inputGroups: [
      { linears: [q, k, v], producer: { kind: 'norm', norm: n1 } },
      { linears: [o], producer: { kind: 'none' } },
      { linears: [gate, up], producer: { kind: 'norm', norm: n2 } },
      { linears: [down], producer: { kind: 'linear', linear: up } },
    ],
  };
  const byKind = new Map(block.linears.map((l) => [l.kind, l]));
  return { block, linear: (kind) => byKind.get(kind)!, norms: [n1, n2] };
}

/** Hidden states `[tokens, hidden]` with a few outlier channels (`outlierScale` times larger), as in AWQ's setting. */
export function outlierInputs(seed: number, tokens: number, hidden: number, outliers: readonly number[] = [3, 17, 40], outlierScale = 30): Matrix {
  const rng = createRandom(seed);
  const m = randomMatrix(rng, tokens, hidden);
  for (let t = 0; t < tokens; t++) for (const j of outliers) m.data[t * hidden + j]! *= outlierScale * (1 + (j % 3));
  return m;
}

function rmsNorm(x: Matrix, g: Float32Array): Matrix {
  const [rows, cols] = x.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x.data[r * cols + j]! ** 2;
    const inv = 1 / Math.sqrt(s / cols + 1e-6);
    for (let j = 0; j < cols; j++) out[r * cols + j] = x.data[r * cols + j]! * inv * g[j]!;
  }
  return { dtype: 'float32', shape: [rows, cols], data: out };
}

/** `x W^T + b` in float64 accumulation (a test oracle independent of the backends). */
export function linearForward(x: Matrix, weight: Matrix, bias?: Float32Array): Matrix {
  const [rows, k] = x.shape;
  const [n] = weight.shape;
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < n; i++) {
      let s = bias ? bias[i]! : 0;
      for (let j = 0; j < k; j++) s += x.data[r * k + j]! * weight.data[i * k + j]!;
      out[r * n + i] = s;
    }
  }
  return { dtype: 'float32', shape: [rows, n], data: out };
}

export interface PathResult {
  /** Each linear's input. */
  inputs: Map<string, Matrix>;
  /** Each linear's output. */
  outputs: Map<string, Matrix>;
}

/**
 * The block's group paths on `x` (hidden states) and `attended` (the o_proj input): q/k/v = rms(x) g1,
 * o = attended, gate/up = rms(x) g2, down = silu(gate) * up, each linear applying its (synchronous) input transform
 * and bias. `inputs` holds what reaches the layer before its transform. `weights` overrides a linear's weight by name.
 */
export function forwardPaths(sb: SyntheticBlock, x: Matrix, attended: Matrix, weights: Map<string, Matrix> = new Map()): PathResult {
  const inputs = new Map<string, Matrix>();
  const outputs = new Map<string, Matrix>();
  const run = (l: LinearView, input: Matrix): Matrix => {
    inputs.set(l.name, input);
    let x = input;
    if (l.inputTransform) {
      // Synchronous transforms only (a channel shift; test stubs): applied to a copy, as the graph does.
      const data = input.data.slice();
      void l.inputTransform.apply(data, input.shape[0], input.shape[1]);
      x = { dtype: 'float32', shape: input.shape, data };
    }
    const y = linearForward(x, weights.get(l.name) ?? l.weight, l.bias);
    outputs.set(l.name, y);
    return y;
  };
  const [n1, n2] = sb.norms as [NormView, NormView];
  const a = rmsNorm(x, n1.weight);
  for (const kind of ['q_proj', 'k_proj', 'v_proj']) run(sb.linear(kind), a);
  run(sb.linear('o_proj'), attended);
  const b = rmsNorm(x, n2.weight);
  const g = run(sb.linear('gate_proj'), b);
  const u = run(sb.linear('up_proj'), b);
  const h = new Float32Array(g.data.length);
  for (let i = 0; i < h.length; i++) h[i] = (g.data[i]! / (1 + Math.exp(-g.data[i]!))) * u.data[i]!;
  run(sb.linear('down_proj'), { dtype: 'float32', shape: g.shape as [number, number], data: h });
  return { inputs, outputs };
}

/** A step context over the block's views: every linear selected (or `names`), statistics from captured inputs. */
export function contextFor(sb: SyntheticBlock, inputs: Map<string, Matrix>, extra: Partial<StepContext> = {}, names?: readonly string[]): StepContext {
  const layers: LayerState[] = sb.block.linears.filter((l) => !names || names.includes(l.name)).map((l) => ({ name: l.name, weight: l.weight }));
  return {
    layers,
    statistics(name) {
      const x = inputs.get(name);
      if (!x) return { tokens: 0 };
      const cols = x.shape[1];
      const absMax = new Float32Array(cols);
      for (let i = 0; i < x.data.length; i++) absMax[i % cols] = Math.max(absMax[i % cols]!, Math.abs(x.data[i]!));
      return { tokens: x.shape[0], inputs: x, inputAbsMax: absMax };
    },
    block: sb.block,
    ...extra,
  };
}

/** Largest |a - b| relative to max |a|. */
export function maxRelativeDifference(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return diff / scale;
}

/** Sum of squared differences. */
export function squaredError(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}
