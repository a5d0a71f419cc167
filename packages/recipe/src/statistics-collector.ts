import type { BlockHessians, LayerStatistics, Matrix, StatisticRequest } from '@bitsmith/core';
import { InvalidArgumentError } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';

interface Accumulator {
  columns: number;
  tokens: number;
  hessian?: Float64Array;
  absMax?: Float32Array;
  absSum?: Float64Array;
  inputs?: Float32Array[];
  cross?: Float64Array;
  /** Float-model input chunks consumed so far (they pair with the observed chunks in call order). */
  floatChunks: number;
  inputRows: number;
  maxInputRows: number;
}

/**
 * Accumulates the statistics that steps request, from the inputs of the observed linear layers.
 * Layers that read one and the same input buffer (q/k/v, gate/up) share one Hessian computation.
 * The Hessian is the mean `X^T X / tokens` in float64. With a `float-input-cross` request, `floatInputs` holds each
 * layer's inputs in the float model, chunk for chunk in the order the observed forward pass delivers them, and the
 * collector accumulates `(X_float - X)^T X / tokens` (shared like the Hessian).
 */
export class StatisticsCollector {
  private readonly accumulators = new Map<string, Accumulator>();
  private readonly wants: { hessian: boolean; absMax: boolean; absMean: boolean; inputs: number; cross: boolean };
  private lastInput: Float32Array | undefined;
  private lastHessianOwner: string | undefined;
  private readonly sharedHessian = new Map<string, string>();
  private readonly released = new Set<string>();

  constructor(
    requests: readonly StatisticRequest[],
    private readonly layerNames: ReadonlySet<string>,
    private readonly backend: Backend,
    private readonly floatInputs?: ReadonlyMap<string, readonly Float32Array[]>,
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
    if (this.wants.cross && !floatInputs) throw new InvalidArgumentError('statistics', "a 'float-input-cross' request needs the float model's inputs (the runner provides them)");
  }

  /** Observer for `QuantizableModel.runBlock`. */
  readonly observe = async (name: string, input: Matrix): Promise<void> => {
    if (!this.layerNames.has(name)) return;
    const [rows, columns] = input.shape;
    const x = input.data;
    let acc = this.accumulators.get(name);
    if (!acc) {
      acc = { columns, tokens: 0, inputRows: 0, maxInputRows: this.wants.inputs, floatChunks: 0 };
      if (this.wants.absMax) acc.absMax = new Float32Array(columns);
      if (this.wants.absMean) acc.absSum = new Float64Array(columns);
      if (this.wants.inputs > 0) acc.inputs = [];
      this.accumulators.set(name, acc);
    }
    acc.tokens += rows;
    if (this.wants.hessian || this.wants.cross) {
      // q, k and v (gate and up) receive the very same buffer in one forward pass: compute X^T X (and the cross
      // term) once.
      const owner = this.lastInput === x && this.lastHessianOwner ? this.lastHessianOwner : undefined;
      const xs = x.length === rows * columns ? x : x.subarray(0, rows * columns);
      if (this.wants.cross) {
        // Consume this layer's float-model chunk even when the computation is shared, to keep the pairing in step.
        const chunk = this.floatInputs!.get(name)?.[acc.floatChunks++];
        if (!chunk || chunk.length < rows * columns) {
          throw new InvalidArgumentError('statistics', `the float model's input of '${name}' (chunk ${acc.floatChunks - 1}) is missing or has ${chunk?.length ?? 0} values where ${rows} x ${columns} were observed`);
        }
        if (!(owner && this.accumulators.get(owner)!.columns === columns)) {
          acc.cross ??= new Float64Array(columns * columns);
          await this.accumulateCross(rows, columns, chunk, xs, acc.cross);
        }
      }
      if (owner && this.accumulators.get(owner)!.columns === columns) {
        this.sharedHessian.set(name, owner);
      } else {
        if (this.wants.hessian) {
          acc.hessian ??= new Float64Array(columns * columns);
          await this.backend.gram({ rows, columns, x: xs, h: acc.hessian });
        }
        this.lastHessianOwner = name;
      }
      this.lastInput = x;
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
    if (acc.inputs && acc.inputRows < acc.maxInputRows) {
      const take = Math.min(rows, acc.maxInputRows - acc.inputRows);
      acc.inputs.push(x.slice(0, take * columns));
      acc.inputRows += take;
    }
  };

  private crossScratch: { delta: Float32Array; product: Float32Array } | undefined;

  /** `d += (xf - x)^T x` for one chunk (`rows x columns` each): the product in float32 by the backend, summed in float64. */
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
    await this.backend.sgemm({ m: columns, n: columns, k: rows, a: delta, b: x, c: product, transA: true });
    for (let i = 0; i < product.length; i++) d[i]! += product[i]!;
  }

