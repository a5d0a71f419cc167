// Backend contract
export type { AttentionArguments, AttentionBackwardArguments, Backend, BatchedGemmArguments, GatedActivationArguments, GatedMlpArguments, SwigluBackwardArguments, BackendName, BackendOptions, FloatArray, GemmArguments, GramArguments, FwhtArguments } from './backend.js';
export { BackendUnavailableError } from './backend-unavailable-error.js';
export { checkAttentionArguments, checkAttentionBackwardArguments, checkBatchedGemmArguments, checkGatedActivationArguments, checkGatedMlpArguments, checkGemmArguments, checkGramArguments, checkFwhtArguments } from './backends/check-arguments.js';
export { attentionWithSgemm, packHeadKeysValues, ATTENTION_CHUNK } from './backends/attention-sgemm.js';
export { attentionChunk, attentionPairAt, packQueryRows, unpackQueryRows, packKeyValueRows, type AttentionChunk, type AttentionPairLayout } from './backends/attention-pair-rows.js';
export { attentionBackwardWithBatchedSgemm, BATCHED_ATTENTION_BACKWARD_SCORE_BYTES, type AttentionBackwardBatchedOptions, type AttentionBackwardScratch } from './backends/attention-backward-batched-sgemm.js';
export { fastExp } from './fast-exp.js';
export { exp32, siluGateFloat32Loop, swigluBackwardFloat32Loop } from './silu-float32.js';
export { sgemmBatched } from './sgemm-batched.js';
export { gatedActivationLoop, gatedActivationReference } from './backends/gated-activation-loop.js';
export type { ReferenceKernels, SoftmaxRowsArguments } from './reference-kernels.js';
export { ARENA_SCRATCH_BYTES, createReferenceKernels, tryReferenceKernels } from './reference-kernels.js';

// Backends and selection
export { createJsBackend } from './backends/js-backend.js';
export { createOrtBackend, ORT_ATTENTION_PARTS, ORT_ATTENTION_SCORE_BYTES, ORT_GRAM_CHUNK_ROWS, ORT_SMALL_GEMM_WORK, type OrtBackendOptions } from './backends/ort-backend.js';
export { createTfjsBackend, type TfjsBackendOptions, type TfjsModuleLike, type TfjsTensorLike } from './backends/tfjs-backend.js';
export { createWasmBackend, type WasmBackend, type WasmBackendOptions } from './backends/wasm-backend.js';
export { createWebgpuBackend, tryCreateWebgpuBackend, type WebgpuBackend, type WebgpuBackendOptions, type WebgpuGemmArguments, type WebgpuMatrix, type WebgpuStridedGemmArguments } from './backends/webgpu-backend.js';
export { DEFAULT_GEMM_TILE, type GemmTile } from './backends/webgpu-kernels.js';
export { webgpuCholeskyInverseUpper, type WebgpuCholeskyOptions } from './backends/webgpu-cholesky.js';
export { webgpuGptqSolve, WEBGPU_GPTQ_MAX_BLOCK, type WebgpuGptqArguments, type WebgpuGptqGroupScales, type WebgpuGptqResult, type WebgpuGptqScaleRule } from './backends/webgpu-gptq.js';
export { webgpuAttention, webgpuGatedActivation, webgpuRmsNorm, webgpuRope, webgpuSequences, type WebgpuSequences } from './backends/webgpu-block.js';
export { sumPartials, SUM_OF_SQUARES_PARTIALS, webgpuColumnAbsStatistics, webgpuSubtract, webgpuSumOfSquares } from './backends/webgpu-reductions.js';
export { webgpuDiagonal, webgpuMirrorUpper } from './backends/webgpu-symmetric.js';
export { webgpuDecoderBlock, type WebgpuDecoderBlockGeometry, type WebgpuDecoderBlockHessians, type WebgpuDecoderBlockWeights } from './backends/webgpu-decoder-block.js';
export { createGptqColumnKernel, type GptqColumnArguments, type GptqColumnKernel } from './gptq-column-kernel.js';
export { learnableRoundingKernels, type LearnableRoundingGrid, type LearnableRoundingKernel, type LearnableRoundingKernelFactory, type LearnableRoundingLayout } from './learnable-rounding-kernel.js';
export { createBackend, defaultBackend, disposeDefaultBackend, BACKEND_NAMES, DEFAULT_BACKEND_ORDER } from './select-backend.js';

// Helpers
export type { BackendOption } from './resolve-backend.js';
export { resolveBackend } from './resolve-backend.js';
export type { Random } from './prng.js';
export { createRandom, fillNormal, mulberry32 } from './prng.js';
export { copyBlock } from './block.js';
export { transpose, transposeInto } from './transpose.js';
export type { MatmulOptions } from './matmul.js';
export { matmul } from './matmul.js';

// Factorizations and decompositions (float64, blocked over the backend's GEMM)
export type { CholeskyOptions } from './cholesky.js';
export { cholesky } from './cholesky.js';
export type { InvertTriangularOptions, SolveTriangularOptions } from './triangular.js';
export { invertTriangular, solveTriangular } from './triangular.js';
export type { InvertSpdOptions } from './inverse-spd.js';
export { invertSpd } from './inverse-spd.js';
export type { CholeskyInverseUpperOptions } from './cholesky-inverse-upper.js';
export { choleskyInverseUpper } from './cholesky-inverse-upper.js';
export type { EighResult } from './eigh.js';
export { eigh } from './eigh.js';
export type { QrOptions, QrResult } from './qr.js';
export { qr } from './qr.js';
export type { SvdOptions, SvdResult } from './svd.js';
export { svd } from './svd.js';
export type { RandomizedSvdOptions } from './randomized-svd.js';
export { randomizedSvd } from './randomized-svd.js';
