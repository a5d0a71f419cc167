import { InvalidArgumentError } from './errors.js';
import type { BlockHessians, BlockView } from './model-view.js';
import type { LayerStatistics, StatisticRequest } from './quantizer.js';
import type { Matrix } from './tensor.js';

/**
 * The two kernels the statistics collector needs, structurally what `@bitsmith/linalg`'s `Backend` provides (core has
 * no runtime dependency on linalg; pass `defaultBackend()` or `createBackend('js')`).
 */
export interface StatisticsKernels {
  /**
   * `h += x^T x` for a row-major `rows x columns` float32 `x`, into a symmetric float64 `columns x columns` `h`: with
   * `lower`, only the lower triangle and the diagonal need be written (the collector mirrors once when it is read).
   */
  gram(args: { rows: number; columns: number; x: Float32Array; h: Float64Array; lower?: boolean }): Promise<void>;
  /** `c = op(a) op(b)` in float32 (only `transA` is used here). */
  sgemm(args: { m: number; n: number; k: number; a: Float32Array; b: Float32Array; c: Float32Array; transA?: boolean }): Promise<void>;
}

/** Options of {@link StatisticsCollector}. */
export interface StatisticsCollectorOptions {
  /**
   * Groups of layers that read one and the same input (q/k/v, gate/up), declared by the caller, usually
   * {@link sharedInputGroups}`(block)`: the Hessian (and the float-input cross term) is computed once per group, from
   * the group's first observed layer, and handed to every member. The collector checks the declaration: a member
   * whose input differs from the group's (by a 64-bit fingerprint of its bits, chunk for chunk) throws
   * `InvalidArgumentError` naming both layers. Layers in no group (or a group of one) get their own Hessian. Default:
   * no sharing.
   */
  readonly sharedInputs?: readonly (readonly string[])[];
  /**
   * With a `float-input-cross` request: each layer's inputs in the float model, chunk for chunk in the order the
   * observed forward pass delivers them.
   */
  readonly floatInputs?: ReadonlyMap<string, readonly Float32Array[]>;
}

interface Accumulator {
  columns: number;
  tokens: number;
  /** Chunks (observer calls) seen. */
  chunks: number;
  hessian?: Float64Array;
  absMax?: Float32Array;
  absSum?: Float64Array;
  inputs?: Float32Array[];
  cross?: Float64Array;
  inputRows: number;
  normalised: boolean;
  crossNormalised: boolean;
}

/** The chunk the first observed member of a shared-input group last received. */
interface GroupChunk {
  owner: string;
  chunk: number;
  rows: number;
  columns: number;
  fingerprint: bigint;
}

/**
 * A 64-bit hash of the float32 bits of `x`, to check that declared sharers got one input: four 32-bit FNV-1a-style
 * multiply-xor chains, word `i` into chain `i mod 4`, folded into two 32-bit halves at the end (chains 0 and 1 into
 * the high half, 2 and 3 into the low one, each fold a multiply, so the chains' order counts). Four independent chains
 * over the words as signed 32-bit integers run about twice as fast as one chain (each `Math.imul` waits for the
 * previous one in its chain, and unsigned words would be handled as doubles): a difference confined to one chain is
 * missed only when that chain's 32 bits collide.
 */
function fingerprint(x: Float32Array): bigint {
  const words = new Int32Array(x.buffer, x.byteOffset, x.length);
  const n = words.length;
  let a0 = 0x811c9dc5 | 0;
  let a1 = 0x050c5d1f ^ n;
  let a2 = 0x2166136a;
  let a3 = 0x6b5f3ae1 ^ n;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 = Math.imul(a0 ^ words[i]!, 0x01000193);
    a1 = Math.imul(a1 ^ words[i + 1]!, 0x01000193);
    a2 = Math.imul(a2 ^ words[i + 2]!, 0x01000193);
    a3 = Math.imul(a3 ^ words[i + 3]!, 0x01000193);
  }
  for (; i < n; i++) a0 = Math.imul(a0 ^ words[i]!, 0x01000193);
  const high = Math.imul(Math.imul(a0 ^ 0x9e3779b9, 0x5bd1e995) ^ a1, 0x01000193);
  const low = Math.imul(Math.imul(a2 ^ 0x7f4a7c15, 0x5bd1e995) ^ a3, 0x01000193);
  return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
}

