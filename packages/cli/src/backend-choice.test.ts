import { describe, expect, it } from 'vitest';
import { backendChoice, llamaParameterCount, WEBGPU_MIN_HIDDEN_SIZE } from './backend-choice.js';

const llama8b = { hiddenSize: 4096, intermediateSize: 14336, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 8, headDim: 128, vocabSize: 128256, tieWordEmbeddings: false };

describe('backendChoice', () => {
  it("counts Llama-3-8B's parameters as Hugging Face does (8,030,261,248 less the 266,240 norm gains)", () => {
    expect(llamaParameterCount(llama8b)).toBe(8_030_261_248 - 65 * 4096);
  });

  it('tries webgpu for a large model, not for a small one, and says how to override', () => {
    const big = backendChoice({ hiddenSize: 4096, parameters: 8e9 }, {});
    expect(big.probeWebgpu).toBe(true);
    expect(big.reason).toContain('BITSMITH_BACKEND=wasm');
    const small = backendChoice({ hiddenSize: 512, parameters: 29e6 }, {});
    expect(small.probeWebgpu).toBe(false);
    expect(small.reason).toContain('BITSMITH_BACKEND=webgpu');
  });

  it('draws the line at hidden size 2048 or 1e9 parameters', () => {
    expect(backendChoice({ hiddenSize: WEBGPU_MIN_HIDDEN_SIZE, parameters: 5e8 }, {}).probeWebgpu).toBe(true);
    expect(backendChoice({ hiddenSize: WEBGPU_MIN_HIDDEN_SIZE - 1, parameters: 999_999_999 }, {}).probeWebgpu).toBe(false);
    expect(backendChoice({ hiddenSize: 1536, parameters: 1e9 }, {}).probeWebgpu).toBe(true);
  });

  it('leaves the decision to BITSMITH_BACKEND and BITSMITH_WEBGPU when set', () => {
    expect(backendChoice({ hiddenSize: 4096, parameters: 8e9 }, { BITSMITH_BACKEND: 'wasm' }).probeWebgpu).toBe(false);
    expect(backendChoice({ hiddenSize: 64, parameters: 1e5 }, { BITSMITH_WEBGPU: '1' }).probeWebgpu).toBe(true);
    expect(backendChoice({ hiddenSize: 4096, parameters: 8e9 }, { BITSMITH_WEBGPU: '0' }).probeWebgpu).toBe(false);
    expect(backendChoice({ hiddenSize: 4096, parameters: 8e9 }, { BITSMITH_BACKEND: ' ' }).probeWebgpu).toBe(true);
  });
});
