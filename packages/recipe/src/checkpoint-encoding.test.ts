import { describe, expect, it } from 'vitest';
import { CheckpointFileError, decodeValue, encodeValue } from './checkpoint-encoding.js';

describe('encodeValue / decodeValue', () => {
  it('round-trips plain data with typed arrays, Maps, Sets, undefined, non-finite numbers and -0 exactly', () => {
    const states = Float32Array.of(1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 3e-39);
    const value = {
      hidden: { states: { dtype: 'float32', shape: [1, 5], data: states }, lengths: [5] },
      codes: Uint8Array.of(0, 255, 7),
      wide: Uint16Array.of(65535, 1),
      numbers: [Number.NaN, Number.NEGATIVE_INFINITY, -0, 0.1, undefined, null],
      maybe: undefined,
      map: new Map<string, unknown>([['a', Float64Array.of(Math.PI)], ['b', { x: 1 }]]),
      set: new Set(['x', 'y']),
      big: BigInt64Array.of(-5n),
    };
    const { json, arrays } = encodeValue(value);
    const back = decodeValue(json, arrays) as typeof value;
    expect(back).toEqual(value);
    // Bit patterns, not only values: -0 and NaN survive inside the array, -0 as a number too.
    expect(new Uint32Array((back.hidden.states.data as Float32Array).buffer)).toEqual(new Uint32Array(states.buffer));
    expect(Object.is(back.numbers[2], -0)).toBe(true);
    expect('maybe' in back).toBe(true);
    expect(back.map.get('a')).toBeInstanceOf(Float64Array);
  });

  it('stores an array referenced twice once and gives it back as one array', () => {
    const shared = Float32Array.of(1, 2, 3);
    const { json, arrays } = encodeValue({ a: shared, b: { c: shared } });
    expect(arrays).toHaveLength(1);
    const back = decodeValue(json, arrays) as { a: Float32Array; b: { c: Float32Array } };
    expect(back.a).toBe(back.b.c);
  });

  it('keeps data whose keys look like its own markers', () => {
    const value = { $typed: 'Float32Array', index: 0, $number: 'NaN', nested: { $undefined: true } };
    const { json, arrays } = encodeValue(value);
    expect(decodeValue(json, arrays)).toEqual(value);
  });

  it('refuses functions and class instances, naming where they are', () => {
    expect(() => encodeValue({ a: { f: () => 1 } })).toThrow(/value\.a\.f: a function/);
    class Opaque {}
    expect(() => encodeValue({ list: [1, new Opaque()] })).toThrow(CheckpointFileError);
    expect(() => encodeValue({ list: [1, new Opaque()] })).toThrow(/value\.list\[1\].*class Opaque/);
  });

  it('refuses a skeleton that names a missing array or one of another type', () => {
    const { json } = encodeValue({ a: Float32Array.of(1) });
    expect(() => decodeValue(json, [])).toThrow(/array 0 \(Float32Array\) is missing/);
    expect(() => decodeValue(json, [Uint8Array.of(1)])).toThrow(CheckpointFileError);
  });
});
