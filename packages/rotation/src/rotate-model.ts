import { AbortError, InvalidArgumentError, ShapeMismatchError, matrix, requireLanguageModelHead, resolveBlockMapping, type LinearView, type Matrix, type ModelView, type NormView, type ResolvedBlockMapping, type StepWarning } from '@bitsmith/core';
import { resolveBackend, transposeInto, type Backend } from '@bitsmith/linalg';
import { applyHadamard } from './apply-hadamard.js';
import { hadamardInputTransform } from './hadamard-input-transform.js';
import { requireHadamardFactorization, hadamardFactorization, describeFactorization } from './hadamard-orders.js';
import { randomSigns } from './random-hadamard.js';
import { randomOrthogonal } from './random-orthogonal.js';

/** Options of {@link rotateModel} and {@link hadamardRotation}. */
export interface RotateModelOptions {
  /**
   * The residual-stream rotation `Q`: `'hadamard'` (default; `diag(s) H / sqrt(hidden)` with seeded random signs,
   * applied by the fast transform), `'orthogonal'` (Haar random orthogonal from a seeded Gaussian, O(hidden^3) to
   * build), or an explicit orthogonal `hidden x hidden` float32 matrix (for example a learned one, see
   * `learnRotation`), applied by GEMM.
   */
  rotation?: 'hadamard' | 'orthogonal' | Matrix;
  /** Seed of the random signs or Gaussian (default 0). */
  seed?: number;
  /**
   * Rotate the residual stream (default true; QuaRot): fold the RMSNorm gains and apply `Q` to the embedding, every
   * reader and writer, and the head. `false` leaves the residual stream, the norms, the embedding and the head as they
   * are (LayerNorm models are then fine too); combine it with `onlineHadamard: 'all'` for QuIP#-style incoherence on
   * each linear's input instead.
   */
  residual?: boolean;
  /**
   * Online Hadamards (`W ← W H / sqrt(n)` and an input transform `x ← x H / sqrt(n)` at run time, n = the layer's
   * input features): `true` (default) before every `down_proj` (QuaRot: spreads the SwiGLU product's outliers);
   * `'all'` before every linear of every block (q, k, v, o, gate, up, down), which makes each weight incoherent
   * without folding any norm gain into it; `false` none.
   */
  onlineHadamard?: boolean | 'all';
  /**
   * Per-head Hadamard between `v_proj` and `o_proj`, fused into both weights with no run-time op (default true):
   * `v_proj`'s rows of each key/value head become `H_d^T W_v,h`, `o_proj`'s columns of each query head `W_o,h H_d`
   * (orthonormal `H_d`, d = head dimension). Skipped with a warning when the head dimension has no Hadamard matrix.
   */
  valueHadamard?: boolean;
  /** Backend for the transforms and GEMMs. Default: `await defaultBackend()` from `@bitsmith/linalg`. */
  backend?: Backend;
  /** Cancellation, checked between blocks. */
  signal?: AbortSignal;
  /** Progress: called after each block and at the end. */
  progress?: (done: number, total: number, message?: string) => void;
}

/** What {@link rotateModel} did. */
export interface RotateModelResult {
  /** Recoverable problems (for example an online Hadamard skipped because a layer already had an input transform). */
  readonly warnings: readonly StepWarning[];
  /** JSON description of the fused rotation, for reports (the online transforms describe themselves on their layers). */
  readonly description: Record<string, unknown>;
}

const STEP = 'hadamard-rotation';

/** `x ← x Q` on every row of a `rows x order` float32 array, in place. */
interface ResidualRotation {
  readonly order: number;
  rotateRows(data: Float32Array, rows: number): Promise<void>;
}

