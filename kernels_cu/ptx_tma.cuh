// TMA (cp.async.bulk.tensor) primitives for the Hopper kernel, one PTX instruction per function.
// Tensor maps are encoded on the host (nvrtc_attn/launcher.py, cuTensorMapEncodeTiled) and reach
// the kernel as a `const __grid_constant__` parameter, so their generic address is valid here.
#pragma once
#include "params.cuh"

namespace ptx {

// mbarrier.arrive.expect_tx: this thread's arrival, plus `bytes` of transactions the phase must
// also see complete (TMA copies signal complete_tx on the same barrier).
NA_DEVICE void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n"
               ::"r"(bar), "r"(bytes) : "memory");
}

// prefetch.tensormap: warm the descriptor cache before the first copy through this map.
NA_DEVICE void tma_prefetch_map(const TensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// cp.async.bulk.tensor.3d: box at coordinates (c0 innermost, c1, c2) into shared memory `dst`,
// completing `bar`'s transactions.
NA_DEVICE void tma_load_3d(uint32_t dst, const TensorMap* map, uint32_t bar, int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5}], [%2];\n"
      ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// cp.async.bulk.tensor.5d: as above with five coordinates.
NA_DEVICE void tma_load_5d(uint32_t dst, const TensorMap* map, uint32_t bar, int c0, int c1, int c2, int c3,
                           int c4) {
  asm volatile(
      "cp.async.bulk.tensor.5d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5, %6, %7}], [%2];\n"
      ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4)
      : "memory");
}

}  // namespace ptx
