import { describe, expect, it } from 'vitest';
import { clamp, roundHalfEven } from './rounding.js';

/** Independent oracle: nearest integer by floor and the exact fractional part, ties to the even neighbour. */
function oracle(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const d = x - f; // exact for doubles
  let r: number;
  if (d < 0.5) r = f;
  else if (d > 0.5) r = f + 1;
  else r = f % 2 === 0 ? f : f + 1;
  return r === 0 && (x < 0 || Object.is(x, -0)) ? -0 : r;
}

describe('roundHalfEven', () => {
  it('rounds ties to even and keeps the sign of zero, as torch.round and Math.round do', () => {
    const cases: [number, number][] = [
      [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, -0], [-1.5, -2], [-2.5, -2], [-0.3, -0], [0.3, 0], [-0, -0], [0, 0],
      [7.499999999999999, 7], [7.5, 8], [-7.5, -8], [4503599627370495.5, 4503599627370496], [2 ** 51 + 0.5, 2 ** 51], [2 ** 51 + 1.5, 2 ** 51 + 2],
      [2 ** 53, 2 ** 53], [-(2 ** 60), -(2 ** 60)], [Infinity, Infinity], [-Infinity, -Infinity],
    ];
    for (const [x, expected] of cases) expect(Object.is(roundHalfEven(x), expected), `roundHalfEven(${x}) = ${roundHalfEven(x)}, expected ${expected}`).toBe(true);
    expect(roundHalfEven(NaN)).toBeNaN();
  });

  it('agrees with the floor-based oracle on random values, halves and values near the 2^51 switch', () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const values: number[] = [];
    for (let i = 0; i < 20000; i++) values.push((random() - 0.5) * 10 ** Math.floor(random() * 18));
    for (let i = -200; i <= 200; i++) values.push(i / 2, i / 2 + Number.EPSILON * Math.abs(i), i / 2 - Number.EPSILON * Math.abs(i));
    for (let i = -8; i <= 8; i++) values.push(2 ** 51 + i / 2, -(2 ** 51) + i / 2, 2 ** 52 + i);
    for (const x of values) expect(Object.is(roundHalfEven(x), oracle(x)), `x = ${x}: got ${roundHalfEven(x)}, oracle ${oracle(x)}`).toBe(true);
  });
});

describe('clamp', () => {
  it('limits to the interval', () => {
    expect([clamp(-3, -2, 5), clamp(9, -2, 5), clamp(1, -2, 5)]).toEqual([-2, 5, 1]);
  });
});
