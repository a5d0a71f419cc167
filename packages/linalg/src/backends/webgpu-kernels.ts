/**
 * WGSL sources of the `webgpu` backend's kernels, generated per shape of tile and per transposition so that the
 * inner loops are fully unrolled with constant indices (their accumulators then live in registers).
 */

/** Tile shape of the GEMM kernel: a workgroup of `wx * wy` threads computes a `bm x bn` tile of C. */
export interface GemmTile {
  /** Threads along the columns of C. */
  readonly wx: number;
  /** Threads along the rows of C. */
  readonly wy: number;
  /** vec4s of C per thread along a row (each thread computes `4 * nv` columns, spaced `4 * wx` apart). */
  readonly nv: number;
  /** Groups of 4 rows per thread (each thread computes `4 * mv` rows, spaced `4 * wy` apart). */
  readonly mv: number;
  /** Depth of the shared-memory slice of A and B per step. */
  readonly bk: number;
}

/**
 * The default tile: 256 threads, a 128 x 128 tile of C, 8 x 8 outputs per thread, slices 8 deep. On an H200 (Dawn,
 * Vulkan) it ran float32 4096^3 at 38.1 TFLOP/s, against 32.8 with slices 16 deep and 30.8 with 64 x 64 tiles.
 */
export const DEFAULT_GEMM_TILE: GemmTile = { wx: 16, wy: 16, nv: 2, mv: 2, bk: 8 };

/** Rows and columns of C one workgroup computes. */
export function tileExtent(tile: GemmTile): { bm: number; bn: number } {
  return { bm: tile.wy * 4 * tile.mv, bn: tile.wx * 4 * tile.nv };
}

/** Byte size of the GEMM kernels' uniform block (12 four-byte words). */
export const GEMM_UNIFORM_BYTES = 48;

/**
 * `C = alpha * op(A) op(B) + beta * C` on row-major matrices with leading dimensions and element offsets (so that
 * sub-matrices of a resident buffer can be multiplied), float32 throughout, or float16 storage and arithmetic with
 * `f16`. With `upper != 0` (square C) the workgroups of tiles wholly below the diagonal return at once (a Gram
 * matrix's lower triangle is mirrored afterwards).
 */
export function gemmShader(tile: GemmTile, transA: boolean, transB: boolean, f16 = false, workgroupBytes = 16384): string {
  const { wx, wy, nv, mv, bk } = tile;
  const { bm, bn } = tileExtent(tile);
  const threads = wx * wy;
  const T = f16 ? 'f16' : 'f32';
  const aLoads = (bm * bk) / threads;
  const bLoads = (bn * bk) / threads;
  if (!Number.isInteger(aLoads) || !Number.isInteger(bLoads)) throw new Error('tile: bm * bk and bn * bk must be multiples of the thread count');
  // vec4s per k-row of As and Bs, padded by one vec4 where it fits in workgroup memory: the loads of a non-transposed
  // A (and a transposed B) store consecutive k at one row stride, which unpadded falls in the same two memory banks.
  const element = f16 ? 2 : 4;
  const padded = bk * (bm / 4 + (transA ? 0 : 1) + bn / 4 + (transB ? 1 : 0)) * 4 * element <= workgroupBytes;
  const strideA = bm / 4 + (padded && !transA ? 1 : 0);
  const strideB = bn / 4 + (padded && transB ? 1 : 0);
  const lines: string[] = [];
  if (f16) lines.push('enable f16;');
  lines.push(`
struct P { m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, aOff: u32, bOff: u32, cOff: u32, upper: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<${T}>;
@group(0) @binding(2) var<storage, read> b: array<${T}>;
@group(0) @binding(3) var<storage, read_write> c: array<${T}>;
var<workgroup> As: array<vec4<${T}>, ${bk * strideA}>;
var<workgroup> Bs: array<vec4<${T}>, ${bk * strideB}>;

fn loadA(i: u32, q: u32) -> ${T} {
  if (i >= p.m || q >= p.k) { return ${T}(0); }
  return a[p.aOff + ${transA ? 'q * p.lda + i' : 'i * p.lda + q'}];
}
fn loadB(q: u32, j: u32) -> ${T} {
  if (q >= p.k || j >= p.n) { return ${T}(0); }
  return b[p.bOff + ${transB ? 'j * p.ldb + q' : 'q * p.ldb + j'}];
}

@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wg.y * ${bm}u;
  let col0 = wg.x * ${bn}u;
  if (p.upper != 0u && row0 >= col0 + ${bn}u) { return; }
  let tx = lid.x;
  let ty = lid.y;
  let t = ty * ${wx}u + tx;`);
  // Which element of the A and B slices each of this thread's loads fetches: consecutive threads read consecutive
  // addresses of the stored (possibly transposed) matrix.
  for (let s = 0; s < aLoads; s++) {
    const e = `(t + ${s * threads}u)`;
    lines.push(transA ? `  let ai${s} = ${e} % ${bm}u; let aq${s} = ${e} / ${bm}u;` : `  let ai${s} = ${e} / ${bk}u; let aq${s} = ${e} % ${bk}u;`);
  }
  for (let s = 0; s < bLoads; s++) {
    const e = `(t + ${s * threads}u)`;
    lines.push(transB ? `  let bj${s} = ${e} / ${bk}u; let bq${s} = ${e} % ${bk}u;` : `  let bj${s} = ${e} % ${bn}u; let bq${s} = ${e} / ${bn}u;`);
  }
  for (let r = 0; r < 4 * mv; r++) for (let v = 0; v < nv; v++) lines.push(`  var acc${r}_${v} = vec4<${T}>(0);`);
  // Register prefetch: the next slice is read from global memory while the current one is multiplied.
  for (let s = 0; s < aLoads; s++) lines.push(`  var ra${s} = loadA(row0 + ai${s}, aq${s});`);
  for (let s = 0; s < bLoads; s++) lines.push(`  var rb${s} = loadB(bq${s}, col0 + bj${s});`);
  lines.push(`  for (var k0 = 0u; k0 < p.k; k0 += ${bk}u) {`);
  for (let s = 0; s < aLoads; s++) lines.push(`    As[aq${s} * ${strideA}u + ai${s} / 4u][ai${s} % 4u] = ra${s};`);
  for (let s = 0; s < bLoads; s++) lines.push(`    Bs[bq${s} * ${strideB}u + bj${s} / 4u][bj${s} % 4u] = rb${s};`);
  lines.push('    workgroupBarrier();');
  lines.push(`    let k1 = k0 + ${bk}u;`);
  lines.push(`    if (k1 < p.k) {`);
  for (let s = 0; s < aLoads; s++) lines.push(`      ra${s} = loadA(row0 + ai${s}, k1 + aq${s});`);
  for (let s = 0; s < bLoads; s++) lines.push(`      rb${s} = loadB(k1 + bq${s}, col0 + bj${s});`);
  lines.push('    }');
  lines.push(`    for (var q = 0u; q < ${bk}u; q++) {`);
  for (let h = 0; h < mv; h++) lines.push(`      let av${h} = As[q * ${strideA}u + ty + ${h * wy}u];`);
  for (let v = 0; v < nv; v++) lines.push(`      let bv${v} = Bs[q * ${strideB}u + tx + ${v * wx}u];`);
  for (let h = 0; h < mv; h++) {
    for (let e = 0; e < 4; e++) {
      const r = h * 4 + e;
      for (let v = 0; v < nv; v++) lines.push(`      acc${r}_${v} = fma(vec4<${T}>(av${h}[${e}]), bv${v}, acc${r}_${v});`);
    }
  }
  lines.push('    }');
  lines.push('    workgroupBarrier();');
  lines.push('  }');
  // Thread (tx, ty) holds rows row0 + 4 * (ty + h * wy) + e and columns col0 + 4 * (tx + v * wx) + f.
  lines.push(`  let alpha = ${T}(p.alpha);`);
  lines.push(`  let beta = ${T}(p.beta);`);
  for (let h = 0; h < mv; h++) {
    for (let e = 0; e < 4; e++) {
      const r = h * 4 + e;
      lines.push(`  {`);
      lines.push(`    let i = row0 + 4u * (ty + ${h * wy}u) + ${e}u;`);
      lines.push(`    if (i < p.m) {`);
      for (let v = 0; v < nv; v++) {
        lines.push(`      {`);
        lines.push(`        let j0 = col0 + 4u * (tx + ${v * wx}u);`);
        lines.push(`        for (var f = 0u; f < 4u; f++) {`);
        lines.push(`          let j = j0 + f;`);
        lines.push(`          if (j < p.n) {`);
        lines.push(`            let o = p.cOff + i * p.ldc + j;`);
        lines.push(`            var value = alpha * acc${r}_${v}[f];`);
        lines.push(`            if (p.beta != 0.0) { value = value + beta * c[o]; }`);
        lines.push(`            c[o] = value;`);
        lines.push(`          }`);
        lines.push(`        }`);
        lines.push(`      }`);
      }
      lines.push(`    }`);
      lines.push(`  }`);
    }
  }
  lines.push('}');
  return lines.join('\n');
}

