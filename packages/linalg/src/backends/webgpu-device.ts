/// <reference types="@webgpu/types" />

/** What the `webgpu` backend found: the device and what the adapter says about itself. */
export interface WebgpuDeviceHandle {
  readonly device: GPUDevice;
  /** Adapter vendor, architecture and description (empty strings where the implementation hides them). */
  readonly info: { readonly vendor: string; readonly architecture: string; readonly description: string };
  /** Whether the device was created with the `shader-f16` feature (WGSL `enable f16;`). */
  readonly shaderF16: boolean;
}

/** Options of {@link requestWebgpuDevice}. */
export interface RequestWebgpuDeviceOptions {
  /**
   * A `GPU` object to use (a browser's `navigator.gpu`, or one made by the `webgpu` package's `create()`). Default:
   * `globalThis.navigator.gpu` where it exists, else the optional npm package `webgpu` (Dawn's `dawn.node`).
   */
  gpu?: GPU;
  /**
   * Dawn's bounds-checking of shader memory accesses ("robustness"). The kernels never index out of their buffers,
   * so turning it off only removes the checks' cost; it needs Dawn's `allow_unsafe_apis`, so it applies only when the
   * backend creates the `GPU` object itself (Node). Default true (checks on).
   */
  robustness?: boolean;
}

/** The optional dependency that brings WebGPU to Node (Dawn's `dawn.node`). */
const WEBGPU_PACKAGE: string = 'webgpu';

/**
 * Dawn instances made so far in this process, one per set of options. Dawn's Node binding aborts the process when an
 * instance is created after another one was collected, so each is made once and kept (the one piece of module state
 * in this package; devices, buffers and pipelines still belong to each backend).
 */
const nodeInstances = new Map<boolean, Promise<GPU>>();

function nodeGpu(robustness: boolean): Promise<GPU> {
  let instance = nodeInstances.get(robustness);
  if (!instance) {
    instance = createNodeGpu(robustness);
    nodeInstances.set(robustness, instance);
    instance.catch(() => nodeInstances.delete(robustness));
  }
  return instance;
}

/** Loads the `webgpu` npm package (an optional dependency) and creates its `GPU` object. */
async function createNodeGpu(robustness: boolean): Promise<GPU> {
  let module: { create(options: string[]): GPU; globals: Record<string, unknown> };
  try {
    // A non-literal specifier: bundlers for the browser (where navigator.gpu is used instead) leave the native
    // package alone; Node resolves it at run time.
    const specifier = WEBGPU_PACKAGE;
    module = (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as typeof module;
  } catch (cause) {
    throw new Error('no navigator.gpu here and the optional npm package `webgpu` (Dawn for Node) is not installed', { cause });
  }
  // The WebGPU classes (GPUBufferUsage, GPUMapMode, ...) are needed as globals by code written for browsers.
  for (const [key, value] of Object.entries(module.globals)) {
    if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
  }
  return module.create(robustness ? [] : ['enable-dawn-features=allow_unsafe_apis,disable_robustness']);
}

const usage = (): { storage: number; copySrc: number; copyDst: number; mapRead: number; uniform: number } => {
  const g = globalThis as unknown as { GPUBufferUsage?: GPUFlagsConstant & Record<string, number> };
  const u = g.GPUBufferUsage;
  return u
    ? { storage: u.STORAGE!, copySrc: u.COPY_SRC!, copyDst: u.COPY_DST!, mapRead: u.MAP_READ!, uniform: u.UNIFORM! }
    : { storage: 0x80, copySrc: 0x4, copyDst: 0x8, mapRead: 0x1, uniform: 0x40 };
};

/** Buffer usage flags, read from the `GPUBufferUsage` global (the spec's values where it is absent). */
export const bufferUsage = usage;

/**
 * Finds a WebGPU adapter (high-performance preference) and creates a device with the adapter's largest storage
 * limits and `shader-f16` when offered.
 *
 * @throws Error when there is no WebGPU implementation or `requestAdapter()` returns null (no GPU, no driver).
 * @example
 * ```ts
 * const { device, info } = await requestWebgpuDevice();
 * ```
 */
export async function requestWebgpuDevice(options: RequestWebgpuDeviceOptions = {}): Promise<WebgpuDeviceHandle> {
  const navigatorGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const gpu = options.gpu ?? navigatorGpu ?? (await nodeGpu(options.robustness ?? true));
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('requestAdapter() returned null: no WebGPU adapter (GPU and driver) here');
  const limits = adapter.limits;
  const shaderF16 = adapter.features.has('shader-f16');
  const device = await adapter.requestDevice({
    requiredFeatures: shaderF16 ? ['shader-f16'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    },
  });
  const raw = (adapter as { info?: GPUAdapterInfo }).info;
  return {
    device,
    info: { vendor: raw?.vendor ?? '', architecture: raw?.architecture ?? '', description: raw?.description ?? '' },
    shaderF16,
  };
}
