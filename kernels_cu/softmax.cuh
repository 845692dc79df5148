// Online softmax in registers (base 2). Each thread owns rows of mma.m16n8k16 accumulators:
// two rows (g and g + 8) per 16-row m-tile, each spread over the 4 threads of a quad.
#pragma once
#include "ptx_sm80.cuh"

NA_DEVICE float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
NA_DEVICE float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The exponent offset of a row: its running max in the log2 domain, 0 while the row is fully
// masked (max = -inf) so that exp2(-inf - offset) stays 0 instead of NaN.
NA_DEVICE float safe_offset(float row_max, float scale_log2) {
  return row_max == NA_NEG_INF ? 0.f : row_max * scale_log2;
}
