import type { StoredKind } from '@bitsmith/core';
import { GGUF_REFUSAL } from './gguf-llama-export.js';
import { EXPORTER_STORED_KINDS, type ModelExporter } from './stored-form-export.js';

/** The columns of the stored-kind table in docs/formats.md: every format bitsmith writes. */
export type TableFormat = 'compressed-tensors' | 'gptq' | 'gguf' | 'onnx' | 'tfjs' | 'safetensors';

/** The formats of {@link storedKindTable}, in column order. */
export const TABLE_FORMATS: readonly TableFormat[] = ['compressed-tensors', 'gptq', 'gguf', 'onnx', 'tfjs', 'safetensors'];

/** The `--save` exporter behind a column (tfjs has none: its manifest quantizes float weights by itself). */
const EXPORTER: Readonly<Record<TableFormat, ModelExporter | undefined>> = {
  'compressed-tensors': 'compressed-tensors',
  gptq: 'gptq',
  gguf: 'gguf',
  onnx: 'onnx',
  tfjs: undefined,
  safetensors: 'fake',
};

/** One row of the table: a stored kind, or a variant of one that formats treat differently. */
export interface StoredKindRow {
  readonly kind: StoredKind;
  readonly label: string;
  /** What each format writes for this row when its exporter accepts the kind; a string starting `refused:` refuses it even then. */
  readonly cells: Readonly<Record<TableFormat, string>>;
}

const TFJS = 'refused: tfjs manifests hold one affine uint8/uint16 grid per tensor, quantized from float weights by `saveTfjsModel`; a recipe\'s result has no place in them';
const FAKE = 'float32 fake-quant weights (decoded)';

/**
 * The rows of docs/formats.md's stored-kind table. A cell is shown as written when the format's exporter lists the
 * row's kind in `EXPORTER_STORED_KINDS`, else as `refused:` with the exporter's reason, so the table follows the
 * code (see {@link storedKindTable}).
 */
export const STORED_KIND_ROWS: readonly StoredKindRow[] = [
  {
    kind: 'grid',
    label: 'grid: int, symmetric or with zero points, groups/channels',
    cells: {
      'compressed-tensors': '`pack-quantized` int32 words, `weight_scale`, `weight_zero_point` (asymmetric)',
      gptq: '`qweight`/`qzeros`/`scales` (v1 stores z-1, v2 z)',
      gguf: 'Q8_0 / Q4_0 / Q5_0 / Q4_1 carry codes and scales (exact with fp16 scales and groups of 32 or multiples); Q4_K / Q5_K / Q6_K re-derive sub-block scales from the grid; else re-quantized with a warning',
      onnx: '`MatMulNBits` (2, 4, 8 bits; blocks 16-256; zero points when asymmetric)',
      tfjs: TFJS,
      safetensors: FAKE,
    },
  },
  {
    kind: 'grid',
    label: 'grid: int with act-order permutation',
    cells: {
      'compressed-tensors': '`weight_g_idx`',
      gptq: '`g_idx`',
      gguf: 'blocks of 32 that straddle permuted groups are re-quantized from the calibrated weights (warning); others carried',
      onnx: 'MatMulNBits with the codes in the permuted column order, the input gathered to match (act-order folded)',
      tfjs: TFJS,
      safetensors: FAKE,
    },
  },
  {
    kind: 'grid',
    label: 'grid: minifloat, NF4, MX, NVFP4',
    cells: {
      'compressed-tensors': 'refused: pack-quantized holds integer grids only',
      gptq: 'refused: GPTQ holds integer grids only',
      gguf: 're-quantized from the calibrated weights to the requested GGML type (warning: no GGML block holds these levels)',
      onnx: 'refused: MatMulNBits holds integer grids only',
      tfjs: TFJS,
      safetensors: FAKE,
    },
  },
  {
    kind: 'lut',
    label: 'lut (per-row lookup tables, SqueezeLLM)',
    cells: { 'compressed-tensors': '', gptq: '', gguf: '', onnx: '', tfjs: TFJS, safetensors: FAKE },
  },
  {
    kind: 'codebook',
    label: 'codebook (vector quantization, GPTVQ/VPTQ)',
    cells: { 'compressed-tensors': '', gptq: '', gguf: '', onnx: '', tfjs: TFJS, safetensors: FAKE },
  },
  {
    kind: 'low-rank',
    label: 'low-rank (grid + A B: LoRC, LQER, EoRA, SVDQuant)',
    cells: { 'compressed-tensors': '', gptq: '', gguf: '', onnx: 'MatMulNBits for the grid + two float MatMuls for A B', tfjs: TFJS, safetensors: FAKE },
  },
  {
    kind: 'sparse-outliers',
    label: 'sparse-outliers (grid + CSR outliers)',
    cells: { 'compressed-tensors': '', gptq: '', gguf: '', onnx: '', tfjs: TFJS, safetensors: FAKE },
  },
  {
    kind: 'float',
    label: 'float (layer left unquantized)',
    cells: {
      'compressed-tensors': 'float weight, listed in `ignore`',
      gptq: 'float weight (not in the quantized modules)',
      gguf: 'quantized from the float weight to the requested type, as llama-quantize does (with the imatrix when given)',
      onnx: 'float `MatMul`',
      tfjs: 'per-tensor uint8/uint16 (`saveTfjsModel`)',
      safetensors: 'float32',
    },
  },
];

