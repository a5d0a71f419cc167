import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { optionError as thrown, untyped } from '../../../test-support/option-errors.js';
import { callbackOption, checkOptions, describeIssue, factoryOptions, formatOption, granularityOption, problemText, signalOption } from './factory-options.js';
import { llmInt8 } from './llm-int8.js';
import { parseFormat } from './number-format.js';
import { rtn } from './rtn.js';


describe('describeIssue', () => {
  const schema = z.strictObject({
    rank: z.number().int().positive(),
    svd: z.strictObject({ method: z.enum(['exact', 'randomized']).optional() }).optional(),
    candidates: z.array(z.strictObject({ format: z.string(), label: z.string().optional() })).optional(),
  });
  const words = (value: unknown) => schema.safeParse(value).error!.issues.flatMap((i) => describeIssue(i, schema)).map(problemText);

  it('names each unknown key with the keys accepted at its path, nested objects and list items included', () => {
    expect(words({ rank: 1, rnak: 2, foo: 3 })).toEqual(['rnak: unknown option; expected one of rank, svd, candidates', 'foo: unknown option; expected one of rank, svd, candidates']);
    expect(words({ rank: 1, svd: { methd: 'exact' } })).toEqual(['svd.methd: unknown option; expected one of method']);
    expect(words({ rank: 1, candidates: [{ format: 'int4' }, { format: 'int3', lable: 'x' }] })).toEqual(['candidates[1].lable: unknown option; expected one of format, label']);
  });

  it('says a required option is missing and what it expects; wrong values keep zod\'s words with their path', () => {
    expect(words({})).toEqual(['rank: missing; expected number']);
    expect(words({ rank: 0 })).toEqual(['rank: Too small: expected number to be >0']);
    expect(words({ rank: 'eight' })).toEqual(['rank: Invalid input: expected number, received string']);
    expect(words({ rank: 2, svd: { method: 'qr' } })).toEqual(['svd.method: Invalid option: expected one of "exact"|"randomized"']);
    expect(words({ rank: 2, candidates: [{}] })).toEqual(['candidates[0].format: missing; expected string']);
  });
});

describe('option schemas shared by factories', () => {
  it('format: every name parseFormat reads, the FormatSpec objects it returns, and hand-written specs pass', () => {
    for (const name of ['int4', 'int3-asym', 'int8', 'nf4', 'fp4-e2m1', 'fp8-e4m3', 'mxfp4', 'nvfp4', 'ternary', 'binary']) {
      expect(formatOption.safeParse(name).success, name).toBe(true);
      expect(formatOption.safeParse(parseFormat(name)).success, name).toBe(true);
    }
    expect(formatOption.safeParse({ type: 'lut', values: [-1, 0, 0.5, 1] }).success).toBe(true);
    expect(formatOption.safeParse({ type: 'float', exponentBits: 3, mantissaBits: 2, specials: 'none' }).success).toBe(true);
  });

  it('format: unknown names, bad specs and other types are refused with what is expected', () => {
    const message = (v: unknown) => formatOption.safeParse(v).error!.issues.flatMap((i) => describeIssue(i)).map(problemText).join('; ');
    expect(message('int9')).toMatch(/^\(top level\): unknown format; expected a name such as int4/);
    expect(message({ type: 'int', bits: 12, symmetric: true })).toMatch(/bits: got 12; expected an integer from 1 to 8/);
    expect(message({ type: 'lut', values: [1] })).toMatch(/lookup table needs 2 to 65536 values/);
    expect(message({ type: 'mx', element: 'fp3' })).toMatch(/element: Invalid option: expected one of "fp8-e4m3"/);
    expect(message({ type: 'int4' })).toMatch(/FormatSpec object with type int, float, lut, .*got type "int4"/);
    expect(message(4)).toMatch(/expected a format name such as int4 or nf4, or a FormatSpec object .*got number/);
  });

  it('granularity: the four core shapes pass; strings and a groupSize key are refused with the code form', () => {
    for (const g of [{ type: 'tensor' }, { type: 'channel' }, { type: 'group', size: 32 }, { type: 'block', rows: 16, columns: 32 }]) expect(granularityOption.safeParse(g).success).toBe(true);
    expect(granularityOption.safeParse('channel').error!.issues[0]!.message).toMatch(/expected a granularity object such as \{ type: 'channel' \}.*recipe-file shorthand/);
    expect(granularityOption.safeParse({ type: 'group', size: 0 }).success).toBe(false);
    expect(granularityOption.safeParse({ type: 'group', size: 32, groupSize: 32 }).success).toBe(false);
    expect(granularityOption.safeParse({ type: 'row' }).error!.issues[0]!.message).toMatch(/expected type 'tensor', 'channel', 'group' \(with size\) or 'block'/);
  });

  it('signals and callbacks pass as given', () => {
    const schema = factoryOptions<{ signal?: AbortSignal; onDone?: () => void }>({ signal: signalOption.optional(), onDone: callbackOption<() => void>().optional() });
    const options = { signal: new AbortController().signal, onDone: () => undefined };
    expect(checkOptions('demo', schema, options)).toBe(options);
    expect(thrown(() => checkOptions('demo', schema, untyped({ signal: {} }))).message).toBe('signal: expected an AbortSignal (new AbortController().signal) (in the options of demo)');
    expect(thrown(() => checkOptions('demo', schema, untyped({ onDone: 'later' }))).message).toBe('onDone: expected a function (in the options of demo)');
  });
});

