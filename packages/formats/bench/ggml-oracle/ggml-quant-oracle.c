// Oracle for bitsmith's GGML encoders: reads float32 values (and optional importance weights) and writes the bytes
// that ggml's own quantizer produces (ggml_quantize_chunk, the function llama-quantize calls).
// Build (see bench/setup-llama-cpp.sh): compiled together with ggml-quants.c with -ffp-contract=off so that C float
// arithmetic is not fused into FMA, matching bitsmith's operation-by-operation float32 encoders.
//   ggml-quant-oracle TYPE ROWS COLUMNS values.f32 [importance.f32|-] out.bin
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "ggml-quants.h"

static void * read_all(const char * path, size_t bytes) {
  FILE * f = fopen(path, "rb");
  if (!f) { perror(path); exit(2); }
  void * p = malloc(bytes);
  if (fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "short read %s\n", path); exit(2); }
  fclose(f);
  return p;
}

int main(int argc, char ** argv) {
  if (argc < 7) { fprintf(stderr, "usage: %s TYPE ROWS COLUMNS values.f32 importance.f32|- out.bin\n", argv[0]); return 1; }
  enum ggml_type type;
  const char * t = argv[1];
  if (!strcmp(t, "Q4_K")) type = GGML_TYPE_Q4_K; else if (!strcmp(t, "Q5_K")) type = GGML_TYPE_Q5_K;
  else if (!strcmp(t, "Q6_K")) type = GGML_TYPE_Q6_K; else if (!strcmp(t, "IQ4_NL")) type = GGML_TYPE_IQ4_NL;
  else if (!strcmp(t, "IQ4_XS")) type = GGML_TYPE_IQ4_XS; else if (!strcmp(t, "Q4_0")) type = GGML_TYPE_Q4_0;
  else if (!strcmp(t, "Q8_0")) type = GGML_TYPE_Q8_0; else { fprintf(stderr, "unknown type %s\n", t); return 1; }
  const int64_t rows = atoll(argv[2]), columns = atoll(argv[3]);
  float * x = read_all(argv[4], sizeof(float) * rows * columns);
  float * w = strcmp(argv[5], "-") ? read_all(argv[5], sizeof(float) * columns) : NULL;
  const size_t bytes = ggml_row_size(type, columns) * rows;
  void * out = calloc(1, bytes);
  // The quantizers of ggml-quants.c compiled into this program (not the library's, which may use FMA).
  switch (type) {
    case GGML_TYPE_Q4_K: quantize_q4_K(x, out, rows, columns, w); break;
    case GGML_TYPE_Q5_K: quantize_q5_K(x, out, rows, columns, w); break;
    case GGML_TYPE_Q6_K: quantize_q6_K(x, out, rows, columns, w); break;
    case GGML_TYPE_IQ4_NL: quantize_iq4_nl(x, out, rows, columns, w); break;
    case GGML_TYPE_IQ4_XS: quantize_iq4_xs(x, out, rows, columns, w); break;
    case GGML_TYPE_Q4_0: quantize_q4_0(x, out, rows, columns, w); break;
    case GGML_TYPE_Q8_0: quantize_q8_0(x, out, rows, columns, w); break;
    default: return 1;
  }
  FILE * f = fopen(argv[6], "wb");
  fwrite(out, 1, bytes, f);
  fclose(f);
  return 0;
}