/** Largest row segment the shared-memory FWHT kernel transforms in one workgroup (16 KiB of float32). */
export const FWHT_SEGMENT = 4096;

/** Byte size of the FWHT kernels' uniform block. */
export const FWHT_UNIFORM_BYTES = 16;

/**
 * Shared-memory Walsh-Hadamard transform of consecutive segments of `len` floats (a power of two up to
 * {@link FWHT_SEGMENT}): one workgroup per segment, all butterflies of the stages below `len` in workgroup memory,
 * the result multiplied by `scale`. Segments are numbered `wg.x + wg.y * 65535`.
 */
export function fwhtSegmentShader(threads = 256): string {
  return `
struct P { len: u32, segments: u32, scale: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
var<workgroup> s: array<f32, ${FWHT_SEGMENT}>;

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let segment = wg.x + wg.y * 65535u;
  if (segment >= p.segments) { return; }
  let base = segment * p.len;
  for (var i = lid.x; i < p.len; i += ${threads}u) { s[i] = x[base + i]; }
  workgroupBarrier();
  let half = p.len / 2u;
  for (var h = 1u; h < p.len; h *= 2u) {
    for (var q = lid.x; q < half; q += ${threads}u) {
      let i = (q / h) * 2u * h + q % h;
      let u = s[i];
      let v = s[i + h];
      s[i] = u + v;
      s[i + h] = u - v;
    }
    workgroupBarrier();
  }
  for (var i = lid.x; i < p.len; i += ${threads}u) { x[base + i] = s[i] * p.scale; }
}
`;
}

/**
 * One radix-2 stage of the Walsh-Hadamard transform in global memory (for the stages at or above
 * {@link FWHT_SEGMENT}): invocation `t` does the butterfly of pair `t` of stage `h` across all rows, then multiplies
 * by `scale` (1 except on the last stage).
 */
export const FWHT_STAGE_SHADER = `
struct P { n: u32, h: u32, pairs: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= p.pairs) { return; }
  let halfN = p.n / 2u;
  let row = t / halfN;
  let q = t % halfN;
  let i = row * p.n + (q / p.h) * 2u * p.h + q % p.h;
  let u = x[i];
  let v = x[i + p.h];
  x[i] = (u + v) * p.scale;
  x[i + p.h] = (u - v) * p.scale;
}
`;
