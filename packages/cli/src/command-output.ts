import { InvalidArgumentError } from '@bitsmith/core';

/** Where a command writes: standard output by default; tests pass their own sink. */
export interface CommandOutput {
  /** Writes text to standard output. Default `process.stdout.write`. */
  stdout?: (text: string) => void;
  /** Writes progress and notes to standard error. Default `process.stderr.write`. */
  stderr?: (text: string) => void;
}

/** Resolves the sinks of a {@link CommandOutput}. */
export function outputSinks(output: CommandOutput = {}): Required<CommandOutput> {
  return {
    stdout: output.stdout ?? ((text) => void process.stdout.write(text)),
    stderr: output.stderr ?? ((text) => void process.stderr.write(text)),
  };
}

/**
 * Parses an integer option of at least `minimum`, throwing an {@link OptionError} that names the option.
 *
 * @example
 * ```ts
 * const ctx = parseIntegerOption('--ctx', '128', 2); // 128
 * ```
 */
export function parseIntegerOption(name: string, value: string, minimum: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < minimum) throw new OptionError(name, `must be an integer >= ${minimum}, got "${value}"`);
  return n;
}

/** An invalid command-line option value (a `BitsmithError`, so the CLI prints it without a stack trace). */
export class OptionError extends InvalidArgumentError {
  constructor(argument: string, message: string, options?: { cause?: unknown }) {
    super(argument, message, options);
    this.name = 'OptionError';
  }
}
