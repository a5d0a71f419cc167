import { InvalidArgumentError, ShapeMismatchError, type InputGroup, type Matrix } from '@bitsmith/core';

/**
 * Folds a per-input-channel scale `s` into an input group exactly: the producer's output channel `j` is divided by
 * `s_j` (a norm's weight and bias, or a producing linear's row `j` and bias `j`) and every linear of the group has its
 * input column `j` multiplied by `s_j`, so `(x / s) (W diag(s))^T = x W^T` and the float model is unchanged
 * (SmoothQuant, arXiv:2211.10438, eq. 3; AWQ, arXiv:2306.00978, section 3.2).
 *
 * New arrays are assigned to the views' fields; the arrays they held before are never written.
 *
 * @throws InvalidArgumentError for a group with producer `none` (nothing to fold into), a linear with a run-time
 *   input transform (an online Hadamard: the scale would not commute with it), or a non-positive or
 *   non-finite scale; ShapeMismatchError when `scales` does not match the group's input features.
 * @example
 * ```ts
 * foldInputScales(block.inputGroups[0], scales); // input_layernorm.weight /= s; q/k/v columns *= s
 * ```
 */
export function foldInputScales(group: InputGroup, scales: Float32Array): void {
  const producer = group.producer;
  if (producer.kind === 'none') throw new InvalidArgumentError('group', 'its producer is "none": a scale cannot be folded exactly');
  const n = scales.length;
  for (let j = 0; j < n; j++) {
    const s = scales[j]!;
    if (!(s > 0 && Number.isFinite(s))) throw new InvalidArgumentError('scales', `scale ${j} is ${s}; expected a positive finite number`);
  }
  for (const linear of group.linears) {
    if (linear.inputTransform) {
      throw new InvalidArgumentError('group', `${linear.name} has a run-time input transform (${linear.inputTransform.name}); a per-channel scale does not commute with it, so it cannot be folded exactly`);
    }
    if (linear.weight.shape[1] !== n) throw new ShapeMismatchError(`${linear.name}.weight`, [linear.weight.shape[0], n], linear.weight.shape, 'one scale per input column');
  }
  if (producer.kind === 'norm') {
    const norm = producer.norm;
    if (norm.weight.length !== n) throw new ShapeMismatchError(`${norm.name}.weight`, [n], [norm.weight.length]);
    const offset = norm.gainOffset ?? 0;
    if (offset === 0) norm.weight = divideVector(norm.weight, scales);
    else {
      // The gain is offset + w (Gemma's 1 + w): the new weight makes offset + w' = (offset + w) / s.
      const w = new Float32Array(n);
      for (let j = 0; j < n; j++) w[j] = (offset + norm.weight[j]!) / scales[j]! - offset;
      norm.weight = w;
    }
    if (norm.bias) norm.bias = divideVector(norm.bias, scales);
  } else {
    const linear = producer.linear;
    const [rows, columns] = linear.weight.shape;
    if (rows !== n) throw new ShapeMismatchError(`${linear.name}.weight`, [n, columns], linear.weight.shape, 'one scale per output row of the producer');
    const src = linear.weight.data;
    const data = new Float32Array(rows * columns);
    for (let r = 0; r < rows; r++) {
      const inv = 1 / scales[r]!;
      for (let c = r * columns; c < (r + 1) * columns; c++) data[c] = src[c]! * inv;
    }
    linear.weight = { dtype: 'float32', shape: [rows, columns], data };
    if (linear.bias) linear.bias = divideVector(linear.bias, scales);
  }
  for (const linear of group.linears) linear.weight = scaleColumns(linear.weight, scales);
}

/** `W diag(s)`: a new matrix with column `j` multiplied by `s_j`. */
export function scaleColumns(weight: Matrix, scales: Float32Array): Matrix {
  const [rows, columns] = weight.shape;
  if (scales.length !== columns) throw new ShapeMismatchError('scales', [columns], [scales.length], 'one scale per input column');
  const src = weight.data;
  const data = new Float32Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let j = 0; j < columns; j++) data[o + j] = src[o + j]! * scales[j]!;
  }
  return { dtype: 'float32', shape: [rows, columns], data };
}

function divideVector(v: Float32Array, scales: Float32Array): Float32Array {
  const out = new Float32Array(v.length);
  for (let j = 0; j < v.length; j++) out[j] = v[j]! / scales[j]!;
  return out;
}
