// Generator of malformed inputs and faults for the bad-input suite (bad-inputs.test.ts). Each case builds its inputs in
// a fresh folder, runs one CLI command or API call, and states the one outcome it must have: a named error (by code
// and class name), a warning (with a message), or a correct result. The suite also checks that a failing case wrote
// nothing and that no case changed its inputs.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { createJsBackend } from '@bitsmith/linalg';
import { type Quantizer, rtn } from '@bitsmith/core';
import { encodeGguf } from '@bitsmith/formats';
import { encodeSafetensors, evaluateLanguageModel, generateGreedy, llamaQuantizableModel, loadLlamaGraph, openSafetensors } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { registerEval } from './commands/eval.js';
import { registerGenerate } from './commands/generate.js';
import { registerInspect } from './commands/inspect.js';
import { runMainJob } from './commands/main-job.js';
import { quantizeCommand } from './commands/quantize.js';
import { writeReport } from './commands/report.js';

/** What a case must end in. */
export type Expected =
  | { readonly outcome: 'error'; readonly code: string; readonly name: string; readonly message: RegExp }
  | { readonly outcome: 'warning'; readonly message: RegExp; readonly writes?: string }
  | { readonly outcome: 'result'; readonly check: (env: CaseEnv, out: string) => void; readonly writes?: string };

/** One bad input. */
export interface BadInputCase {
  readonly group: 'output' | 'nan' | 'reader' | 'input';
  readonly name: string;
  readonly expected: Expected;
  /** Builds the inputs in `env.dir` and runs; returns stdout + stderr. */
  readonly run: (env: CaseEnv) => Promise<string>;
}

/** The folder a case works in and the real data it starts from. */
export interface CaseEnv {
  readonly dir: string;
  readonly model: string;
  readonly calibration: string;
  /** A quantized compressed-tensors and a GPTQ checkpoint of the model, made once for the reader cases. */
  readonly checkpoints: { readonly compressedTensors: string; readonly gptq: string };
  /** Records the state of the case's folder once its inputs are built, just before the command runs. */
  mark(): void;
}

const error = (code: string, name: string, message: RegExp): Expected => ({ outcome: 'error', code, name, message });
const OUTPUT = (m: RegExp) => error('output-folder', 'OutputFolderError', m);
const OPTION = (m: RegExp) => error('invalid-argument', 'OptionError', m);
const INVALID_FILE = (m: RegExp, name = 'InvalidFileError') => error('invalid-file', name, m);
const MODEL_FILE = (m: RegExp) => error('invalid-file', 'ModelFileError', m);
const NON_FINITE = (m: RegExp) => error('non-finite', 'NonFiniteError', m);
const SELECTION = (m: RegExp) => error('invalid-argument', 'RecipeSelectionError', m);
const ARGUMENT = (m: RegExp) => error('invalid-argument', 'InvalidArgumentError', m);

const RTN = 'name: rtn-w4g32\nsteps:\n  - rtn: { bits: 4, groupSize: 32 }\n';

/** Runs `bitsmith <args>` in-process and returns what it printed (stdout then stderr). */
export async function cli(env: CaseEnv, args: readonly string[]): Promise<string> {
  env.mark();
  let out = '';
  const sink = { stdout: (t: string) => void (out += t), stderr: (t: string) => void (out += t) };
  const program = new Command('bitsmith').exitOverride();
  registerEval(program, sink);
  registerGenerate(program, sink);
  registerInspect(program, sink);
  await program.parseAsync(['node', 'bitsmith', ...args]);
  return out;
}

/** Runs `bitsmith quantize` in-process with small calibration (2 x 32 tokens). */
export async function quantize(env: CaseEnv, options: { recipe?: string; out?: string; model?: string; calibration?: string; save?: string; ggufType?: string; overwrite?: boolean; samples?: string; seqLen?: string }): Promise<string> {
  let out = '';
  const recipe = join(env.dir, 'recipe.yaml');
  writeFileSync(recipe, options.recipe ?? RTN);
  env.mark();
  await quantizeCommand(
    {
      model: options.model ?? env.model,
      recipe,
      calibration: options.calibration ?? env.calibration,
      out: options.out ?? join(env.dir, 'out'),
      samples: options.samples ?? '2',
      seqLen: options.seqLen ?? '32',
      ...(options.save ? { save: options.save } : {}),
      ...(options.ggufType ? { ggufType: options.ggufType } : {}),
      ...(options.overwrite ? { overwrite: true } : {}),
    },
    undefined,
    { stdout: (t) => void (out += t), stderr: (t) => void (out += t) },
  );
  return out;
}