/**
 * The layers of a block that read one and the same input tensor, from the model's declaration
 * (`BlockView.inputGroups`): the sharing declaration for {@link StatisticsCollector}. Each input group is split by
 * module (the layer name up to its last dot), so that the experts of a mixture of experts, which read one norm's output
 * but each its own routed tokens, do not share, while q/k/v (`self_attn.*`), gate/up (`mlp.*`) and one expert's
 * gate/up do. Groups of one layer are left out.
 *
 * @example
 * ```ts
 * sharedInputGroups(block); // [['…self_attn.q_proj', '…self_attn.k_proj', '…self_attn.v_proj'], ['…mlp.gate_proj', '…mlp.up_proj']]
 * ```
 */
export function sharedInputGroups(block: Pick<BlockView, 'inputGroups'>): string[][] {
  const groups: string[][] = [];
  for (const group of block.inputGroups) {
    const byModule = new Map<string, string[]>();
    for (const { name } of group.linears) {
      const module = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
      if (!byModule.has(module)) byModule.set(module, []);
      byModule.get(module)!.push(name);
    }
    for (const names of byModule.values()) if (names.length > 1) groups.push(names);
  }
  return groups;
}

/**
 * Accumulates the calibration statistics that steps request (`StatisticRequest`) from the inputs of a block's linear
 * layers, chunk by chunk as a batched forward pass delivers them ({@link observe} is a `LinearInputCallback`):
 * - `hessian`: the mean `H = X^T X / tokens` in float64, summed chunk by chunk in the order the chunks arrive (so one
 *   whole pass and the same rows in batches give the same bits when the kernel sums each chunk's rows in order into
 *   `h`), divided once by the token count when first read;
 * - `input-absmax`, `input-absmean`: per input channel max |x| and mean |x|;
 * - `inputs`: the first `maxTokens` rows (default 4096) of the raw inputs;
 * - `float-input-cross`: `(X_float - X)^T X / tokens` (GPTAQ), the product in float32 per chunk, summed in float64.
 * Layers that read one input share one Hessian only where the caller declares it (`sharedInputs`), checked chunk by
 * chunk.
 *
 * @example
 * ```ts
 * const collector = new StatisticsCollector([{ kind: 'hessian' }], new Set(block.linears.map((l) => l.name)), backend, { sharedInputs: sharedInputGroups(block) });
 * await model.runBlock(block.index, hidden, collector.observe);
 * const { hessian, tokens } = collector.statistics('model.layers.0.self_attn.q_proj');
 * ```
 */
export class StatisticsCollector {
  private readonly accumulators = new Map<string, Accumulator>();
  private readonly wants: { hessian: boolean; absMax: boolean; absMean: boolean; inputs: number; cross: boolean };
  /** Layer → the index of its shared-input group. */
  private readonly groupOf = new Map<string, number>();
  private readonly groupChunks = new Map<number, GroupChunk>();
  /** Member → the layer whose Hessian it shares. */
  private readonly sharedHessian = new Map<string, string>();
  private readonly released = new Set<string>();
  private readonly floatInputs: ReadonlyMap<string, readonly Float32Array[]> | undefined;
  private crossScratch: { delta: Float32Array; product: Float32Array } | undefined;

