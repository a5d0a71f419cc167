import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bytes read from each sampled place of a weight file. */
const SAMPLE_BYTES = 1 << 16;
/** Places sampled per weight file (besides its whole safetensors header). */
const SAMPLES = 16;

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex').slice(0, 32);

/**
 * A digest of a model folder that changes when its weights or config change, without reading every byte of a
 * multi-gigabyte checkpoint: `config.json`, the shard index, and per `*.safetensors` file its name, size, whole
 * header (tensor names, dtypes, shapes, offsets) and 16 samples of 64 KiB spread evenly over the data.
 *
 * @example
 * ```ts
 * await modelDigest('../shared/models/llama-docs-29m'); // '5f0c...'
 * ```
 */
export async function modelDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const names = (await readdir(dir)).filter((n) => n === 'config.json' || n === 'model.safetensors.index.json' || n.endsWith('.safetensors')).sort();
  for (const name of names) {
    const path = join(dir, name);
    const { size } = await stat(path);
    hash.update(`${name}\0${size}\0`);
    if (!name.endsWith('.safetensors')) {
      hash.update(await readFile(path));
      continue;
    }
    const file = await open(path, 'r');
    try {
      const lengthBytes = Buffer.alloc(8);
      await file.read(lengthBytes, 0, 8, 0);
      const headerEnd = Math.min(size, 8 + Number(lengthBytes.readBigUInt64LE(0)));
      const header = Buffer.alloc(headerEnd);
      await file.read(header, 0, headerEnd, 0);
      hash.update(header);
      const sample = Buffer.alloc(SAMPLE_BYTES);
      const span = Math.max(0, size - headerEnd - SAMPLE_BYTES);
      for (let i = 0; i < SAMPLES; i++) {
        const at = headerEnd + Math.floor((span * i) / (SAMPLES - 1));
        const { bytesRead } = await file.read(sample, 0, SAMPLE_BYTES, at);
        hash.update(sample.subarray(0, bytesRead));
      }
    } finally {
      await file.close();
    }
  }
  return hash.digest('hex').slice(0, 32);
}

/** What identifies a `bitsmith quantize` run for its checkpoint (the runner adds the calibration tokens itself). */
export interface QuantizeFingerprintInputs {
  model: string;
  /** The recipe text (a preset's resolved recipe), or the preset name for presets without one. */
  recipe: string;
  calibration?: string;
  options: Record<string, unknown>;
}

/** The version of @bitsmith/cli, from the nearest package.json above this module (source or built). */
function cliVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@bitsmith/cli') return pkg.version ?? 'unknown';
    } catch {
      // not here; look further up
    }
  }
  return 'unknown';
}

/**
 * The fingerprint of a quantize run: the model folder's digest, the recipe's text, the calibration file's content and
 * the options that shape the calibration set, and the bitsmith version (numerics may change between versions).
 */
export async function quantizeFingerprint(inputs: QuantizeFingerprintInputs): Promise<Record<string, string>> {
  return {
    model: await modelDigest(inputs.model),
    recipe: sha256(inputs.recipe),
    'calibration text': inputs.calibration === undefined ? 'none' : sha256(await readFile(inputs.calibration)),
    'calibration options': JSON.stringify(inputs.options),
    'bitsmith version': cliVersion(),
  };
}

/** The checkpoint folder of an output folder: `.<name>.checkpoint` beside it. */
export function checkpointFolder(out: string): string {
  const target = resolve(out);
  return join(dirname(target), `.${basename(target)}.checkpoint`);
}
