import { InvalidFileError } from '@bitsmith/core';
import { GGUF_MAGIC } from './gguf-constants.js';
import { ggufLlamaTensorName } from './gguf-llama-export.js';
import { parseGguf } from './gguf-reader.js';
import { encodeGguf } from './gguf-writer.js';

/**
 * llama.cpp's importance matrix ("imatrix", tools/imatrix): for each weight that a linear layer multiplies, the sum of
 * the squared activations feeding each input column over the calibration tokens, and the token count. The mean
 * `sums[j] / count` is the diagonal of the layer's Hessian `X^T X` over the token count, which is what
 * `llama-quantize --imatrix` weighs each column's rounding error by.
 */
export interface ImatrixEntry {
  /** Sum over tokens of x_j^2, one per input column. */
  readonly sums: Float32Array;
  /** Tokens that were summed (for a legacy `.dat` file: its call count, so that sums / count is still the mean). */
  readonly count: number;
}

/** An importance matrix: entries by llama.cpp weight name (`blk.0.attn_q.weight`), and where it came from. */
export interface Imatrix {
  readonly entries: ReadonlyMap<string, ImatrixEntry>;
  /** Calibration files (`imatrix.datasets`). */
  readonly datasets: readonly string[];
  /** Chunks (calibration sequences) summed (`imatrix.chunk_count`). */
  readonly chunkCount: number;
  /** Tokens per chunk (`imatrix.chunk_size`). */
  readonly chunkSize: number;
}

/**
 * The per-column importance weights `llama-quantize` derives from an imatrix (`sums / count`), by weight name: what
 * `saveGgufModel`'s `importance` option and the encoders' `importance` take.
 *
 * @example
 * ```ts
 * const importance = imatrixImportance(await readImatrix('model.imatrix.gguf'));
 * await saveGgufModel(out, graph, dir, { type: 'Q4_K_M', importance });
 * ```
 */
export function imatrixImportance(imatrix: Imatrix): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, e] of imatrix.entries) {
    const w = new Float32Array(e.sums.length);
    for (let j = 0; j < w.length; j++) w[j] = e.count > 0 ? e.sums[j]! / e.count : 1;
    out.set(name, w);
  }
  return out;
}

