// Entry of the helper threads of the `ort` backend's reference kernels (see ort-reference-threads.ts): a Node worker
// thread that runs `attentionWithBatchedSgemm` (and the backward, `attentionBackwardWithBatchedSgemm`) on the
// (sequence, key/value head) pairs the calling thread hands it,
// with its own single-threaded onnxruntime sessions and its own instance of the reference kernels, and the SiLU gate
// on the share of elements it is handed. Built by tsup as
// dist/ort-reference-worker.js, next to the bundle that starts it; nothing imports this module.
import { attentionWithBatchedSgemm, type BatchedGemmArguments } from './attention-batched-sgemm.js';
import { attentionBackwardWithBatchedSgemm } from './attention-backward-batched-sgemm.js';
import { referenceKernelsOf } from '../reference-kernels.js';
import { nodeBuiltin } from '../node-builtin.js';
import { ortOutputReleaser } from './ort-output-release.js';
import { batchedModelKey, type ReferenceWorkerData, type ReferenceWorkerReply, type ReferenceWorkerRequest } from './ort-reference-threads.js';

interface OrtTensor {
  readonly data: unknown;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}
interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options: object): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
}

/** The optional dependency, named at run time as the backend names it (bundlers leave it alone). */
const ORT_PACKAGE: string = 'onnxruntime-node';

/** Scratch arrays by name, grown on demand and kept between requests (contents anything). */
function growable<T extends Float32Array | Float64Array>(make: (length: number) => T): (name: string, length: number) => T {
  const buffers = new Map<string, T>();
  return (name, length) => {
    let buffer = buffers.get(name);
    if (!buffer || buffer.length < length) {
      buffer = make(length);
      buffers.set(name, buffer);
    }
    return buffer;
  };
}

async function start(): Promise<void> {
  const threads = await nodeBuiltin<typeof import('node:worker_threads')>('worker_threads');
  const port = threads?.parentPort;
  if (!threads || !port) return;
  const { kernels: kernelModule, sessionOptions } = threads.workerData as ReferenceWorkerData;
  const specifier = ORT_PACKAGE;
  const loaded = (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as Record<string, unknown>;
  const ort = (loaded.InferenceSession ? loaded : loaded.default) as OrtModule;
  const kernels = referenceKernelsOf(kernelModule);
  const releaseOutputs = await ortOutputReleaser();
  const sessions = new Map<string, Promise<OrtSession>>();
  const models = new Map<string, Uint8Array>();
  const scratch = growable((length) => new Float32Array(length));
  const scratch64 = growable((length) => new Float64Array(length));
  // As the backend's batchedSgemm, on one MLAS thread: every operand here is this thread's own memory.
  const batched = async (args: BatchedGemmArguments): Promise<void> => {
    const { batch, m, n, k } = args;
    if (batch * m * n === 0) return;
    const transA = args.transA === true;
    const transB = args.transB === true;
    if (k === 0) {
      args.c.fill(0, 0, batch * m * n);
      return;
    }
    const key = batchedModelKey(transB, args.alpha ?? 1, transA);
    let session = sessions.get(key);
    if (!session) {
      const model = models.get(key);
      if (!model) throw new Error(`ort attention worker: no batched GEMM model ${key} was sent`);
      session = ort.InferenceSession.create(model, sessionOptions);
      sessions.set(key, session);
    }
    const fetches = { Y: new ort.Tensor('float32', args.c.subarray(0, batch * m * n), [batch, m, n]) };
    const feeds = {
      A: new ort.Tensor('float32', args.a.subarray(0, batch * m * k), transA ? [batch, k, m] : [batch, m, k]),
      B: new ort.Tensor('float32', args.b.subarray(0, batch * n * k), transB ? [batch, n, k] : [batch, k, n]),
    };
    // The binding's copy of Y is freed at once (see ortOutputReleaser); the result is in args.c.
    releaseOutputs(await (await session).run(feeds, fetches), fetches);
  };
  let queue: Promise<unknown> = Promise.resolve();
  port.on('message', (request: ReferenceWorkerRequest) => {
    queue = queue.then(async () => {
      let reply: ReferenceWorkerReply;
      try {
        if (request.kind === 'silu') {
          kernels.siluGate(request.gate, request.up, request.out, request.out.length);
        } else if (request.kind === 'swiglu-backward') {
          kernels.swigluBackward(request.gate, request.up, request.dh, request.gate, request.up, request.dh.length);
        } else if (request.kind === 'attention-backward') {
          for (const [key, model] of Object.entries(request.models)) models.set(key, model);
          await attentionBackwardWithBatchedSgemm(batched, request.args, kernels, { scratch: { float32: scratch, float64: scratch64 }, pairs: request.pairs });
        } else {
          for (const [key, model] of Object.entries(request.models)) models.set(key, model);
          await attentionWithBatchedSgemm(batched, request.args, kernels, { scratch, pairs: request.pairs });
        }
        reply = { id: request.id };
      } catch (error) {
        reply = { id: request.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
      }
      port.postMessage(reply);
    });
  });
  port.postMessage('ready');
}

await start();