  /**
   * @param requests - What to collect (the union of the steps' `requires`).
   * @param layerNames - The layers to observe; inputs of other layers are ignored.
   * @param kernels - `gram` and `sgemm` (a linalg `Backend`); may be `undefined` when no Hessian or cross term is requested.
   * @param options - `sharedInputs` (declared groups), `floatInputs` (for `float-input-cross`).
   */
  constructor(
    requests: readonly StatisticRequest[],
    private readonly layerNames: ReadonlySet<string>,
    private readonly kernels: StatisticsKernels | undefined,
    options: StatisticsCollectorOptions = {},
  ) {
    let inputs = 0;
    for (const r of requests) if (r.kind === 'inputs') inputs = Math.max(inputs, r.maxTokens ?? 4096);
    this.wants = {
      hessian: requests.some((r) => r.kind === 'hessian'),
      absMax: requests.some((r) => r.kind === 'input-absmax'),
      absMean: requests.some((r) => r.kind === 'input-absmean'),
      inputs,
      cross: requests.some((r) => r.kind === 'float-input-cross'),
    };
    this.floatInputs = options.floatInputs;
    if ((this.wants.hessian || this.wants.cross) && !kernels) throw new InvalidArgumentError('kernels', "'hessian' and 'float-input-cross' requests need the gram/sgemm kernels (a linalg Backend)");
    if (this.wants.cross && !this.floatInputs) throw new InvalidArgumentError('statistics', "a 'float-input-cross' request needs the float model's inputs (the runner provides them)");
    (options.sharedInputs ?? []).forEach((group, g) => {
      for (const name of group) {
        if (this.groupOf.has(name)) throw new InvalidArgumentError('sharedInputs', `'${name}' is declared in two shared-input groups`);
        this.groupOf.set(name, g);
      }
    });
  }

  /** Observer for `QuantizableModel.runBlock` (a `LinearInputCallback`). */
  readonly observe = async (name: string, input: Matrix): Promise<void> => {
    if (!this.layerNames.has(name)) return;
    const [rows, columns] = input.shape;
    const x = input.data as Float32Array;
    let acc = this.accumulators.get(name);
    if (!acc) {
      acc = { columns, tokens: 0, chunks: 0, inputRows: 0, normalised: false, crossNormalised: false };
      if (this.wants.absMax) acc.absMax = new Float32Array(columns);
      if (this.wants.absMean) acc.absSum = new Float64Array(columns);
      if (this.wants.inputs > 0) acc.inputs = [];
      this.accumulators.set(name, acc);
    }
    const chunk = acc.chunks++;
    acc.tokens += rows;
    const xs = x.length === rows * columns ? x : x.subarray(0, rows * columns);
    if (this.wants.hessian || this.wants.cross) {
      const owner = this.shareOwner(name, chunk, rows, columns, xs);
      if (this.wants.cross) {
        // Every member consumes its own float-model chunk (the pairing stays in step), the owner alone accumulates.
        const floatChunk = this.floatInputs!.get(name)?.[chunk];
        if (!floatChunk || floatChunk.length < rows * columns) {
          throw new InvalidArgumentError('statistics', `the float model's input of '${name}' (chunk ${chunk}) is missing or has ${floatChunk?.length ?? 0} values where ${rows} x ${columns} were observed`);
        }
        if (!owner) {
          acc.cross ??= new Float64Array(columns * columns);
          await this.accumulateCross(rows, columns, floatChunk, xs, acc.cross);
        }
      }
      if (owner) this.sharedHessian.set(name, owner);
      else if (this.wants.hessian) {
        acc.hessian ??= new Float64Array(columns * columns);
        await this.kernels!.gram({ rows, columns, x: xs, h: acc.hessian, lower: true });
      }
    }
    if (acc.absMax || acc.absSum) {
      const m = acc.absMax;
      const s = acc.absSum;
      for (let r = 0; r < rows; r++) {
        const o = r * columns;
        for (let c = 0; c < columns; c++) {
          const a = Math.abs(x[o + c]!);
          if (m && a > m[c]!) m[c] = a;
          if (s) s[c] += a;
        }
      }
    }
    if (acc.inputs && acc.inputRows < this.wants.inputs) {
      const take = Math.min(rows, this.wants.inputs - acc.inputRows);
      acc.inputs.push(x.slice(0, take * columns));
      acc.inputRows += take;
    }
  };

