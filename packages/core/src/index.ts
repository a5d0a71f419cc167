export { BitsmithError, InvalidArgumentError, ShapeMismatchError, UnsupportedFormatError, NumericalError, AbortError } from './errors.js';
export type { DataTypeMap, DType, Tensor, Matrix } from './tensor.js';
export { tensor, matrix, zeros, zerosMatrix, asMatrix, cloneTensor, shapeSize } from './tensor.js';
export { roundHalfEven, clamp } from './rounding.js';
export type { MinifloatSpec, MinifloatCodec } from './minifloat.js';
export { minifloat, FP8_E4M3, FP8_E5M2, FP6_E2M3, FP6_E3M2, FP4_E2M1, FLOAT16, BFLOAT16 } from './minifloat.js';
export { NF4_VALUES } from './nf4.js';
export type { FormatSpec, MxElement, ScaleRule, ElementCodec } from './number-format.js';
export { elementCodec, parseFormat, formatName } from './number-format.js';
export type { Granularity, GroupLayout } from './granularity.js';
export { groupLayout, validateGranularity, granularityLabel, groupIndexOfColumns } from './granularity.js';
export type { QuantizedTensor, ScaleEncoding } from './quantized-tensor.js';
export { roundScale, scaleEncodingBits } from './float-encoding.js';
export type { QuantizeOptions, GroupStatistics, QuantizationPlan } from './quantize.js';
export { quantize, dequantize, planQuantization, groupStatistics, computeScales, encodeWithScales } from './quantize.js';
export type { RangeSearchOptions } from './range-search.js';
export { rangeSearch } from './range-search.js';
export { packBits, unpackBits, packedLength } from './bit-packing.js';
export { relativeError, bitsPerWeight } from './metrics.js';
export type { StepKind, StatisticRequest, LayerStatistics, LayerAssignment, LayerState, StepWarning, StepContext, StepResult, Quantizer } from './quantizer.js';
export type { RtnOptions } from './rtn.js';
export { rtn } from './rtn.js';
export type { RuntimeInputTransform, LinearView, NormView, InputGroup, AttentionGeometry, BlockView, ModelView, HiddenStatesHandle, LinearInputCallback, QuantizableModel } from './model-view.js';
<<<<<<< HEAD
export type { BlockBackward, BlockGradients, DifferentiableModel } from './block-gradients.js';
export { isDifferentiableModel } from './block-gradients.js';
=======
export type { ActivationGranularity, ActivationObserverKind, ActivationScheme, ActivationScales, ActivationObserverOptions } from './activation-quantization.js';
export { validateActivationScheme, fakeQuantizeActivations, ActivationObserver, activationQuantizer, activationQuantizerFromDescription, composeInputTransforms, granularityName, activationGroupingAsGranularity } from './activation-quantization.js';
>>>>>>> main