function hadamardResidualRotation(n: number, seed: number, backend: Backend): ResidualRotation {
  requireHadamardFactorization(n, 'hiddenSize');
  const signs = randomSigns(n, seed);
  return {
    order: n,
    async rotateRows(data, rows) {
      // x Q = (x ⊙ s) H / sqrt(n) with Q = diag(s) H / sqrt(n).
      for (let r = 0; r < rows; r++) {
        const o = r * n;
        for (let j = 0; j < n; j++) data[o + j]! *= signs[j]!;
      }
      await applyHadamard(data, rows, n, { backend });
    },
  };
}

/** `x ← x Q` by GEMM with a dense `n x n` matrix. */
function denseResidualRotation(q: Float32Array, n: number, backend: Backend): ResidualRotation {
  const chunk = Math.max(1, Math.floor((1 << 20) / n));
  return {
    order: n,
    async rotateRows(data, rows) {
      const out = new Float32Array(Math.min(rows, chunk) * n);
      for (let r0 = 0; r0 < rows; r0 += chunk) {
        const r = Math.min(chunk, rows - r0);
        const a = data.subarray(r0 * n, (r0 + r) * n);
        await backend.sgemm({ m: r, n, k: n, a, b: q, c: out });
        a.set(out.subarray(0, r * n));
      }
    },
  };
}

/** `W ← W Q` (a reader of the residual stream): a new matrix. */
async function rotateInputs(weight: Matrix, rotation: ResidualRotation): Promise<Matrix> {
  const [rows, columns] = weight.shape;
  const data = (weight.data as Float32Array).slice();
  await rotation.rotateRows(data, rows);
  return matrix<'float32'>(data, rows, columns);
}

/** `W ← Q^T W` (a writer to the residual stream), through `(Q^T W)^T = W^T Q`: a new matrix. */
async function rotateOutputs(weight: Matrix, rotation: ResidualRotation): Promise<Matrix> {
  const [rows, columns] = weight.shape;
  const t = transposeInto(rows, columns, weight.data as Float32Array, new Float32Array(rows * columns));
  await rotation.rotateRows(t, columns);
  return matrix<'float32'>(transposeInto(columns, rows, t, new Float32Array(rows * columns)), rows, columns);
}

/** `W[:, j] *= g[j]`: a new matrix. */
function scaleColumns(weight: Matrix, gain: Float32Array): Matrix {
  const [rows, columns] = weight.shape;
  const data = (weight.data as Float32Array).slice();
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let j = 0; j < columns; j++) data[o + j]! *= gain[j]!;
  }
  return matrix<'float32'>(data, rows, columns);
}

function checkNorm(norm: NormView, hidden: number): void {
  if ((norm.gainOffset ?? 0) !== 0) throw new InvalidArgumentError('model', `${norm.name} has a gain offset (${norm.gainOffset} + w); rotations need a plain RMSNorm gain`);
  if (norm.type !== 'rms') {
    throw new InvalidArgumentError('model', `${norm.name} is a ${norm.type} norm; rotations need RMSNorm (a LayerNorm's mean subtraction does not commute with Q)`);
  }
  if (norm.bias && norm.bias.some((b) => b !== 0)) throw new InvalidArgumentError('model', `${norm.name} has a bias; rotations need a bias-free RMSNorm`);
  if (norm.weight.length !== hidden) throw new ShapeMismatchError(`${norm.name}.weight`, [hidden], [norm.weight.length]);
}

/** An explicit rotation must be a float32 `n x n` matrix with `Q^T Q = I` (to 1e-4 in every entry). */
function checkOrthogonal(q: Matrix, n: number): void {
  if (q.shape[0] !== n || q.shape[1] !== n) throw new ShapeMismatchError('rotation', [n, n], q.shape, 'a residual-stream rotation is hidden x hidden');
  if (q.dtype !== 'float32') throw new InvalidArgumentError('rotation', `expected a float32 matrix, got ${q.dtype}`);
  const worst = orthogonalityError(q.data as Float32Array, n);
  if (!(worst <= 1e-4)) throw new InvalidArgumentError('rotation', `is not orthogonal: max |Q^T Q - I| = ${worst.toExponential(2)} (expected <= 1e-4)`);
}