/** Copies a model folder, optionally rewriting its weights (`edit` gets every tensor as float32 and may add some). */
export async function copyModel(from: string, to: string, edit?: (tensors: Map<string, { dtype: 'float32'; shape: number[]; data: Float32Array }>) => void): Promise<string> {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) if (f !== 'model.safetensors') copyFileSync(join(from, f), join(to, f));
  if (!edit) {
    copyFileSync(join(from, 'model.safetensors'), join(to, 'model.safetensors'));
    return to;
  }
  const file = await openSafetensors(join(from, 'model.safetensors'));
  const tensors = new Map<string, { dtype: 'float32'; shape: number[]; data: Float32Array }>();
  for (const name of file.names) {
    const t = await file.readTensor(name);
    tensors.set(name, { dtype: 'float32', shape: [...t.shape], data: t.data });
  }
  await file.close();
  edit(tensors);
  writeFileSync(join(to, 'model.safetensors'), encodeSafetensors(tensors));
  return to;
}

/** A safetensors file with a hand-written header (anything goes) and `dataBytes` zero bytes of data. */
export function rawSafetensors(header: unknown, dataBytes: number, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function ggufTwoTensors(): Uint8Array {
  const data = new Uint8Array(32 * 4);
  return encodeGguf({ metadata: [['general.architecture', { type: 'string', value: 'llama' }]], tensors: [{ name: 'a', shape: [32], type: 'F32', data }, { name: 'b', shape: [32], type: 'F32', data }] });
}

/** Sets tensor `name`'s offset field in a GGUF made by {@link ggufTwoTensors} (1-D tensors: name, nDims, dim, type, offset). */
function patchGgufOffset(bytes: Uint8Array, name: string, offset: number): Uint8Array {
  const copy = bytes.slice();
  const needle = new TextEncoder().encode(name);
  // The tensor info starts with u64 length 1 then the name; search after the metadata (from the end of 'llama').
  const start = Buffer.from(copy).indexOf(Buffer.from('llama')) + 5;
  for (let i = start; i < copy.length - 8; i++) {
    if (copy[i] === 1 && copy[i + 1] === 0 && copy[i + 8] === needle[0] && copy[i - 1] !== undefined) {
      const at = i + 8 + needle.length + 4 + 8 + 4;
      new DataView(copy.buffer).setBigUint64(at, BigInt(offset), true);
      return copy;
    }
  }
  throw new Error(`tensor ${name} not found`);
}

function ggufHugeArray(): Uint8Array {
  const key = new TextEncoder().encode('x.values');
  const out = new Uint8Array(4 + 4 + 8 + 8 + 8 + key.length + 4 + 4 + 8 + 16);
  const v = new DataView(out.buffer);
  out.set(new TextEncoder().encode('GGUF'), 0);
  v.setUint32(4, 3, true);
  v.setBigUint64(8, 0n, true); // tensors
  v.setBigUint64(16, 1n, true); // metadata entries
  v.setBigUint64(24, BigInt(key.length), true);
  out.set(key, 32);
  let p = 32 + key.length;
  v.setUint32(p, 9, true); // array
  v.setUint32(p + 4, 6, true); // of float32
  v.setBigUint64(p + 8, 1n << 40n, true); // 2^40 items in a 60-byte file
  p += 16;
  return out;
}

const fillStep = (id: string, value: number): Quantizer => ({
  specificationVersion: 'v2',
  id,
  kind: 'transform',
  requires: [],
  async run(context) {
    return { layers: context.layers.map((l) => ({ ...l, weight: { ...l.weight, data: new Float32Array(l.weight.data.length).fill(value) } })), warnings: [] };
  },
});

const nanStep = (id: string, kind: Quantizer['kind'], value: number): Quantizer => ({
  specificationVersion: 'v2',
  id,
  kind,
  requires: [],
  async run(context) {
    return {
      layers: context.layers.map((l) => {
        const data = Float32Array.from(l.weight.data);
        data[3] = value;
        return { ...l, weight: { ...l.weight, data } };
      }),
      warnings: [],
    };
  },
});

/** Every case of the suite. */
export function badInputCases(): BadInputCase[] {
  const cases: BadInputCase[] = [];
  const add = (group: BadInputCase['group'], name: string, expected: Expected, run: BadInputCase['run']) => cases.push({ group, name, expected, run });

  // ---- outputs ----
  add('output', '--out equal to --model', OUTPUT(/is the input .*model/), async (env) => quantize(env, { out: env.model, overwrite: true }));
  add('output', '--out inside --model', OUTPUT(/lies inside the input/), async (env) => quantize(env, { out: join(env.model, 'q') }));
  add('output', '--out containing --model', OUTPUT(/contains the input/), async (env) => quantize(env, { out: env.dir, overwrite: true }));
  add('output', 'non-empty --out without --overwrite', OUTPUT(/is not empty \(1 entries, e\.g\. model\.gguf\); pass --overwrite/), async (env) => {
    mkdirSync(join(env.dir, 'out'));
    writeFileSync(join(env.dir, 'out', 'model.gguf'), 'stale');
    return quantize(env, {});
  });
  add(
    'output',
    'non-empty --out with --overwrite is replaced, not merged',
    {
      outcome: 'result',
      writes: 'out',
      check: (env) => {
        const files = readdirSync(join(env.dir, 'out')).sort();
        if (files.includes('model.gguf') || !files.includes('model.safetensors')) throw new Error(`out holds ${files.join(', ')}`);
      },
    },
    async (env) => {
      mkdirSync(join(env.dir, 'out'));
      writeFileSync(join(env.dir, 'out', 'model.gguf'), 'stale');
      return quantize(env, { overwrite: true });
    },
  );
  add('output', '--out under a file (ENOTDIR)', OUTPUT(/ENOTDIR/), async (env) => {
    writeFileSync(join(env.dir, 'file'), 'x');
    return quantize(env, { out: join(env.dir, 'file', 'out') });
  });
  add('output', '--out is a file', OUTPUT(/is a file; expected a folder/), async (env) => {
    writeFileSync(join(env.dir, 'out'), 'x');
    return quantize(env, { overwrite: true });
  });
  add('output', 'a run failing after quantizing (export refused) keeps the earlier output and leaves no partial folder', error('stored-form-refused', 'StoredFormRefusedError', /GPTQ checkpoints hold 2, 3, 4, 8 bits, not 5/), async (env) => {
    mkdirSync(join(env.dir, 'out'));
    writeFileSync(join(env.dir, 'out', 'model.safetensors'), 'earlier');
    return quantize(env, { save: 'gptq', overwrite: true, recipe: 'steps:\n  - rtn: { bits: 5, groupSize: 32 }\n' });
  });
  add('output', 'unknown --save', OPTION(/--save: must be one of fake, .*; got 'safetensor'/), async (env) => quantize(env, { save: 'safetensor' }));
  add('output', 'unknown --gguf-type', OPTION(/--gguf-type: must be one of Q4_K_M, Q4_K, .*; got 'Q3_K'/), async (env) => quantize(env, { save: 'gguf', ggufType: 'Q3_K' }));
  add('output', '--gguf-type without --save gguf', OPTION(/--gguf-type: applies to --save gguf only/), async (env) => quantize(env, { ggufType: 'Q8_0' }));
  add('output', '--save compressed-tensors with a recipe that quantizes nothing', OPTION(/--save: compressed-tensors stores quantized layers, but recipe .* has no quantize step/), async (env) =>
    quantize(env, { save: 'compressed-tensors', recipe: 'steps:\n  - rotation: {}\n' }),
  );
  add('output', '--samples 0', OPTION(/--samples: must be an integer >= 1, got "0"/), async (env) => quantize(env, { samples: '0' }));
  add('output', '--seq-len beyond max_position_embeddings', OPTION(/--seq-len: 600 exceeds the model's max_position_embeddings \(512\)/), async (env) => quantize(env, { seqLen: '600' }));
  add('output', 'main: a non-empty --out that is not an earlier main output', OUTPUT(/is not empty \(1 entries, e\.g\. notes\.txt\); pass --overwrite/), async (env) => {
    mkdirSync(join(env.dir, 'out'));
    writeFileSync(join(env.dir, 'out', 'notes.txt'), 'mine');
    env.mark();
    await runMainJob({ model: join(env.dir, 'encoder', 'model.json'), out: join(env.dir, 'out') }, { stdout: () => undefined, stderr: () => undefined });
    return '';
  });
  add('output', 'main: --out inside the model folder', OUTPUT(/lies inside the input/), async (env) => {
    mkdirSync(join(env.dir, 'encoder'));
    writeFileSync(join(env.dir, 'encoder', 'model.json'), '{}');
    env.mark();
    await runMainJob({ model: join(env.dir, 'encoder', 'model.json'), out: join(env.dir, 'encoder', 'out') }, { stdout: () => undefined, stderr: () => undefined });
    return '';
  });
  add('output', 'report: --out under a file (ENOTDIR)', OPTION(/--out: cannot write .*\(ENOTDIR\); expected a writable file path/), async (env) => {
    writeFileSync(join(env.dir, 'file'), 'x');
    env.mark();
    await writeReport(env.checkpoints.gptq, { stdout: () => undefined }, join(env.dir, 'file', 'report.html'));
    return '';
  });

  // ---- NaN / Inf ----
  const nanModel = (value: number, tensor: string, index: number) => async (env: CaseEnv) =>
    copyModel(env.model, join(env.dir, 'bad-model'), (t) => {
      t.get(tensor)!.data[index] = value;
    });
  add('nan', 'NaN in the tied embedding (quantize)', NON_FINITE(/bad-model\/model\.safetensors: tensor lm_head\.weight holds NaN at element \[3, 5\]/), async (env) =>
    quantize(env, { model: await nanModel(NaN, 'lm_head.weight', 3 * 128 + 5)(env) }),
  );
  add('nan', 'Inf in a weight (eval)', NON_FINITE(/tensor model\.layers\.1\.mlp\.down_proj\.weight holds Infinity at element \[0, 7\]/), async (env) =>
    cli(env, ['eval', '--model', await nanModel(Infinity, 'model.layers.1.mlp.down_proj.weight', 7)(env), '--text', env.calibration, '--ctx', '32']),
  );
  add('nan', 'NaN in a norm (generate)', NON_FINITE(/tensor model\.norm\.weight holds NaN at element 0/), async (env) =>
    cli(env, ['generate', '--model', await nanModel(NaN, 'model.norm.weight', 0)(env), '--prompt', 'Once', '--tokens', '2']),
  );
  add('nan', 'a step that returns NaN weights', NON_FINITE(/the weight of model\.layers\.0\.self_attn\.q_proj after step 'nan-maker' holds NaN at element \[0, 3\]/), async (env) => {
    const graph = await loadLlamaGraph(env.model, { backend: createJsBackend() });
    env.mark();
    await runRecipe(llamaQuantizableModel(graph), [nanStep('nan-maker', 'quantize', NaN)], [[1, 5, 6, 7, 8, 9, 10, 11]], { backend: createJsBackend() });
    return '';
  });
  add('nan', 'a transform whose finite weights (1e30) overflow the activations', NON_FINITE(/the input of model\.layers\.0\.\S+ \(activations of block 0\) holds (NaN|-?Infinity)/), async (env) => {
    const graph = await loadLlamaGraph(env.model, { backend: createJsBackend() });
    env.mark();
    await runRecipe(llamaQuantizableModel(graph), [fillStep('overflow', 1e30)], [[1, 5, 6, 7, 8, 9, 10, 11]], { backend: createJsBackend() });
    return '';
  });
  add('nan', 'eval of a graph whose weight became NaN after loading', NON_FINITE(/the logits of evaluation windows 0\.\.0 holds NaN/), async (env) => {
    const graph = await loadLlamaGraph(env.model, { backend: createJsBackend() });
    (graph.linear('model.layers.0.mlp.up_proj').weight.data as Float32Array)[0] = NaN;
    env.mark();
    await evaluateLanguageModel(graph, [5, 6, 7, 8, 9, 10], { ctx: 8 });
    return '';
  });
  add('nan', 'generate with a graph whose weight became Inf after loading', NON_FINITE(/the logits after 2 tokens \(generation step 0\) holds (NaN|-?Infinity)/), async (env) => {
    const graph = await loadLlamaGraph(env.model, { backend: createJsBackend() });
    (graph.linear('model.layers.1.self_attn.v_proj').weight.data as Float32Array)[0] = Infinity;
    env.mark();
    await generateGreedy(graph, [1, 5], { maxNewTokens: 2 });
    return '';
  });
  add('nan', 'a ±1e30 weight is clamped with a warning that counts groups and zeroed weights', { outcome: 'warning', writes: 'out', message: /warning \[model\.layers\.0\.mlp\.gate_proj\]: 2 of 1536 groups have a scale clamped at the float16 maximum 65504 \(largest \|weight\| 1\.000e\+30\): their largest weights were clamped; \d+ nonzero weights became 0/ }, async (env) =>
    quantize(env, {
      model: await copyModel(env.model, join(env.dir, 'huge-model'), (t) => {
        const w = t.get('model.layers.0.mlp.gate_proj.weight')!.data;
        w[0] = 1e30;
        w[200] = -1e30;
      }),
    }),
  );

  // ---- readers ----
  const st = (name: string, bytes: Uint8Array) => async (env: CaseEnv) => {
    const path = join(env.dir, name);
    writeFileSync(path, bytes);
    return cli(env, ['inspect', path]);
  };
  const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });
  add('reader', 'safetensors: truncated data (inspect)', INVALID_FILE(/t\.safetensors: truncated: the header describes 64 bytes of tensor data but the file holds only 40/), st('t.safetensors', rawSafetensors({ w: f32([4, 4], [0, 64]) }, 40)));
  add('reader', 'safetensors: overlapping offsets (inspect)', INVALID_FILE(/tensor "b": data_offsets \[8, 24\] overlap the previous tensor \(which ends at 16\)/), st('o.safetensors', rawSafetensors({ a: f32([4], [0, 16]), b: f32([4], [8, 24]) }, 24)));
  add('reader', 'safetensors: negative shape (inspect)', INVALID_FILE(/tensor "w": shape must be an array of non-negative integers, got \[-4,4\]/), st('n.safetensors', rawSafetensors({ w: f32([-4, 4], [0, 64]) }, 64)));
  add('reader', 'safetensors: bad JSON header (inspect)', INVALID_FILE(/safetensors header is not valid JSON/), st('j.safetensors', rawSafetensors(undefined, 0, '{"w": {"dtype": "F32", "shape": [1')));
  add('reader', 'safetensors: absurd header length (inspect)', INVALID_FILE(/header length \d+ exceeds the 100000000-byte limit/), st('h.safetensors', Uint8Array.of(255, 255, 255, 255, 255, 255, 255, 255, 0, 0)));
  add('reader', 'safetensors: shorter than 8 bytes (inspect)', INVALID_FILE(/shorter than the 8-byte header length prefix/), st('s.safetensors', Uint8Array.of(1, 2, 3)));
  add('reader', 'safetensors: unknown dtype (inspect)', INVALID_FILE(/unknown or unsupported dtype "F13"/), st('d.safetensors', rawSafetensors({ w: { dtype: 'F13', shape: [1], data_offsets: [0, 4] } }, 4)));
  add('reader', 'safetensors: truncated model file (quantize)', INVALID_FILE(/cut-model\/model\.safetensors: truncated: the header describes \d+ bytes of tensor data but the file holds only \d+/), async (env) => {
    const dir = await copyModel(env.model, join(env.dir, 'cut-model'));
    const bytes = readFileSync(join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 1000));
    return quantize(env, { model: dir });
  });
  add('reader', 'config.json: not JSON (eval)', MODEL_FILE(/config\.json: not valid JSON/), async (env) => {
    const dir = await copyModel(env.model, join(env.dir, 'cfg-model'));
    writeFileSync(join(dir, 'config.json'), '{"hidden_size": 128,');
    return cli(env, ['eval', '--model', dir, '--text', env.calibration]);
  });
  add('reader', 'GGUF: bad magic (inspect)', INVALID_FILE(/m\.gguf: gguf: not a GGUF file \(bad magic\); expected a GGUF v2\/v3 file/), st('m.gguf', new TextEncoder().encode('GGUX and more bytes')));
  add('reader', 'GGUF: truncated tensor data (inspect)', INVALID_FILE(/c\.gguf: b: data \[\d+, \d+\) runs past the end of the file .*truncated/), async (env) => st('c.gguf', ggufTwoTensors().subarray(0, ggufTwoTensors().length - 40))(env));
  add('reader', 'GGUF: overlapping tensors (inspect)', INVALID_FILE(/o\.gguf: b: data at offset 0 overlaps a/), async (env) => st('o.gguf', patchGgufOffset(ggufTwoTensors(), 'b', 0))(env));
  add('reader', 'GGUF: an array count beyond the file (inspect)', INVALID_FILE(/a\.gguf: .*an array of 1099511627776 items .* is longer than the \d+ bytes left/), st('a.gguf', ggufHugeArray()));
  add('reader', 'ONNX: random bytes (inspect)', INVALID_FILE(/r\.onnx: (malformed or truncated .*|graph: the ModelProto has no graph.*); expected an ONNX model/), st('r.onnx', Uint8Array.from({ length: 256 }, (_, i) => (i * 167 + 13) & 255)));
  add('reader', 'ONNX: empty file (inspect)', INVALID_FILE(/e\.onnx: graph: the ModelProto has no graph/), st('e.onnx', new Uint8Array(0)));
  const corruptCheckpoint = (which: 'compressedTensors' | 'gptq', edit: (tensors: Map<string, unknown>, config: Record<string, unknown>) => void) => async (env: CaseEnv) => {
    const from = env.checkpoints[which];
    const dir = join(env.dir, which);
    mkdirSync(dir);
    for (const f of readdirSync(from)) copyFileSync(join(from, f), join(dir, f));
    const { decodeSafetensorsFile, encodeSafetensorsFile } = await import('@bitsmith/formats');
    const { tensors } = decodeSafetensorsFile(readFileSync(join(dir, 'model.safetensors')), 'x');
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    edit(tensors as Map<string, unknown>, config);
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensorsFile(tensors as never));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return cli(env, ['inspect', dir]);
  };
  add('reader', 'compressed-tensors: weight_packed of the wrong shape (inspect)', INVALID_FILE(/compressedTensors\/model\.safetensors: weight_packed: has shape \[.*\]; \[.*\] expected .*; expected a compressed-tensors/), corruptCheckpoint('compressedTensors', (t) => {
    const name = [...t.keys()].find((n) => n.endsWith('down_proj.weight_packed'))!;
    const p = t.get(name) as { dtype: string; shape: number[]; bytes: Uint8Array };
    t.set(name, { ...p, shape: [p.shape[0]! / 2, p.shape[1]! * 2] });
  }));
  add('reader', 'compressed-tensors: config.json not JSON (inspect)', INVALID_FILE(/ct\/config\.json: malformed or truncated \(SyntaxError: .*\); expected a JSON object/), async (env) => {
    const dir = join(env.dir, 'ct');
    mkdirSync(dir);
    for (const f of readdirSync(env.checkpoints.compressedTensors)) copyFileSync(join(env.checkpoints.compressedTensors, f), join(dir, f));
    writeFileSync(join(dir, 'config.json'), '{"quantization_config": {');
    return cli(env, ['inspect', dir]);
  });
  add('reader', 'GPTQ: qzeros missing (inspect)', INVALID_FILE(/gptq\/model\.safetensors: .*has qweight but no qzeros; expected a GPTQ checkpoint/), corruptCheckpoint('gptq', (t) => {
    t.delete([...t.keys()].find((n) => n.endsWith('q_proj.qzeros'))!);
  }));
  add('reader', 'GPTQ: bits 5 in the config (inspect)', error('unsupported-format', 'UnsupportedFormatError', /gptq\/model\.safetensors: GPTQ bits 5; expected 2, 3, 4, 8/), corruptCheckpoint('gptq', (_t, config) => {
    (config.quantization_config as Record<string, unknown>).bits = 5;
  }));
  const tfjs = (manifest: string) => async (env: CaseEnv) => {
    const path = join(env.dir, 'model.json');
    writeFileSync(path, manifest);
    return cli(env, ['inspect', path]);
  };
  add('reader', 'tfjs: model.json not JSON (inspect)', INVALID_FILE(/model\.json: malformed or truncated \(SyntaxError/), tfjs('{"weightsManifest": ['));
  add('reader', 'tfjs: no weightsManifest (inspect)', INVALID_FILE(/model\.json: has no weightsManifest array; expected a tfjs model\.json/), tfjs('{"modelTopology": {}}'));
  add('reader', 'tfjs: negative shape (inspect)', INVALID_FILE(/weightsManifest\[0\]\.weights\[0\] \(dense\/kernel\) has shape \[-1,4\], not non-negative integers/), tfjs(JSON.stringify({ weightsManifest: [{ paths: ['g.bin'], weights: [{ name: 'dense/kernel', shape: [-1, 4], dtype: 'float32' }] }] })));
  add('reader', 'tfjs: unknown quantization dtype (inspect)', INVALID_FILE(/has quantization dtype "int4", not one of uint8, uint16, float16/), tfjs(JSON.stringify({ weightsManifest: [{ paths: ['g.bin'], weights: [{ name: 'w', shape: [2], dtype: 'float32', quantization: { dtype: 'int4' } }] }] })));

  // ---- inputs ----
  add('input', 'targets matching no layer', SELECTION(/stages\[0\] \(rtn\)\.targets: selector 're:\.\*up_projection' matches none of the model's 14 linear layers/), async (env) =>
    quantize(env, { recipe: 'steps:\n  - rtn: { bits: 4, groupSize: 32, targets: ["re:.*up_projection"] }\n' }),
  );
  add('input', 'ignore matching no layer', SELECTION(/^ignore: selector 'down_projj' matches none/), async (env) => quantize(env, { recipe: 'ignore: [down_projj]\nsteps:\n  - rtn: { bits: 4, groupSize: 32 }\n' }));
  add(
    'input',
    'ignore: [lm_head] (the head is never quantized) is accepted and every block linear is quantized',
    {
      outcome: 'result',
      writes: 'out',
      check: (env, printed) => {
        const layers = (JSON.parse(readFileSync(join(env.dir, 'out', 'quantization.json'), 'utf8')) as { report: { layers: { steps: string[] }[] } }).report.layers;
        if (layers.length !== 14 || !layers.every((l) => l.steps.join() === 'rtn')) throw new Error(`unexpected layers in ${printed}`);
      },
    },
    async (env) => quantize(env, { recipe: 'ignore: [lm_head]\nsteps:\n  - rtn: { bits: 4, groupSize: 32 }\n' }),
  );
  add('input', 'two quantize steps on one layer', SELECTION(/stages\[1\] \(gptq\): layer model\.layers\.0\.mlp\.down_proj is already quantized by stages\[0\] \(rtn\)/), async (env) =>
    quantize(env, { recipe: 'steps:\n  - rtn: { bits: 4, groupSize: 32 }\n  - gptq: { bits: 4, groupSize: 32, targets: [down_proj] }\n' }),
  );
  const calib = (content: string | Uint8Array) => async (env: CaseEnv) => {
    const path = join(env.dir, 'calib.txt');
    writeFileSync(path, content);
    return quantize(env, { calibration: path });
  };
  add('input', 'calibration: whitespace only', MODEL_FILE(/calib\.txt: holds only whitespace \(7 characters\)/), calib('  \n\t\n  '));
  add('input', 'calibration: empty', MODEL_FILE(/calib\.txt: is empty; expected text/), calib(''));
  add('input', 'calibration: binary', MODEL_FILE(/calib\.txt: is a binary file \(a NUL byte at offset 4\)/), calib(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3)));
  add('input', 'calibration: not UTF-8 (Latin-1)', MODEL_FILE(/calib\.txt: is not valid UTF-8 \(first bad sequence near byte 3\)/), calib(Uint8Array.from([...'Caf\xe9 au lait'].map((c) => c.charCodeAt(0)))));
  add('input', 'calibration: missing file', MODEL_FILE(/nope\.txt: file not found/), async (env) => quantize(env, { calibration: join(env.dir, 'nope.txt') }));
  add('input', 'calibration: fewer tokens than requested', { outcome: 'warning', writes: 'out', message: /warning: .*short\.txt yields 1 of the 2 requested sequences: \d+ of 64 tokens \(the text holds \d+\)/ }, async (env) => {
    const path = join(env.dir, 'short.txt');
    writeFileSync(path, 'Once upon a time there was a little dog.');
    return quantize(env, { calibration: path });
  });
  add('input', '--ctx beyond max_position_embeddings (eval)', ARGUMENT(/--ctx: 1024 tokens exceed the model's max_position_embeddings \(512\)/), async (env) => cli(env, ['eval', '--model', env.model, '--text', env.calibration, '--ctx', '1024']));
  add('input', '--tokens running past max_position_embeddings (generate)', ARGUMENT(/maxNewTokens: the prompt's \d+ tokens plus 600 new ones exceed the model's max_position_embeddings \(512\)/), async (env) =>
    cli(env, ['generate', '--model', env.model, '--prompt', 'Once upon a time', '--tokens', '600']),
  );
  add('input', 'unused checkpoint tensors are listed in a warning (eval)', { outcome: 'warning', message: /warning: 2 checkpoint tensor\(s\) are not used by the llama graph and were dropped: model\.extra\.bias, model\.layers\.0\.mlp\.extra_proj\.weight/ }, async (env) => {
    const dir = await copyModel(env.model, join(env.dir, 'extra-model'), (t) => {
      t.set('model.extra.bias', { dtype: 'float32', shape: [4], data: new Float32Array(4) });
      t.set('model.layers.0.mlp.extra_proj.weight', { dtype: 'float32', shape: [2, 2], data: new Float32Array(4) });
    });
    const text = join(env.dir, 'eval.txt');
    writeFileSync(text, readFileSync(env.calibration, 'utf8').slice(0, 400));
    return cli(env, ['eval', '--model', dir, '--text', text, '--ctx', '64']);
  });
  add('input', 'quantization.json records online transforms that config.json lost (eval)', MODEL_FILE(/config\.json: quantization\.json records 2 run-time input transform\(s\) \(e\.g\. on model\.layers\.0\.mlp\.down_proj\) that config\.json's quantization_config\.online_transforms does not list/), async (env) => {
    const dir = await copyModel(env.model, join(env.dir, 'rotated'));
    writeFileSync(join(dir, 'quantization.json'), JSON.stringify({ onlineTransforms: [{ layer: 'model.layers.0.mlp.down_proj', kind: 'hadamard', order: 384 }, { layer: 'model.layers.1.mlp.down_proj', kind: 'hadamard', order: 384 }] }));
    return cli(env, ['eval', '--model', dir, '--text', env.calibration, '--ctx', '64']);
  });
  add('input', 'model folder missing', MODEL_FILE(/no-such-model(: model folder not found|\/config\.json: file not found)/), async (env) => quantize(env, { model: join(env.dir, 'no-such-model') }));
  add('input', 'eval text: whitespace only', MODEL_FILE(/blank\.txt: holds only whitespace/), async (env) => {
    writeFileSync(join(env.dir, 'blank.txt'), '\n\n\n');
    return cli(env, ['eval', '--model', env.model, '--text', join(env.dir, 'blank.txt')]);
  });
  return cases;
}
