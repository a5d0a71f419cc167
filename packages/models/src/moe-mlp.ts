import type { Backend } from '@bitsmith/linalg';
import { applyLinear, type LinearInputObserver, type LinearLayer } from './linear-layer.js';
import type { MoeConfig } from './llama-config.js';

/** A gated MLP: `down(act(gate(x)) * up(x))`. */
export interface GatedMlp {
  readonly gateProj: LinearLayer;
  readonly upProj: LinearLayer;
  readonly downProj: LinearLayer;
}

/** A sparse mixture-of-experts MLP (Qwen2-MoE): router, experts, optional shared expert behind a sigmoid gate. */
export interface MoeMlp {
  /** `mlp.gate`: `[numExperts, hiddenSize]` router (not quantized by default). */
  readonly router: LinearLayer;
  readonly experts: readonly GatedMlp[];
  readonly sharedExpert: GatedMlp | undefined;
  /** `mlp.shared_expert_gate`: `[1, hiddenSize]`; the shared expert's output is scaled by `sigmoid` of it. */
  readonly sharedExpertGate: LinearLayer | undefined;
}

/**
 * How calibration (a forward pass with an observer) feeds experts: `'all-experts'` (default) sends every token
 * through every expert so each expert's statistics see the whole calibration set, while the block's output still
 * uses the true top-k routing; `'routed'` observes each expert on its routed tokens only (an expert may then see none).
 */
export type MoeCalibration = 'all-experts' | 'routed';

/** Top-k routing of each token: expert indices and weights (`[tokens, topK]`). */
export interface MoeRouting {
  readonly experts: Int32Array;
  readonly weights: Float32Array;
}

/**
 * Routes tokens: softmax over the router logits (float64), the `topK` largest (ties: the lower expert index), and,
 * with `normTopK`, weights renormalized to sum to 1.
 *
 * @example
 * ```ts
 * const { experts, weights } = routeTokens(logits, tokens, { numExperts: 4, topK: 2, normTopK: false });
 * ```
 */
export function routeTokens(logits: Float32Array, tokens: number, config: Pick<MoeConfig, 'numExperts' | 'topK' | 'normTopK'>): MoeRouting {
  const { numExperts: e, topK: k } = config;
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  const p = new Float64Array(e);
  const taken = new Uint8Array(e);
  for (let t = 0; t < tokens; t++) {
    let max = -Infinity;
    for (let j = 0; j < e; j++) max = Math.max(max, logits[t * e + j]!);
    let sum = 0;
    for (let j = 0; j < e; j++) sum += p[j] = Math.exp(logits[t * e + j]! - max);
    taken.fill(0);
    let chosen = 0;
    for (let r = 0; r < k; r++) {
      let best = -1;
      for (let j = 0; j < e; j++) if (!taken[j] && (best < 0 || p[j]! > p[best]!)) best = j;
      taken[best] = 1;
      experts[t * k + r] = best;
      const w = p[best]! / sum;
      weights[t * k + r] = w;
      chosen += w;
    }
    if (config.normTopK) for (let r = 0; r < k; r++) weights[t * k + r] = weights[t * k + r]! / chosen;
  }
  return { experts, weights };
}

async function runGatedMlp(
  mlp: GatedMlp,
  x: Float32Array,
  rows: number,
  activation: 'silu' | 'gelu-tanh',
  backend: Backend,
  run: { observer: LinearInputObserver | undefined; blockIndex: number; reference?: boolean | undefined },
): Promise<Float32Array> {
  const gate = await applyLinear(mlp.gateProj, x, rows, backend, run);
  const up = await applyLinear(mlp.upProj, x, rows, backend, run);
  await backend.gatedActivation({ gate, up, out: gate, activation, reference: run.reference });
  return applyLinear(mlp.downProj, gate, rows, backend, run);
}

/**
 * The forward pass of a {@link MoeMlp} on `[tokens, hidden]` normed inputs: each token's output is the routing-weighted
 * sum of its top-k experts' outputs plus `sigmoid(shared_expert_gate(x)) * shared_expert(x)`. Without an observer
 * each expert runs on its routed tokens only; with one, `calibration` decides (see {@link MoeCalibration}).
 *
 * @example
 * ```ts
 * const out = await runMoeMlp(block.moe, normed, tokens, config, backend, { observer: undefined, blockIndex: 0 });
 * ```
 */
export async function runMoeMlp(
  moe: MoeMlp,
  x: Float32Array,
  tokens: number,
  config: { readonly moe: MoeConfig; readonly hiddenSize: number; readonly hiddenActivation: 'silu' | 'gelu-tanh' },
  backend: Backend,
  run: { observer: LinearInputObserver | undefined; blockIndex: number; calibration?: MoeCalibration; reference?: boolean | undefined },
): Promise<Float32Array> {
  const hidden = config.hiddenSize;
  const { topK } = config.moe;
  const logits = await applyLinear(moe.router, x, tokens, backend, run);
  const routing = routeTokens(logits, tokens, config.moe);
  const out = new Float32Array(tokens * hidden);
  const allTokens = run.observer !== undefined && (run.calibration ?? 'all-experts') === 'all-experts';
  for (let e = 0; e < moe.experts.length; e++) {
    // Rows routed to expert e, with their weights.
    const rows: number[] = [];
    const w: number[] = [];
    for (let t = 0; t < tokens; t++) {
      for (let r = 0; r < topK; r++) {
        if (routing.experts[t * topK + r] === e) {
          rows.push(t);
          w.push(routing.weights[t * topK + r]!);
        }
      }
    }
    if (allTokens) {
      const y = await runGatedMlp(moe.experts[e]!, x, tokens, config.hiddenActivation, backend, run);
      for (let i = 0; i < rows.length; i++) {
        const t = rows[i]!;
        for (let j = 0; j < hidden; j++) out[t * hidden + j]! += w[i]! * y[t * hidden + j]!;
      }
      continue;
    }
    if (rows.length === 0 && !run.observer) continue;
    const gathered = new Float32Array(rows.length * hidden);
    rows.forEach((t, i) => gathered.set(x.subarray(t * hidden, (t + 1) * hidden), i * hidden));
    const y = await runGatedMlp(moe.experts[e]!, gathered, rows.length, config.hiddenActivation, backend, run);
    for (let i = 0; i < rows.length; i++) {
      const t = rows[i]!;
      for (let j = 0; j < hidden; j++) out[t * hidden + j]! += w[i]! * y[i * hidden + j]!;
    }
  }
  if (moe.sharedExpert) {
    const y = await runGatedMlp(moe.sharedExpert, x, tokens, config.hiddenActivation, backend, run);
    const gate = moe.sharedExpertGate ? await applyLinear(moe.sharedExpertGate, x, tokens, backend, run) : undefined;
    for (let t = 0; t < tokens; t++) {
      const g = gate ? 1 / (1 + Math.exp(-gate[t]!)) : 1;
      for (let j = 0; j < hidden; j++) out[t * hidden + j]! += g * y[t * hidden + j]!;
    }
  }
  return out;
}
