import { nodeBuiltin } from '../node-builtin.js';

/** What the releaser reads of an onnxruntime tensor: its data. */
interface TensorLike {
  readonly data: unknown;
}

/**
 * Frees the arrays of one `session.run` result that are not the caller's own, at once instead of at the next garbage
 * collection. Returns how many it freed.
 */
export type OrtOutputRelease = (results: Readonly<Record<string, TensorLike>>, fetches: Readonly<Record<string, TensorLike>>) => number;

/**
 * Makes an {@link OrtOutputRelease}: onnxruntime-node 1.30 copies every output of a run into a new `ArrayBuffer`,
 * even one the caller preallocated (and ORT wrote into). The `ort` backend reads its own arrays, so those copies are
 * garbage from the moment the run returns; V8 counts them as external memory and, after every few tens of MB of them,
 * runs a full mark-compact collection ("external memory pressure": about 27 per calibration pass on llama-docs-29m).
 * The releaser detaches each such copy by transferring its `ArrayBuffer` to a message port whose other end is closed:
 * the backing store is freed then and there, and V8's external-memory count drops with it, so no collection is
 * triggered (allocating and dropping 400 arrays of 25 MB: 61 major collections without, none with).
 *
 * Never touches an array whose buffer is one of `fetches`' (a binding that wrote into the caller's array and returned
 * it), a `SharedArrayBuffer`, or a buffer that cannot be transferred (a WebAssembly memory): those are left to the
 * collector, as is everything where `node:worker_threads` is unavailable (then it frees nothing).
 *
 * @example
 * ```ts
 * const release = await ortOutputReleaser();
 * const fetches = { Y: new ort.Tensor('float32', c, [m, n]) };
 * release(await session.run(feeds, fetches), fetches); // the binding's copy of Y is freed; c holds the result
 * ```
 */
export async function ortOutputReleaser(): Promise<OrtOutputRelease> {
  const threads = await nodeBuiltin<typeof import('node:worker_threads')>('worker_threads');
  if (!threads?.MessageChannel) return () => 0;
  const { port1, port2 } = new threads.MessageChannel();
  // Messages to a port whose peer is closed are dropped (their transferred buffers freed); neither port keeps the
  // process alive.
  port2.close();
  port1.unref();
  return (results, fetches) => {
    let freed = 0;
    for (const name of Object.keys(results)) {
      const data = results[name]?.data;
      if (!ArrayBuffer.isView(data)) continue;
      const buffer = data.buffer;
      if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) continue;
      let ours = false;
      for (const key of Object.keys(fetches)) {
        const mine = fetches[key]?.data;
        if (ArrayBuffer.isView(mine) && mine.buffer === buffer) ours = true;
      }
      if (ours) continue;
      try {
        port1.postMessage(null, [buffer]);
      } catch {
        // Not transferable (an external buffer): left to the collector.
      }
      // A buffer that cannot be detached (a WebAssembly memory's) is passed over without an error; count only the freed.
      if (buffer.byteLength === 0) freed++;
    }
    return freed;
  };
}