  /**
   * For a layer in a declared group: the group's owner (its first observed member) when this layer shares the owner's
   * Hessian, after checking that this chunk is the owner's chunk of the same index; `undefined` for the owner itself
   * and for layers in no group.
   */
  private shareOwner(name: string, chunk: number, rows: number, columns: number, x: Float32Array): string | undefined {
    const g = this.groupOf.get(name);
    if (g === undefined) return undefined;
    const seen = this.groupChunks.get(g);
    const print = fingerprint(x);
    if (!seen || seen.owner === name) {
      this.groupChunks.set(g, { owner: name, chunk, rows, columns, fingerprint: print });
      return undefined;
    }
    if (seen.chunk !== chunk || seen.rows !== rows || seen.columns !== columns || seen.fingerprint !== print) {
      throw new InvalidArgumentError(
        'sharedInputs',
        `'${name}' is declared to read the same input as '${seen.owner}', but its chunk ${chunk} (${rows} x ${columns}) differs from that layer's chunk ${seen.chunk} (${seen.rows} x ${seen.columns}); fix the block's input groups or observe the layers separately`,
      );
    }
    return seen.owner;
  }

  /** `d += (xf - x)^T x` for one chunk (`rows x columns` each): the product in float32 by the kernels, summed in float64. */
  private async accumulateCross(rows: number, columns: number, xf: Float32Array, x: Float32Array, d: Float64Array): Promise<void> {
    // Scratch reused across chunks and layers (grown when a wider layer or a longer chunk comes).
    if (!this.crossScratch || this.crossScratch.delta.length < rows * columns || this.crossScratch.product.length < columns * columns) {
      this.crossScratch = {
        delta: new Float32Array(Math.max(rows * columns, this.crossScratch?.delta.length ?? 0)),
        product: new Float32Array(Math.max(columns * columns, this.crossScratch?.product.length ?? 0)),
      };
    }
    const delta = this.crossScratch.delta.subarray(0, rows * columns);
    const product = this.crossScratch.product.subarray(0, columns * columns);
    for (let i = 0; i < delta.length; i++) delta[i] = xf[i]! - x[i]!;
    await this.kernels!.sgemm({ m: columns, n: columns, k: rows, a: delta, b: x, c: product, transA: true });
    for (let i = 0; i < product.length; i++) d[i]! += product[i]!;
  }

  /** The layers observed so far, in the order their first input arrived. */
  observedLayers(): string[] {
    return [...this.accumulators.keys()];
  }

  /** The layer whose Hessian `name` shares (itself when it owns one). */
  hessianOwner(name: string): string {
    return this.sharedHessian.get(name) ?? name;
  }

  /**
   * Frees a layer's statistics (a step is done with them, `StepContext.releaseStatistics`): its own, and a Hessian
   * (cross term) it shares once every layer sharing it was released. Reading them afterwards throws. Unobserved
   * layers are ignored.
   */
  release(name: string): void {
    const acc = this.accumulators.get(name);
    if (!acc) return;
    this.released.add(name);
    delete acc.inputs;
    delete acc.absMax;
    delete acc.absSum;
    const owner = this.sharedHessian.get(name) ?? name;
    const users = [owner, ...[...this.sharedHessian].filter(([, o]) => o === owner).map(([n]) => n)];
    if (users.every((u) => this.released.has(u) || !this.layerNames.has(u))) {
      const source = this.accumulators.get(owner)!;
      delete source.hessian;
      delete source.cross;
    }
  }

