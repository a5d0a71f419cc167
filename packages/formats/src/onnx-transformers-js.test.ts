import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateGreedy } from '@bitsmith/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveTransformersJsModel } from './onnx-transformers-js.js';
import { loadOrt } from './onnx-ort.test-support.js';
import { quantizeLayers, syntheticGraph } from './onnx-synthetic.test-support.js';

/** transformers.js, or the reason it cannot be loaded (the test then skips and says why). */
async function loadTransformers(): Promise<{ module?: typeof import('@huggingface/transformers'); why?: string }> {
  try {
    const specifier: string = '@huggingface/transformers';
    return { module: (await import(/* @vite-ignore */ specifier)) as typeof import('@huggingface/transformers') };
  } catch (error) {
    return { why: (error as Error).message };
  }
}

const ort = await loadOrt();
const transformers = await loadTransformers();
if (!transformers.module) console.warn(`skipping the transformers.js checks: @huggingface/transformers cannot be loaded (${transformers.why})`);

const VOCAB = 64;
/** A word-level tokenizer over `<unk> <s> </s> w3 .. w63` (whitespace pre-tokenizer), in tokenizers' JSON layout. */
function wordTokenizer(): Record<string, unknown> {
  const special = ['<unk>', '<s>', '</s>'];
  const vocab: Record<string, number> = {};
  for (let i = 0; i < VOCAB; i++) vocab[i < 3 ? special[i]! : `w${i}`] = i;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
}

describe.skipIf(!ort || !transformers.module)('transformers.js loads the exported decoder (tiny random-weight Llama)', () => {
  let dir = '';
  let graph: Awaited<ReturnType<typeof syntheticGraph>>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bitsmith-tjs-'));
    graph = await syntheticGraph({ model_type: 'llama', vocab_size: VOCAB, tie_word_embeddings: true, eos_token_id: 2 });
    // int4 g32 symmetric, int4-asym g16 (zero points) on the MLP, int8 per channel on o_proj.
    const quantized = quantizeLayers(graph, (name) =>
      name.endsWith('o_proj') ? ['int8', { type: 'channel' }] : name.includes('mlp') ? ['int4-asym', { type: 'group', size: 16 }] : ['int4', { type: 'group', size: 32 }],
    );
    const source = join(dir, 'source');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(source);
    await writeFile(join(source, 'tokenizer.json'), JSON.stringify(wordTokenizer()));
    await writeFile(join(source, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }));
    const config = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      vocab_size: VOCAB,
      bos_token_id: 1,
      eos_token_id: 2,
      tie_word_embeddings: true,
      max_position_embeddings: graph.config.maxPositionEmbeddings,
    };
    await saveTransformersJsModel(join(dir, 'model'), graph, quantized, { config, copyFrom: source });
    const { env } = transformers.module!;
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes onnx/model_q4.onnx, model_q4f16.onnx and model.onnx with config.json naming q4 as the default dtype', async () => {
    for (const file of ['model.onnx', 'model_q4.onnx', 'model_q4f16.onnx']) expect(existsSync(join(dir, 'model', 'onnx', file))).toBe(true);
    const config = JSON.parse(await readFile(join(dir, 'model', 'config.json'), 'utf8'));
    expect(config['transformers.js_config']).toEqual({ dtype: 'q4', kv_cache_dtype: { q4f16: 'float16' } });
  });

  it("pipeline('text-generation') greedy text and model.generate ids equal bitsmith's greedy decoding (q4 and fp32)", async () => {
    const { pipeline, AutoTokenizer, AutoModelForCausalLM } = transformers.module!;
    const tokenizer = await AutoTokenizer.from_pretrained('model');
    for (const dtype of ['q4', 'fp32'] as const) {
      const generator = await pipeline('text-generation', 'model', { dtype, device: 'cpu' });
      const model = await AutoModelForCausalLM.from_pretrained('model', { dtype, device: 'cpu' });
      for (const prompt of ['w5 w9 w13', 'w40 w41 w7 w7 w3', 'w22']) {
        const promptIds = Array.from(tokenizer.encode(prompt), Number);
        const ours = await generateGreedy(graph, promptIds, { maxNewTokens: 32, eosTokenId: 2 });
        expect(ours.length).toBeGreaterThan(0);
        const input = tokenizer(prompt);
        const generated = (await model.generate({ ...input, max_new_tokens: 32, do_sample: false })) as { tolist(): bigint[][] };
        expect(generated.tolist()[0]!.map(Number)).toEqual([...promptIds, ...ours]);
        const text = (await generator(prompt, { max_new_tokens: 32, do_sample: false })) as Array<{ generated_text: string }>;
        expect(text[0]!.generated_text).toBe(tokenizer.decode([...promptIds, ...ours], { skip_special_tokens: true }));
      }
      await generator.dispose();
      await model.dispose();
    }
  });

  it("the q4 model's logits through transformers.js equal bitsmith's forward within 1e-4 (q4f16 within fp16 precision)", async () => {
    const { AutoModelForCausalLM, Tensor } = transformers.module!;
    const ids = [1, 5, 9, 13, 2, 40, 41, 7, 7, 3, 22, 30];
    const ours = (await graph.forward([ids])).data;
    for (const [dtype, tolerance] of [['q4', 1e-4], ['q4f16', 5e-2]] as const) {
      const model = await AutoModelForCausalLM.from_pretrained('model', { dtype, device: 'cpu' });
      const inputIds = new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
      const attentionMask = new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
      const { logits } = (await model({ input_ids: inputIds, attention_mask: attentionMask })) as { logits: { data: Float32Array } };
      let maxDiff = 0;
      let maxLogit = 0;
      for (let i = 0; i < ours.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(logits.data[i]! - ours[i]!));
        maxLogit = Math.max(maxLogit, Math.abs(ours[i]!));
      }
      expect(maxDiff / Math.max(1, maxLogit)).toBeLessThan(tolerance);
      await model.dispose();
    }
  });
});