/**
 * `max_ij |(Q^T Q - I)_ij|` of a square `n x n` row-major matrix, accumulated in float64 (O(n^3); NaN when `Q` holds
 * NaN).
 *
 * @example
 * ```ts
 * orthogonalityError(randomOrthogonal(64, 0).data, 64); // ~1e-7
 * ```
 */
export function orthogonalityError(q: ArrayLike<number>, n: number): number {
  const g = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const row = k * n;
    for (let i = 0; i < n; i++) {
      const a = q[row + i]!;
      if (a === 0) continue;
      const gi = i * n;
      for (let j = 0; j < n; j++) g[gi + j] += a * q[row + j]!;
    }
  }
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const d = Math.abs(g[i * n + j]! - (i === j ? 1 : 0));
      if (Number.isNaN(d)) return NaN;
      if (d > worst) worst = d;
    }
  }
  return worst;
}

function checkFloat32(linear: LinearView): void {
  if (linear.weight.dtype !== 'float32') throw new InvalidArgumentError('model', `${linear.name}.weight is ${linear.weight.dtype}; rotations need float32 weights`);
}

/** @internal */
export interface BlockPlan {
  readonly readers: { readonly norm: NormView; readonly linears: readonly LinearView[] }[];
  readonly writers: LinearView[];
}

/** The block's mapping table entries, resolved (the model must carry a mapping table). */
function blockMapping(model: ModelView, index: number): ResolvedBlockMapping {
  if (!model.mapping) throw new InvalidArgumentError('model', `${model.architecture} has no architecture mapping table; rotations need one to find the residual stream's readers and writers`);
  return resolveBlockMapping(model.mapping, model.blocks[index]!);
}

/** @internal The residual stream's readers (grouped by the norm feeding them) and writers of block `index`, checked. */
export function planBlock(model: ModelView, index: number): BlockPlan {
  const block = model.blocks[index]!;
  const hidden = model.hiddenSize;
  const mapping = blockMapping(model, index);
  if (mapping.residualOutputNorms.length > 0) {
    throw new InvalidArgumentError(
      'model',
      `${block.name}: ${mapping.residualOutputNorms.map((n) => n.name).join(', ')} normalize branch outputs before the residual add (${model.architecture}); a residual rotation cannot pass them — use residual: false`,
    );
  }
  const readers: { norm: NormView; linears: LinearView[] }[] = [];
  const seen = new Set<LinearView>();
  for (const group of mapping.inputGroups) {
    if (group.producer.kind !== 'norm') continue;
    const norm = group.producer.norm;
    checkNorm(norm, hidden);
    let entry = readers.find((r) => r.norm === norm);
    if (!entry) readers.push((entry = { norm, linears: [] }));
    for (const linear of group.linears) {
      if (seen.has(linear)) continue;
      if (linear.weight.shape[1] !== hidden) throw new ShapeMismatchError(`${linear.name}.weight`, [linear.weight.shape[0], hidden], linear.weight.shape, 'a reader of the residual stream');
      checkFloat32(linear);
      seen.add(linear);
      entry.linears.push(linear);
    }
  }
  for (const norm of block.norms) {
    if (!readers.some((r) => r.norm === norm)) throw new InvalidArgumentError('model', `${norm.name} feeds no input group of ${block.name}; its weight cannot be folded`);
  }
  // Every linear that reads hidden-size vectors and writes no residual must be a reader found above.
  const writers = mapping.residualWriters;
  for (const linear of [...block.linears, ...(block.auxiliaryLinears ?? [])]) {
    if (!seen.has(linear) && !writers.includes(linear) && linear.weight.shape[1] === hidden) {
      throw new InvalidArgumentError('model', `${linear.name} reads hidden-size inputs but is in no norm-produced input group of ${block.name} in the ${model.mapping!.name} mapping`);
    }
  }
  for (const linear of writers) {
    if (linear.weight.shape[0] !== hidden) throw new ShapeMismatchError(`${linear.name}.weight`, [hidden, linear.weight.shape[1]], linear.weight.shape, 'a writer to the residual stream');
    checkFloat32(linear);
  }
  if (writers.length === 0) throw new InvalidArgumentError('model', `${block.name} has no linear writing to the residual stream in the ${model.mapping!.name} mapping`);
  return { readers, writers };
}

