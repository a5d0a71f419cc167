// The python3 that the benchmarks' PyTorch references run on: BITSMITH_PYTHON when set, else the first of `python3`
// and Debian's /usr/bin/python3 (where apt-get install python3-torch puts torch) that imports torch and numpy.
import { spawnSync } from 'node:child_process';

/**
 * A python3 command that imports torch and numpy, or undefined.
 *
 * @example
 * ```js
 * const python = findPython();
 * if (!python) console.log('PyTorch reference skipped: ...');
 * ```
 */
export function findPython() {
  const candidates = process.env.BITSMITH_PYTHON ? [process.env.BITSMITH_PYTHON] : ['python3', '/usr/bin/python3'];
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  return undefined;
}