  /**
   * The statistics of one layer (the Hessian normalised to the mean on first read; shared Hessians are one array).
   * @throws InvalidArgumentError when the layer was never observed, or its statistics were released.
   */
  statistics(name: string): LayerStatistics {
    const acc = this.accumulators.get(name);
    if (!acc) throw new InvalidArgumentError('layer', `no calibration inputs were observed for '${name}'`);
    if (this.released.has(name)) throw new InvalidArgumentError('layer', `the statistics of '${name}' were released by the step (releaseStatistics) and cannot be read again`);
    const owner = this.sharedHessian.get(name);
    const source = owner ? this.accumulators.get(owner)! : acc;
    const result: { -readonly [K in keyof LayerStatistics]: LayerStatistics[K] } = { tokens: acc.tokens };
    if (this.wants.hessian && source.hessian) {
      // Shared Hessians are divided once, by the owner's token count (the same tokens).
      if (!source.normalised) {
        const h = source.hessian;
        // The chunks were summed into the lower triangle only (`lower`): the upper one is filled once, here.
        mirrorLowerTriangle(h, Math.round(Math.sqrt(h.length)));
        const inv = 1 / Math.max(1, source.tokens);
        for (let i = 0; i < h.length; i++) h[i]! *= inv;
        source.normalised = true;
      }
      result.hessian = source.hessian;
    }
    if (this.wants.cross && source.cross) {
      if (!source.crossNormalised) {
        const d = source.cross;
        const inv = 1 / Math.max(1, source.tokens);
        for (let i = 0; i < d.length; i++) d[i]! *= inv;
        source.crossNormalised = true;
      }
      result.floatInputCross = source.cross;
    }
    if (acc.absMax) result.inputAbsMax = acc.absMax;
    if (acc.absSum) result.inputAbsMean = Float32Array.from(acc.absSum, (v) => v / Math.max(1, acc.tokens));
    if (acc.inputs) {
      const data = new Float32Array(acc.inputRows * acc.columns);
      let o = 0;
      for (const part of acc.inputs) {
        data.set(part, o);
        o += part.length;
      }
      result.inputs = { dtype: 'float32', shape: [acc.inputRows, acc.columns], data };
    }
    return result;
  }
}

/**
 * Statistics from Hessians a model computed itself (`QuantizableModel.blockHessians`): each named layer's Hessian
 * (already the mean `X^T X / tokens`) and the block's token count, or its resident Hessian (`residentHessian`, where
 * the model left it on its device); other layers throw as an unobserved one would.
 *
 * @example
 * ```ts
 * const given = await model.blockHessians?.(block.index, hidden, names);
 * if (given) givenStatistics(given).statistics(names[0]).hessian;
 * ```
 */
export function givenStatistics(given: BlockHessians): Pick<StatisticsCollector, 'statistics' | 'release'> {
  const hessians = new Map(given.hessians);
  const resident = new Map(given.resident ?? []);
  const released = new Set<string>();
  return {
    statistics(name: string): LayerStatistics {
      if (released.has(name)) throw new InvalidArgumentError('layer', `the statistics of '${name}' were released by the step (releaseStatistics) and cannot be read again`);
      const hessian = hessians.get(name);
      const residentHessian = resident.get(name);
      if (!hessian && !residentHessian) throw new InvalidArgumentError('layer', `no calibration inputs were observed for '${name}'`);
      return { tokens: given.tokens, ...(hessian ? { hessian } : {}), ...(residentHessian ? { residentHessian } : {}) };
    },
    release(name: string): void {
      const had = hessians.delete(name);
      if (resident.delete(name) || had) released.add(name);
    },
  };
}

/**
 * Copies the lower triangle of the row-major `n x n` matrix `h` into its upper triangle, in 64 x 64 tiles so that the
 * strided reads stay in cache (linalg's gram kernels use it too).
 *
 * @example
 * ```ts
 * mirrorLowerTriangle(h, n); // h[i * n + j] = h[j * n + i] for i < j
 * ```
 */
export function mirrorLowerTriangle(h: Float64Array, n: number): void {
  const T = 64;
  for (let i0 = 0; i0 < n; i0 += T) {
    const i1 = Math.min(n, i0 + T);
    for (let j0 = i0; j0 < n; j0 += T) {
      const j1 = Math.min(n, j0 + T);
      for (let i = i0; i < i1; i++) {
        const row = i * n;
        for (let j = Math.max(j0, i + 1); j < j1; j++) h[row + j] = h[j * n + i]!;
      }
    }
  }
}