/**
 * Per-head Hadamard between v_proj and o_proj: `W_v,h ← H_d^T W_v,h` (rows of each key/value head, and its bias),
 * `W_o[:, head h] ← W_o[:, head h] H_d` (columns of each query head). Attention mixes positions only, so each head's
 * output becomes `a_h H_d` and `o_proj` undoes it; grouped-query sharing is fine because every head uses the same `H_d`.
 */
async function fuseValueHadamard(v: LinearView, o: LinearView, kvHeads: number, heads: number, d: number, backend: Backend): Promise<void> {
  const [vOut, vIn] = v.weight.shape;
  const t = transposeInto(vOut, vIn, v.weight.data as Float32Array, new Float32Array(vOut * vIn));
  await applyHadamard(t, vIn * kvHeads, d, { backend }); // (H^T W)^T = W^T H, per head block of columns of W^T
  v.weight = matrix<'float32'>(transposeInto(vIn, vOut, t, new Float32Array(vOut * vIn)), vOut, vIn);
  if (v.bias) {
    const bias = v.bias.slice();
    await applyHadamard(bias, kvHeads, d, { backend });
    v.bias = bias;
  }
  const [oOut, oIn] = o.weight.shape;
  const w = (o.weight.data as Float32Array).slice();
  await applyHadamard(w, oOut * heads, d, { backend });
  o.weight = matrix<'float32'>(w, oOut, oIn);
}

/**
 * Rotates a model's residual stream in place, QuaRot-style (Ashkboos et al., arXiv:2404.00456; SliceGPT's
 * computational invariance, arXiv:2401.15024), leaving its float outputs unchanged:
 * 1. unties the embeddings when tied, then folds every RMSNorm gain into the linears that read its output
 *    (`W[:, j] *= g[j]`, `g ← 1`: input_layernorm → q/k/v, post_attention_layernorm → gate/up, final norm → lm_head);
 * 2. with an orthogonal `Q` (`rotation`): embedding `E ← E Q`, every reader `W ← W Q` (q, k, v, gate, up, lm_head),
 *    every writer `W ← Q^T W` and `b ← b Q` (o_proj, down_proj); a unit-gain RMSNorm commutes with `Q`;
 * 3. `onlineHadamard`: `W_down ← W_down H` and `down_proj.inputTransform` = `x ← x H` (orthonormal `H`); with
 *    `'all'` the same for every linear of every block;
 * 4. `valueHadamard`: a per-head Hadamard fused into v_proj and o_proj.
 *
 * All checks run before the first write, so a rejected model is left as it was.
 *
 * @param model - A core `ModelView` (for example `llamaQuantizableModel(graph)` from `@bitsmith/models`); modified.
 * Steps 1-2 are skipped with `residual: false`.
 *
 * @param options - `rotation` ('hadamard'), `seed` (0), `residual` (true), `onlineHadamard` (true: down_proj;
 *   `'all'`; false), `valueHadamard` (true), `backend`, `signal`, `progress`.
 * @throws `InvalidArgumentError` for LayerNorm models, unfoldable norms, or a hidden size without a Hadamard matrix
 *   (`rotation: 'hadamard'`; use `'orthogonal'` then).
 * @example
 * ```ts
 * const model = llamaQuantizableModel(await loadLlamaGraph('models/tinystories-656k'));
 * const { warnings } = await rotateModel(model, { seed: 0 });
 * ```
 */
