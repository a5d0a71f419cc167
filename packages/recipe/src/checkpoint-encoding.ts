import { BitsmithError } from '@bitsmith/core';

/** Typed-array constructors a checkpoint value may hold, by name. */
const TYPED = {
  Float32Array,
  Float64Array,
  Int8Array,
  Int16Array,
  Int32Array,
  Uint8Array,
  Uint16Array,
  Uint32Array,
  Uint8ClampedArray,
  BigInt64Array,
  BigUint64Array,
} as const;
type TypedName = keyof typeof TYPED;
type AnyTyped = InstanceType<(typeof TYPED)[TypedName]>;

/** A checkpoint file is damaged or was written by an incompatible version: what is wrong and where. */
export class CheckpointFileError extends BitsmithError {
  /** The file (or store entry) that could not be read. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('checkpoint-file', `${path}: ${message}`, options);
    this.name = 'CheckpointFileError';
    this.path = path;
  }
  /** True when `error` is a {@link CheckpointFileError} (checked by code, so it works across package copies). */
  static override isInstance(error: unknown): error is CheckpointFileError {
    return BitsmithError.isInstance(error) && error.code === 'checkpoint-file';
  }
}

/**
 * A value split into a JSON skeleton and the typed arrays it holds: `json` refers to `arrays[i]` as
 * `{ "$typed": name, "index": i }`. Maps, Sets, `undefined` inside arrays and non-finite numbers survive the trip
 * (`JSON.stringify` alone would drop or null them); a typed array referenced twice is stored once and comes back as
 * one array. Functions and class instances other than these are refused.
 */
export interface EncodedValue {
  readonly json: string;
  readonly arrays: readonly AnyTyped[];
}

function typedName(value: ArrayBufferView): TypedName | undefined {
  for (const name of Object.keys(TYPED) as TypedName[]) if (value instanceof TYPED[name]) return name;
  return undefined;
}

/**
 * Splits `value` (plain objects, arrays, strings, numbers, booleans, null, undefined, Maps, Sets, typed arrays) into
 * a JSON skeleton and its typed arrays, for {@link decodeValue} to rebuild exactly.
 *
 * @throws CheckpointFileError for a function, a symbol or an object of another class (naming where it is).
 * @example
 * ```ts
 * const { json, arrays } = encodeValue({ hidden: { states: new Float32Array(8), lengths: [4, 4] } });
 * decodeValue(json, arrays); // an equal value
 * ```
 */
export function encodeValue(value: unknown): EncodedValue {
  const arrays: AnyTyped[] = [];
  const seen = new Map<AnyTyped, number>();
  const walk = (v: unknown, where: string): unknown => {
    if (v === undefined) return { $undefined: true };
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? (Object.is(v, -0) ? { $number: '-0' } : v) : { $number: String(v) };
    if (typeof v === 'bigint') return { $bigint: v.toString() };
    if (typeof v !== 'object') throw new CheckpointFileError(where, `a ${typeof v} cannot be stored in a checkpoint`);
    if (ArrayBuffer.isView(v)) {
      const name = typedName(v);
      if (!name) throw new CheckpointFileError(where, `a ${v.constructor.name} cannot be stored in a checkpoint`);
      let index = seen.get(v as AnyTyped);
      if (index === undefined) {
        index = arrays.push(v as AnyTyped) - 1;
        seen.set(v as AnyTyped, index);
      }
      return { $typed: name, index };
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${where}[${i}]`));
    if (v instanceof Map) return { $map: [...v].map(([k, x], i) => [walk(k, `${where}.key${i}`), walk(x, `${where}.${String(k)}`)]) };
    if (v instanceof Set) return { $set: [...v].map((x, i) => walk(x, `${where}{${i}}`)) };
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) throw new CheckpointFileError(where, `an object of class ${(v as object).constructor?.name ?? '?'} cannot be stored in a checkpoint (plain data only)`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === 'function') throw new CheckpointFileError(`${where}.${k}`, 'a function cannot be stored in a checkpoint');
      out[k] = walk(x, `${where}.${k}`);
    }
    // A key that looks like one of ours is escaped so that decoding never mistakes data for a marker.
    return Object.keys(out).some((k) => k.startsWith('$')) ? { $object: out } : out;
  };
  const json = JSON.stringify(walk(value, 'value'));
  return { json, arrays };
}

/**
 * Rebuilds a value from {@link encodeValue}'s skeleton and arrays (the arrays are used as they are, not copied).
 *
 * @throws CheckpointFileError when the skeleton names an array that is missing or of another type.
 */
export function decodeValue(json: string, arrays: readonly ArrayBufferView[], where = 'checkpoint'): unknown {
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(walk);
    const o = v as Record<string, unknown>;
    if (o.$undefined === true) return undefined;
    if (typeof o.$number === 'string') return Number(o.$number);
    if (typeof o.$bigint === 'string') return BigInt(o.$bigint);
    if (typeof o.$typed === 'string') {
      const array = arrays[o.index as number];
      const ctor = TYPED[o.$typed as TypedName];
      if (!array || !ctor || !(array instanceof ctor)) throw new CheckpointFileError(where, `array ${String(o.index)} (${o.$typed}) is missing or of another type`);
      return array;
    }
    if (Array.isArray(o.$map)) return new Map((o.$map as [unknown, unknown][]).map(([k, x]) => [walk(k), walk(x)]));
    if (Array.isArray(o.$set)) return new Set((o.$set as unknown[]).map(walk));
    const fields = o.$object !== null && typeof o.$object === 'object' ? (o.$object as Record<string, unknown>) : o;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(fields)) out[k] = walk(x);
    return out;
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (cause) {
    throw new CheckpointFileError(where, `its index is not valid JSON (${(cause as Error).message})`, { cause });
  }
  return walk(parsed);
}

/** The constructor of a typed array by its name in an encoded skeleton. @internal */
export function typedArrayConstructor(name: string): (typeof TYPED)[TypedName] | undefined {
  return TYPED[name as TypedName];
}

/** The name of a typed array's constructor, as {@link encodeValue} records it. @internal */
export function typedArrayName(array: ArrayBufferView): string {
  const name = typedName(array);
  if (!name) throw new CheckpointFileError('value', `a ${array.constructor.name} cannot be stored in a checkpoint`);
  return name;
}
