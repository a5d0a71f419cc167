import { expect } from 'vitest';

// No import of '@bitsmith/core' here: core's own tests use this file, and core's type-check runs before its build.
/** What these helpers read of core's `InvalidArgumentError`. */
export interface InvalidArgumentError extends Error {
  readonly code: 'invalid-argument';
  readonly argument: string;
}

/** Core's `InvalidArgumentError.isInstance`: the `Symbol.for('bitsmith.error')` marker and the code. */
function isInvalidArgumentError(e: unknown): e is InvalidArgumentError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[Symbol.for('bitsmith.error')] === true && (e as { code?: unknown }).code === 'invalid-argument';
}

/** Test support: the `InvalidArgumentError` a call throws; fails the test when it throws nothing or another error. */
export function optionError(call: () => unknown): InvalidArgumentError {
  try {
    call();
  } catch (e) {
    if (isInvalidArgumentError(e)) return e;
    throw e;
  }
  throw new Error('expected an InvalidArgumentError; the call returned');
}

/**
 * Test support: asserts that a factory call is refused before any work with an `InvalidArgumentError` whose
 * `argument` is the option's path and whose message starts with it (and matches `words` when given).
 */
export function expectRefused(call: () => unknown, argument: string, words?: RegExp): InvalidArgumentError {
  const error = optionError(call);
  expect(error.argument).toBe(argument);
  expect(error.message.startsWith(`${argument}: `), error.message).toBe(true);
  if (words) expect(error.message).toMatch(words);
  return error;
}

/** Test support: an options object as plain JavaScript would pass it (no compile-time check). */
export const untyped = (options: unknown): never => options as never;