/** Why an exporter refuses a kind it does not list (the generic reasons of stored-form-export, GGUF's own). */
function refusal(format: TableFormat, kind: StoredKind): string {
  if (format === 'gguf' && kind !== 'grid' && kind !== 'float') return GGUF_REFUSAL[kind];
  switch (kind) {
    case 'lut':
      return 'per-row lookup tables have no place in this format';
    case 'codebook':
      return 'vector codebooks have no place in this format';
    case 'low-rank':
      return 'the low-rank branch would be dropped: this format holds the quantized grid only';
    case 'sparse-outliers':
      return 'the sparse outliers would be dropped: this format holds the quantized grid only';
    default:
      return 'not written by this format';
  }
}

/**
 * The cell of the stored-kind table for a row and a format: what the format writes, or `refused: reason`. Follows
 * `EXPORTER_STORED_KINDS`: a kind the exporter does not list is refused whatever the row's text says.
 *
 * @example
 * ```ts
 * storedKindCell(STORED_KIND_ROWS[4]!, 'gguf'); // 'refused: GGML has no vector-codebook block type ...'
 * ```
 */
export function storedKindCell(row: StoredKindRow, format: TableFormat): string {
  const exporter = EXPORTER[format];
  if (exporter === undefined) return row.cells[format];
  if (!EXPORTER_STORED_KINDS[exporter].includes(row.kind)) return `refused: ${refusal(format, row.kind)}`;
  return row.cells[format] || 'exported';
}

/**
 * The Markdown table of docs/formats.md (rows: stored kinds and their variants; columns: formats), generated from
 * {@link STORED_KIND_ROWS} and `EXPORTER_STORED_KINDS` so the documentation cannot drift from what the exporters do.
 *
 * @example
 * ```ts
 * console.log(storedKindTable()); // | stored form | compressed-tensors | gptq | gguf | onnx | tfjs | safetensors |
 * ```
 */
export function storedKindTable(): string {
  const escape = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [`| stored form | ${TABLE_FORMATS.join(' | ')} |`, `|---|${TABLE_FORMATS.map(() => '---').join('|')}|`];
  for (const row of STORED_KIND_ROWS) lines.push(`| ${escape(row.label)} | ${TABLE_FORMATS.map((f) => escape(storedKindCell(row, f))).join(' | ')} |`);
  return lines.join('\n');
}