  /**
   * Frees a layer's statistics (a step is done with them): its own, and a Hessian (cross term) it shares once every
   * layer sharing it was released. Reading them afterwards throws. Unobserved layers are ignored.
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

  /** The statistics of one layer; throws when the layer was never observed or its statistics were released. */
  statistics(name: string): LayerStatistics {
    const acc = this.accumulators.get(name);
    if (!acc) throw new InvalidArgumentError('layer', `no calibration inputs were observed for '${name}'`);
    if (this.released.has(name)) throw new InvalidArgumentError('layer', `the statistics of '${name}' were released by the step (releaseStatistics) and cannot be read again`);
    const owner = this.sharedHessian.get(name);
    const hessianSource = owner ? this.accumulators.get(owner)! : acc;
    const result: { -readonly [K in keyof LayerStatistics]: LayerStatistics[K] } = { tokens: acc.tokens };
    if (this.wants.hessian && hessianSource.hessian) {
      // Shared Hessians are divided once, by the owner's token count (the same tokens).
      if (!(hessianSource as Accumulator & { normalised?: boolean }).normalised) {
        const h = hessianSource.hessian;
        const inv = 1 / Math.max(1, hessianSource.tokens);
        for (let i = 0; i < h.length; i++) h[i]! *= inv;
        (hessianSource as Accumulator & { normalised?: boolean }).normalised = true;
      }
      result.hessian = hessianSource.hessian;
    }
    if (this.wants.cross && hessianSource.cross) {
      if (!(hessianSource as Accumulator & { crossNormalised?: boolean }).crossNormalised) {
        const d = hessianSource.cross;
        const inv = 1 / Math.max(1, hessianSource.tokens);
        for (let i = 0; i < d.length; i++) d[i]! *= inv;
        (hessianSource as Accumulator & { crossNormalised?: boolean }).crossNormalised = true;
      }
      result.floatInputCross = hessianSource.cross;
    }
    if (acc.absMax) result.inputAbsMax = acc.absMax;
    if (acc.absSum) result.inputAbsMean = Float32Array.from(acc.absSum, (v) => v / Math.max(1, acc.tokens));
    if (acc.inputs) {
      const data = new Float32Array(acc.inputRows * acc.columns);
      let o = 0;
      for (const chunk of acc.inputs) {
        data.set(chunk, o);
        o += chunk.length;
      }
      result.inputs = { dtype: 'float32', shape: [acc.inputRows, acc.columns], data };
    }
    return result;
  }
}


/**
 * Statistics from Hessians a model computed itself (`QuantizableModel.blockHessians`): each named layer's Hessian
 * (already the mean `X^T X / tokens`) and the block's token count; other layers throw as an unobserved one would.
 */
export function givenStatistics(given: BlockHessians): Pick<StatisticsCollector, 'statistics' | 'release'> {
  const hessians = new Map(given.hessians);
  const released = new Set<string>();
  return {
    statistics(name: string): LayerStatistics {
      if (released.has(name)) throw new InvalidArgumentError('layer', `the statistics of '${name}' were released by the step (releaseStatistics) and cannot be read again`);
      const hessian = hessians.get(name);
      if (!hessian) throw new InvalidArgumentError('layer', `no calibration inputs were observed for '${name}'`);
      return { tokens: given.tokens, hessian };
    },
    release(name: string): void {
      if (hessians.delete(name)) released.add(name);
    },
  };
}
