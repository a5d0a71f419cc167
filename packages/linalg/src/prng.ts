/**
 * A small seeded pseudo-random generator: xoshiro128** (Blackman and Vigna, arXiv:1805.01407) seeded through
 * splitmix32. Deterministic across platforms; never uses `Math.random`.
 */
export interface Random {
  /** A uniform float64 in `[0, 1)` with 53 random bits. */
  uniform(): number;
  /** A standard normal variate (Box-Muller, both values of each pair used). */
  normal(): number;
  /** A uniform 32-bit unsigned integer. */
  uint32(): number;
}

/**
 * Creates a seeded {@link Random}. The same seed gives the same sequence everywhere.
 *
 * @param seed - Any finite number; its integer bits are mixed (default 0).
 * @example
 * ```ts
 * const random = createRandom(42);
 * const x = random.normal();
 * ```
 */
export function createRandom(seed = 0): Random {
  let s = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
  const hi = Math.floor(Math.abs(seed) / 4294967296) >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s ^ hi;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  if ((a | b | c | d) === 0) a = 1;
  const next = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  let spare = 0;
  let hasSpare = false;
  const uniform = (): number => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  return {
    uint32: next,
    uniform,
    normal() {
      if (hasSpare) {
        hasSpare = false;
        return spare;
      }
      let u = 0;
      while (u === 0) u = uniform();
      const v = uniform();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      hasSpare = true;
      return r * Math.cos(2 * Math.PI * v);
    },
  };
}

/**
 * mulberry32: a tiny seeded uniform generator on `[0, 1)` with 32 bits of state, for cheap index draws (bootstrap
 * resampling, random window offsets). Its streams are part of recorded protocols (`--calibration-seed`, perplexity
 * intervals), so it is kept as is; use {@link createRandom} for anything else.
 *
 * @example
 * ```ts
 * const next = mulberry32(7);
 * const index = Math.floor(next() * n);
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Fills `out` with standard normal variates from a seeded generator and returns it.
 *
 * @example
 * ```ts
 * const omega = fillNormal(new Float64Array(1024 * 74), 7);
 * ```
 */
export function fillNormal<T extends Float32Array | Float64Array>(out: T, seed: number): T {
  const random = createRandom(seed);
  for (let i = 0; i < out.length; i++) out[i] = random.normal();
  return out;
}
