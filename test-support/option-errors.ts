import { InvalidArgumentError } from '@bitsmith/core';
import { expect } from 'vitest';

/** Test support: the `InvalidArgumentError` a call throws; fails the test when it throws nothing or another error. */
export function optionError(call: () => unknown): InvalidArgumentError {
  try {
    call();
  } catch (e) {
    if (InvalidArgumentError.isInstance(e)) return e;
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