const sortedNames = (imatrix: Imatrix): string[] => [...imatrix.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * Encodes an imatrix in llama.cpp's GGUF layout (the default of `llama-imatrix` since 2025): `general.type =
 * "imatrix"`, `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`, and per weight (sorted by name) an F32
 * tensor `<name>.in_sum2` (ne `[columns, 1]`) and `<name>.counts` (ne `[1, 1]`).
 *
 * @example
 * ```ts
 * await writeFile('imatrix.gguf', encodeImatrixGguf(imatrix));
 * ```
 */
export function encodeImatrixGguf(imatrix: Imatrix): Uint8Array {
  const tensors = sortedNames(imatrix).flatMap((name) => {
    const e = imatrix.entries.get(name)!;
    return [
      { name: `${name}.in_sum2`, shape: [1, e.sums.length], type: 'F32' as const, data: new Uint8Array(Float32Array.from(e.sums).buffer) },
      { name: `${name}.counts`, shape: [1, 1], type: 'F32' as const, data: new Uint8Array(Float32Array.of(e.count).buffer) },
    ];
  });
  return encodeGguf({
    metadata: [
      ['general.type', { type: 'string', value: 'imatrix' }],
      ['imatrix.datasets', { type: 'array', itemType: 'string', value: [...imatrix.datasets] }],
      ['imatrix.chunk_count', { type: 'uint32', value: imatrix.chunkCount }],
      ['imatrix.chunk_size', { type: 'uint32', value: imatrix.chunkSize }],
    ],
    tensors,
  });
}

/**
 * Encodes an imatrix in llama.cpp's legacy `.dat` layout (`llama-imatrix --output-format dat`): int32 entry count;
 * per entry (sorted by name) int32 name length, the name, int32 ncall, int32 value count, float32 values =
 * `sums / count * ncall` with `ncall = ceil(count / chunkSize)`; then int32 chunk count, int32 length and the last
 * dataset's name. `llama-quantize` divides the values by ncall again.
 *
 * @example
 * ```ts
 * await writeFile('imatrix.dat', encodeImatrixDat(imatrix));
 * ```
 */
export function encodeImatrixDat(imatrix: Imatrix): Uint8Array {
  const enc = new TextEncoder();
  const names = sortedNames(imatrix);
  const dataset = enc.encode(imatrix.datasets.at(-1) ?? '');
  let size = 4 + 8 + dataset.length;
  const encodedNames = names.map((n) => enc.encode(n));
  for (let i = 0; i < names.length; i++) size += 12 + encodedNames[i]!.length + 4 * imatrix.entries.get(names[i]!)!.sums.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  const i32 = (v: number) => {
    view.setInt32(o, v, true);
    o += 4;
  };
  i32(names.length);
  for (let i = 0; i < names.length; i++) {
    const e = imatrix.entries.get(names[i]!)!;
    i32(encodedNames[i]!.length);
    out.set(encodedNames[i]!, o);
    o += encodedNames[i]!.length;
    const ncall = imatrix.chunkSize > 0 ? Math.max(1, Math.ceil(e.count / imatrix.chunkSize)) : 1;
    i32(ncall);
    i32(e.sums.length);
    for (let j = 0; j < e.sums.length; j++) {
      view.setFloat32(o, e.count > 0 ? Math.fround(Math.fround(e.sums[j]! / e.count) * ncall) : 1, true);
      o += 4;
    }
  }
  i32(imatrix.chunkCount);
  i32(dataset.length);
  out.set(dataset, o);
  return out;
}

/**
 * Reads an imatrix in either of llama.cpp's layouts (GGUF, or legacy `.dat`), as `llama-quantize` does. Legacy
 * entries come back with `count = ncall`, so `sums / count` is the mean either way.
 *
 * @throws InvalidFileError when the bytes are neither layout.
 * @example
 * ```ts
 * const imatrix = parseImatrix(await readFile('imatrix.dat'));
 * ```
 */
export function parseImatrix(bytes: Uint8Array, path = 'imatrix'): Imatrix {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength >= 4 && view.getUint32(0, true) === GGUF_MAGIC) {
    const file = parseGguf(bytes);
    const entries = new Map<string, ImatrixEntry>();
    for (const t of file.tensors) {
      if (!t.name.endsWith('.in_sum2')) continue;
      const name = t.name.slice(0, -'.in_sum2'.length);
      if (!file.tensors.some((c) => c.name === `${name}.counts`)) throw new InvalidFileError(path, `${name} has in_sum2 but no counts`);
      entries.set(name, { sums: file.tensorValues(t.name), count: Math.round(file.tensorValues(`${name}.counts`)[0]!) });
    }
    const md = (k: string) => file.metadata.get(k);
    const datasets = md('imatrix.datasets');
    return {
      entries,
      datasets: datasets?.type === 'array' && datasets.itemType === 'string' ? [...datasets.value] : [],
      chunkCount: Number(md('imatrix.chunk_count')?.value ?? 0),
      chunkSize: Number(md('imatrix.chunk_size')?.value ?? 0),
    };
  }
  const dec = new TextDecoder('utf-8', { fatal: true });
  let o = 0;
  const need = (n: number) => {
    if (o + n > bytes.byteLength) throw new InvalidFileError(path, `ends at byte ${bytes.byteLength}, expected ${n} more bytes at ${o}; expected a GGUF or legacy .dat imatrix`);
  };
  const i32 = () => {
    need(4);
    const v = view.getInt32(o, true);
    o += 4;
    return v;
  };
  const n = i32();
  if (n < 1) throw new InvalidFileError(path, `entry count ${n}; expected a GGUF or legacy .dat imatrix with at least one entry`);
  const entries = new Map<string, ImatrixEntry>();
  for (let i = 0; i < n; i++) {
    const len = i32();
    need(len);
    const name = dec.decode(bytes.subarray(o, o + len));
    o += len;
    const ncall = i32();
    const nval = i32();
    if (nval < 1) throw new InvalidFileError(path, `entry ${name} has ${nval} values`);
    need(4 * nval);
    const sums = new Float32Array(nval);
    for (let j = 0; j < nval; j++) sums[j] = view.getFloat32(o + 4 * j, true);
    o += 4 * nval;
    entries.set(name, { sums, count: ncall });
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (o + 8 <= bytes.byteLength) {
    chunkCount = i32();
    const len = i32();
    if (len > 0 && o + len <= bytes.byteLength) datasets.push(dec.decode(bytes.subarray(o, o + len)));
  }
  return { entries, datasets, chunkCount, chunkSize: 0 };
}

/**
 * Builds an imatrix from per-layer sums of squared inputs keyed by Hugging Face linear-layer names
 * (`model.layers.0.self_attn.q_proj`; `linearInputSquareSums` of `@bitsmith/models`), under llama.cpp's weight names
 * (`blk.0.attn_q.weight`). Layers llama.cpp does not collect (the LM head, names it does not know) are left out, as
 * `llama-imatrix` leaves out `output.weight` by default.
 *
 * @param sums Per layer: `sums[j]` = sum over tokens of x_j^2, and the token count.
 * @param info `datasets` (calibration file names), `chunkCount` (sequences), `chunkSize` (tokens per sequence).
 * @example
 * ```ts
 * const imatrix = imatrixFromSquareSums(await linearInputSquareSums(graph, sequences), { datasets: ['calib.txt'], chunkCount: 64, chunkSize: 512 });
 * ```
 */
export function imatrixFromSquareSums(
  sums: ReadonlyMap<string, { readonly sums: ArrayLike<number>; readonly tokens: number }>,
  info: { readonly datasets: readonly string[]; readonly chunkCount: number; readonly chunkSize: number },
): Imatrix {
  const entries = new Map<string, ImatrixEntry>();
  for (const [layer, s] of sums) {
    const name = ggufLlamaTensorName(`${layer}.weight`);
    if (name === undefined || !name.startsWith('blk.')) continue;
    entries.set(name, { sums: Float32Array.from(s.sums), count: s.tokens });
  }
  return { entries, datasets: info.datasets, chunkCount: info.chunkCount, chunkSize: info.chunkSize };
}