export async function rotateModel(model: ModelView, options: RotateModelOptions = {}): Promise<RotateModelResult> {
  const rotationOption = options.rotation ?? 'hadamard';
  const explicit = typeof rotationOption === 'object' ? rotationOption : undefined;
  const rotationKind = explicit ? 'matrix' : rotationOption;
  if (rotationKind !== 'hadamard' && rotationKind !== 'orthogonal' && rotationKind !== 'matrix') {
    throw new InvalidArgumentError('rotation', `expected 'hadamard', 'orthogonal' or an orthogonal hidden x hidden matrix, got ${String(rotationKind)}`);
  }
  const seed = options.seed ?? 0;
  if (!Number.isFinite(seed)) throw new InvalidArgumentError('seed', `expected a finite number, got ${seed}`);
  const onlineHadamard = options.onlineHadamard ?? true;
  if (onlineHadamard !== true && onlineHadamard !== false && onlineHadamard !== 'all') {
    throw new InvalidArgumentError('onlineHadamard', `expected true (down_proj), 'all' or false, got ${String(onlineHadamard)}`);
  }
  const residual = options.residual ?? true;
  const valueHadamard = options.valueHadamard ?? true;
  const hidden = model.hiddenSize;
  const warnings: StepWarning[] = [];
  const signal = options.signal;
  const throwIfAborted = (): void => {
    if (signal?.aborted) throw new AbortError(signal.reason instanceof Error ? signal.reason.message : `${STEP} aborted`);
  };

  // Validate everything before the first write.
  let plans: BlockPlan[] = [];
  // A residual rotation folds into the embedding (which writes the stream) and the final norm and head (which read
  // it): only a model with a language-model head has them. An encoder can still take the per-block transforms
  // (residual: false).
  const head = residual ? requireLanguageModelHead(model, `${STEP} with residual: true (a rotation of the residual stream; use residual: false on a model without a head)`) : undefined;
  if (head) {
    if (head.embedding.shape[1] !== hidden) throw new ShapeMismatchError('embedding', [head.embedding.shape[0], hidden], head.embedding.shape);
    if (head.embedding.dtype !== 'float32') throw new InvalidArgumentError('model', `the embedding is ${head.embedding.dtype}; rotations need float32`);
    plans = model.blocks.map((_, i) => planBlock(model, i));
    checkNorm(head.finalNorm, hidden);
    if (head.lmHead.weight.shape[1] !== hidden) throw new ShapeMismatchError(`${head.lmHead.name}.weight`, [head.lmHead.weight.shape[0], hidden], head.lmHead.weight.shape);
    checkFloat32(head.lmHead);
    if (rotationKind === 'hadamard') requireHadamardFactorization(hidden, 'hiddenSize');
    if (explicit) checkOrthogonal(explicit, hidden);
  } else {
    for (const block of model.blocks) for (const linear of block.linears) checkFloat32(linear);
  }
  throwIfAborted();

  const backend = await resolveBackend(options);
  const rotation = !residual
    ? undefined
    : explicit
      ? denseResidualRotation(explicit.data as Float32Array, hidden, backend)
      : rotationKind === 'hadamard'
        ? hadamardResidualRotation(hidden, seed, backend)
        : denseResidualRotation(randomOrthogonal(hidden, seed).data, hidden, backend);

  if (rotation && head?.tiedEmbeddings) head.untieEmbeddings();
  const total = model.blocks.length + 1;
  const onlineOrders = new Set<number>();
  let valueOrder: number | undefined;
  for (let i = 0; i < model.blocks.length; i++) {
    throwIfAborted();
    const block = model.blocks[i]!;
    if (rotation) {
      const plan = plans[i]!;
      for (const { norm, linears } of plan.readers) {
        // Auxiliary readers (routers) are in the groups too: they are rotated like the quantized readers.
        for (const linear of linears) linear.weight = await rotateInputs(scaleColumns(linear.weight, norm.weight), rotation);
        norm.weight = new Float32Array(hidden).fill(1);
      }
      for (const linear of plan.writers) {
        linear.weight = await rotateOutputs(linear.weight, rotation);
        if (linear.bias) {
          const bias = linear.bias.slice();
          await rotation.rotateRows(bias, 1);
          linear.bias = bias;
        }
      }
    }
    const mapping = blockMapping(model, i);
    if (valueHadamard) {
      const v = mapping.valueOutput?.value;
      const o = mapping.valueOutput?.output;
      const geometry = block.attention;
      if (!v || !o || !geometry) {
        warnings.push({ step: STEP, layer: block.name, message: 'the mapping table names no value/output projection pair, or the block has no attention geometry; value Hadamard skipped' });
      } else {
        const { numHeads, numKeyValueHeads, headDim } = geometry;
        if (!hadamardFactorization(headDim)) {
          warnings.push({ step: STEP, layer: block.name, message: `no Hadamard matrix of order ${headDim} (the head dimension); value Hadamard skipped` });
        } else if (v.weight.shape[0] !== numKeyValueHeads * headDim || o.weight.shape[1] !== numHeads * headDim) {
          warnings.push({ step: STEP, layer: block.name, message: `v_proj/o_proj shapes do not match ${numHeads} heads (${numKeyValueHeads} key/value) of ${headDim}; value Hadamard skipped` });
        } else {
          await fuseValueHadamard(v, o, numKeyValueHeads, numHeads, headDim, backend);
          valueOrder = headDim;
        }
      }
    }
    // After the value Hadamard: o_proj's weight must become W_o B H (B fused first, then the online H).
    if (onlineHadamard) {
      for (const linear of onlineHadamard === 'all' ? block.linears : mapping.mlpOutputs) {
        const [rows, n] = linear.weight.shape;
        if (linear.inputTransform) {
          warnings.push({ step: STEP, layer: linear.name, message: `already has an input transform (${linear.inputTransform.name}); online Hadamard skipped` });
          continue;
        }
        if (!hadamardFactorization(n)) {
          warnings.push({ step: STEP, layer: linear.name, message: `no Hadamard matrix of order ${n} (its input features); online Hadamard skipped` });
          continue;
        }
        const data = (linear.weight.data as Float32Array).slice();
        await applyHadamard(data, rows, n, { backend });
        linear.weight = matrix<'float32'>(data, rows, n);
        linear.inputTransform = hadamardInputTransform(n, options.backend ? { backend: options.backend } : {});
        onlineOrders.add(n);
      }
    }
    options.progress?.(i + 1, total, `${block.name} rotated`);
  }
  throwIfAborted();
  if (rotation && head) {
    head.lmHead.weight = await rotateInputs(scaleColumns(head.lmHead.weight, head.finalNorm.weight), rotation);
    head.finalNorm.weight = new Float32Array(hidden).fill(1);
    head.embedding = await rotateInputs(head.embedding, rotation);
  }
  options.progress?.(total, total, rotation ? 'embedding and head rotated' : 'done');

  const description: Record<string, unknown> = {
    kind: residual ? 'residual-rotation' : 'online-hadamards',
    ...(residual
      ? { rotation: rotationKind, ...(explicit ? {} : { seed }), order: hidden, ...(rotationKind === 'hadamard' ? { factorisation: describeFactorization(hadamardFactorization(hidden)!) } : {}) }
      : {}),
    normsFolded: residual,
    onlineHadamardLayers: onlineHadamard === 'all' ? 'every linear of every block' : onlineHadamard ? 'down_proj' : 'none',
    onlineHadamard: [...onlineOrders].map((n) => ({ order: n, factorisation: describeFactorization(hadamardFactorization(n)!) })),
    valueHadamard: valueOrder === undefined ? false : { order: valueOrder },
  };
  return { warnings, description };
}
