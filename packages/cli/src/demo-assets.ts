import { BitsmithError } from '@bitsmith/core';
import type * as DemoAssets from '@bitsmith/demo-assets';

/** `@bitsmith/demo-assets` (the demo model and texts) is not installed; `bitsmith main` and a bare `survey` need it. */
export class DemoAssetsMissingError extends BitsmithError {
  constructor(what: string) {
    super('demo-assets-missing', `${what} needs the demo model and texts, which live in their own package: run \`npm install @bitsmith/demo-assets\` (or pass --model)`);
    this.name = 'DemoAssetsMissingError';
  }
  /** True for a DemoAssetsMissingError of any copy of this package (checked by marker and code, not by prototype). */
  static override isInstance(error: unknown): error is DemoAssetsMissingError {
    return BitsmithError.isInstance(error) && error.code === 'demo-assets-missing';
  }
}

/**
 * Loads `@bitsmith/demo-assets`, an optional peer of the CLI (71 MB of model and texts that only the demo uses).
 *
 * @param what The command that needs it, for the error message.
 * @throws DemoAssetsMissingError when the package is not installed.
 */
export async function loadDemoAssets(what: string): Promise<typeof DemoAssets> {
  try {
    return await import('@bitsmith/demo-assets');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new DemoAssetsMissingError(what);
    throw error;
  }
}
