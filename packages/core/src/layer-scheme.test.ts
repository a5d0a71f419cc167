import { describe, expect, it } from 'vitest';
import { resolveLayerScheme, schemeOptions } from './layer-scheme.js';
import { parseFormat } from './number-format.js';

describe('resolveLayerScheme', () => {
  const group32 = { type: 'group', size: 32 } as const;

  it('without an assignment: the step’s format (names parsed), granularity and scale encoding', () => {
    const s = resolveLayerScheme({ format: 'int4-asym', granularity: group32, scaleEncoding: 'float16' });
    expect(s).toEqual({ format: parseFormat('int4-asym'), granularity: group32, scaleEncoding: 'float16', symmetric: false, source: 'step' });
    expect(schemeOptions(s)).toEqual({ format: parseFormat('int4-asym'), granularity: group32, scaleEncoding: 'float16' });
  });

  it('an assignment replaces the format, and the granularity only when it gives one; the scale encoding stays', () => {
    const step = { format: 'int4', granularity: group32, scaleEncoding: 'float16' } as const;
    const a = resolveLayerScheme(step, { format: parseFormat('int3'), label: 'int3-g32' });
    expect(a).toEqual({ format: parseFormat('int3'), granularity: group32, scaleEncoding: 'float16', symmetric: true, source: 'assignment', label: 'int3-g32' });
    const b = resolveLayerScheme(step, { format: parseFormat('int8'), granularity: { type: 'channel' } });
    expect(b.granularity).toEqual({ type: 'channel' });
    expect(b.format).toEqual(parseFormat('int8'));
  });

  it('non-integer formats are symmetric; absent granularity stays absent', () => {
    const s = resolveLayerScheme({ format: 'nf4' });
    expect(s.symmetric).toBe(true);
    expect('granularity' in s).toBe(false);
    expect(schemeOptions(s)).toEqual({ format: parseFormat('nf4') });
  });
});
