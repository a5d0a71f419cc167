import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Tiny random-weight checkpoints made with Hugging Face transformers 5.17 by `scripts/device/make-arch-fixtures.py`
 * (bfloat16 weights, hidden 32-48, 2 layers, vocabulary 64), with the reference logits of every position of three
 * token-id prompts and 8 greedy tokens after two of them.
 */
export const ARCHITECTURE_FIXTURES = ['llama2-linear-bias', 'llama3', 'smollm2', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3-text', 'phi3', 'qwen2-moe'] as const;

/** The folder of one fixture (config.json, model.safetensors, reference.json). */
export function architectureFixtureDir(name: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'test-fixtures', 'architectures', name);
}

/** The reference outputs of a fixture, as transformers computed them in float32 (eager attention). */
export interface ArchitectureReference {
  readonly prompts: number[][];
  /** Per prompt: `[length][vocab]` logits. */
  readonly logits: number[][][];
  readonly greedy: { readonly prompt: number; readonly tokens: number[]; readonly margins: number[] }[];
  readonly transformersVersion: string;
}

/** Reads a fixture's reference.json. */
export function readArchitectureReference(name: string): ArchitectureReference {
  return JSON.parse(readFileSync(join(architectureFixtureDir(name), 'reference.json'), 'utf8')) as ArchitectureReference;
}

/** `max |a - b| / max |b|` over a prompt's logits. */
export function relativeMaxError(actual: ArrayLike<number>, expected: readonly (readonly number[])[]): number {
  let diff = 0;
  let scale = 0;
  let i = 0;
  for (const row of expected) {
    for (const e of row) {
      diff = Math.max(diff, Math.abs(actual[i++]! - e));
      scale = Math.max(scale, Math.abs(e));
    }
  }
  if (i !== actual.length) throw new Error(`logit count ${actual.length} differs from the reference's ${i}`);
  return diff / scale;
}