describe('rtn and llmInt8 check their options on entry', () => {
  it('rtn: unknown key, wrong type, out-of-range value and missing format name the option', () => {
    expect(thrown(() => rtn(untyped({ format: 'int4', groupsize: 32 }))).argument).toBe('groupsize');
    const wrongType = thrown(() => rtn(untyped({ format: 'int4', rangeSearch: 'yes' })));
    expect(wrongType.argument).toBe('rangeSearch');
    expect(wrongType.message).toMatch(/^rangeSearch: matches none of the accepted forms \(Invalid input: expected boolean, received string \| Invalid input: expected object, received string\) \(in the options of rtn\)$/);
    const range = thrown(() => rtn({ format: 'int4', rangeSearch: { minShrink: 1.5 } }));
    expect(range.argument).toBe('rangeSearch.minShrink');
    expect(range.message).toBe('rangeSearch.minShrink: Too big: expected number to be <=1 (in the options of rtn)');
    expect(thrown(() => rtn(untyped({ format: 'int4', granularity: { type: 'group', size: 32.5 } }))).argument).toBe('granularity.size');
    expect(thrown(() => rtn(untyped({ format: 'int4', scaleEncoding: 'fp16' }))).message).toMatch(/^scaleEncoding: Invalid option: expected one of "float32"/);
    expect(thrown(() => rtn(untyped({}))).argument).toBe('format');
    expect(thrown(() => rtn(undefined as never)).message).toBe('options: rtn expects an options object; got undefined');
  });

  it('rtn: recipe-file shorthands are explained, unknown keys first', () => {
    const error = thrown(() => rtn(untyped({ bits: 4, groupSize: 32 })));
    expect(error.argument).toBe('bits');
    expect(error.message).toContain("bits: unknown option; expected one of format, granularity, scaleEncoding, rangeSearch (bits is a recipe-file shorthand; in code write format: 'int4')");
    expect(error.message).toContain("groupSize is a recipe-file shorthand; in code write granularity: { type: 'group', size: 32 }");
  });

  it('llmInt8: unknown key, wrong type and out-of-range value name the option', () => {
    expect(thrown(() => llmInt8(untyped({ treshold: 6 }))).argument).toBe('treshold');
    expect(thrown(() => llmInt8(untyped({ topK: '4' }))).message).toBe('topK: Invalid input: expected number, received string (in the options of llmInt8)');
    expect(thrown(() => llmInt8({ threshold: -1 })).message).toBe('threshold: Too small: expected number to be >0 (in the options of llmInt8)');
    expect(thrown(() => llmInt8(untyped({ activations: { format: parseFormat('int8'), granularity: { type: 'token' } } }))).argument).toBe('activations');
    expect(() => llmInt8({ threshold: 4, format: 'int8', granularity: { type: 'channel' }, activations: { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true } })).not.toThrow();
  });
});
