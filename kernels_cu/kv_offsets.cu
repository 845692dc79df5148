// Device-side builder of the per-token K/V offset tables, for a run() whose cache strides plan()
// did not see (FlashInfer's plan() never sees the cache). A plain kernel on the caller's stream,
// so run() stays capturable in a CUDA graph. Same formulas as nvrtc_attn/paging.py.
#include "params.cuh"

extern "C" __global__ void build_kv_offsets(const __grid_constant__ OffsetParams p) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < p.total_kv;
       t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t page = p.tok_page[t];
    const int64_t slot = p.tok_slot[t];
    if (p.tok_units != nullptr) {
      p.tok_units[t] = static_cast<int32_t>(page * p.page_ratio + slot);
    } else {
      p.k_tok_elems[t] = page * p.k_stride_page + slot * p.k_stride_tok;
      p.v_tok_elems[t] = page * p.v_stride_page + slot * p.v_stride_tok;
    }
  }
}
