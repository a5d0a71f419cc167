/**
 * GGUF v3 constants: the magic, metadata value type ids and ggml tensor type ids with their block geometry.
 * Source: ggml `docs/gguf.md`, `ggml.h` (`enum ggml_type`), gguf-py `constants.py` (`GGML_QUANT_SIZES`, `LlamaFileType`).
 */

/** `"GGUF"` read as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;
/** The GGUF version this package writes (and the newest it reads). */
export const GGUF_VERSION = 3;
/** Default alignment of the tensor data section and of every tensor's offset (`general.alignment`). */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value type ids (`gguf_type`). */
export const GGUF_VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** Name of a GGUF metadata value type. */
export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPE;

/** ggml tensor types this package encodes and decodes. */
export type GgmlTypeName = 'F32' | 'F16' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q8_0' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'IQ4_NL' | 'IQ4_XS';

/** ggml tensor type ids (`enum ggml_type`), including ones this package only names (for reading foreign files). */
export const GGML_TYPE_ID: Readonly<Record<string, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ4_NL: 20,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  BF16: 30,
};

/** Elements per block and bytes per block of each supported ggml type (`GGML_QUANT_SIZES`). */
export const GGML_BLOCK: Readonly<Record<GgmlTypeName, { readonly elements: number; readonly bytes: number }>> = {
  F32: { elements: 1, bytes: 4 },
  F16: { elements: 1, bytes: 2 },
  Q4_0: { elements: 32, bytes: 18 },
  Q4_1: { elements: 32, bytes: 20 },
  Q5_0: { elements: 32, bytes: 22 },
  Q8_0: { elements: 32, bytes: 34 },
  Q4_K: { elements: 256, bytes: 144 },
  Q5_K: { elements: 256, bytes: 176 },
  Q6_K: { elements: 256, bytes: 210 },
  IQ4_NL: { elements: 32, bytes: 18 },
  IQ4_XS: { elements: 256, bytes: 136 },
};

/** The name of a ggml type id, or `undefined` for ids this package does not know. */
export function ggmlTypeName(id: number): string | undefined {
  for (const [name, value] of Object.entries(GGML_TYPE_ID)) if (value === id) return name;
  return undefined;
}

/** `general.file_type` values (llama.cpp `llama_ftype`) for the dominant tensor type of a model file. */
export const LLAMA_FILE_TYPE: Readonly<Record<GgmlTypeName, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q4_K: 14, // MOSTLY_Q4_K_S: the closest llama.cpp label for a file of Q4_K tensors
  Q5_K: 16, // MOSTLY_Q5_K_S
  Q6_K: 18,
  IQ4_NL: 25,
  IQ4_XS: 30,
};

/** GGUF token types (`tokenizer.ggml.token_type`, llama.cpp `llama_token_type`). */
export const GGUF_TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** Block geometry of every ggml type this package can size (for reading foreign files), decodable or not. */
export const GGML_BLOCK_SIZES: Readonly<Record<string, { readonly elements: number; readonly bytes: number }>> = {
  ...GGML_BLOCK,
  Q5_1: { elements: 32, bytes: 24 },
  Q8_1: { elements: 32, bytes: 36 },
  Q2_K: { elements: 256, bytes: 84 },
  Q3_K: { elements: 256, bytes: 110 },
  Q8_K: { elements: 256, bytes: 292 },
  I8: { elements: 1, bytes: 1 },
  I16: { elements: 1, bytes: 2 },
  I32: { elements: 1, bytes: 4 },
  I64: { elements: 1, bytes: 8 },
  F64: { elements: 1, bytes: 8 },
  BF16: { elements: 1, bytes: 2 },
};
