import { afterEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@bitsmith/core';
import { BackendUnavailableError } from './backend-unavailable-error.js';
import { createBackend, defaultBackend, disposeDefaultBackend } from './select-backend.js';

describe('backend selection', () => {
  const saved = process.env.BITSMITH_BACKEND;
  afterEach(async () => {
    if (saved === undefined) delete process.env.BITSMITH_BACKEND;
    else process.env.BITSMITH_BACKEND = saved;
    await disposeDefaultBackend();
  });

  it('createBackend("js") gives a fresh js backend', async () => {
    const a = await createBackend('js');
    const b = await createBackend('js');
    expect(a.name).toBe('js');
    expect(a).not.toBe(b);
  });

  it('defaultBackend is shared and honours BITSMITH_BACKEND', async () => {
    process.env.BITSMITH_BACKEND = 'js';
    const a = await defaultBackend();
    expect(a.name).toBe('js');
    expect(await defaultBackend()).toBe(a);
    await disposeDefaultBackend();
    delete process.env.BITSMITH_BACKEND;
    const b = await defaultBackend();
    expect(['ort', 'wasm', 'js']).toContain(b.name);
  });

  it('tries webgpu by default in Node only when BITSMITH_WEBGPU=1 asks for it', async () => {
    const savedWebgpu = process.env.BITSMITH_WEBGPU;
    delete process.env.BITSMITH_BACKEND;
    try {
      delete process.env.BITSMITH_WEBGPU;
      const cpuDefault = (await defaultBackend()).name;
      expect(cpuDefault).not.toBe('webgpu');
      await disposeDefaultBackend();
      const adapter = await createBackend('webgpu').then(
        async (b) => (await b.dispose(), true),
        () => false,
      );
      process.env.BITSMITH_WEBGPU = '1';
      // With an adapter the default becomes webgpu; without one, selection falls through to the same CPU backend.
      expect((await defaultBackend()).name).toBe(adapter ? 'webgpu' : cpuDefault);
    } finally {
      if (savedWebgpu === undefined) delete process.env.BITSMITH_WEBGPU;
      else process.env.BITSMITH_WEBGPU = savedWebgpu;
    }
  });

  it('rejects unknown names', async () => {
    await expect(createBackend('cuda' as never)).rejects.toSatisfy((e) => InvalidArgumentError.isInstance(e));
    process.env.BITSMITH_BACKEND = 'cuda';
    await expect(defaultBackend()).rejects.toSatisfy((e) => InvalidArgumentError.isInstance(e));
  });

  it('BackendUnavailableError is recognised by marker', () => {
    const e = new BackendUnavailableError('ort', 'missing');
    expect(BackendUnavailableError.isInstance(e)).toBe(true);
    expect(e.message).toMatch(/'ort'/);
  });
});
