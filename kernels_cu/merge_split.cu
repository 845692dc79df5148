// The merge of split tiles (issue 11). plan() may cut a tile's key range into pieces
// (nvrtc_attn/schedule.split_rows), each run by a CTA of the sm90 kernel that stores its rows' O over
// its keys, normalized, in fp32, and their base-2 LSE in a slot of the float workspace
// (epilogue_sm90.cuh: store_partial). After the prefill kernel, on its stream, every row of every split
// tile combines its pieces, in piece order (deterministic: the same pieces give the same bits):
//   m = max_j lse_j,  w_j = 2^(lse_j - m),  O = v_scale * sum_j w_j O_j / sum_j w_j,
//   LSE = (m + log2(sum_j w_j)) * lse_scale.
// A piece the row saw no key of (lse_j = -inf, O_j = 0) weighs 0; a row that saw no key at all gets
// O = 0 and LSE = -inf. Counts come from the plan buffer, so a launch captured in a CUDA graph stays
// valid after later plans. One thread per (split tile, KV head, row, 8 columns), grid-stride.
// The launch is programmatic (nvrtc_attn/launcher.py): its CTAs may be scheduled while the prefill's
// last tiles run (the split builds issue launch_dependents at their start) and wait in
// grid_dependency_wait, so the merge follows the prefill without a launch gap.
#include "params.cuh"
#include "ptx_sm80.cuh"

constexpr int kMergeThreads = 256;

// The loads that do not depend on the prefill (the plan's counts and merge table) are issued before
// grid_dependency_wait; after it, a row's LSEs and partial O of up to kBatch pieces are loaded at once
// (one round trip instead of two, then the general loop for more pieces).
constexpr int kBatch = 4;

// acc += w * (a, b): one piece's 8 columns, weighted.
NA_DEVICE void add_weighted(float (&acc)[8], float w, const float4& a, const float4& b) {
  acc[0] += w * a.x; acc[1] += w * a.y; acc[2] += w * a.z; acc[3] += w * a.w;
  acc[4] += w * b.x; acc[5] += w * b.y; acc[6] += w * b.z; acc[7] += w * b.w;
}

extern "C" __global__ void __launch_bounds__(kMergeThreads) merge_split(const __grid_constant__ MergeParams p) {
  const int chunks = p.head_dim / 8;            // 16-byte output chunks per row
  const int per_head = p.block_m * chunks;
  const int per_merge = p.num_kv_heads * per_head;
  const int items = p.counts[kCountMerges] * per_merge;  // the host keeps slots * block_m * head_dim < 2^31
  bool waited = false;
  for (int it = blockIdx.x * kMergeThreads + threadIdx.x; it < items; it += gridDim.x * kMergeThreads) {
    const int m = it / per_merge;
    const int h = (it - m * per_merge) / per_head;
    const int rc = it - m * per_merge - h * per_head;
    const int r = rc / chunks;
    const int ch = rc - r * chunks;
    const int4 e = reinterpret_cast<const int4*>(p.merges)[2 * m];  // req, -, row_start, row_end
    const int2 f = reinterpret_cast<const int2*>(p.merges)[4 * m + 2];  // first_piece, pieces
    const int pieces = f.y;
    const int packed = e.z + r;
    if (packed >= e.w) continue;
    const int i = packed / p.group_size;
    const int hq = h * p.group_size + (packed - i * p.group_size);
    const int64_t q = p.qo_indptr[e.x] + i;
    if (!waited) {  // launched early (launcher: programmatic): the pieces' partials from here on
      ptx::grid_dependency_wait();
      waited = true;
    }
    // Piece j's slot is (first_piece + j) * num_kv_heads + h; row r of a slot is its tile's row r.
    const int64_t row0 = (static_cast<int64_t>(f.x) * p.num_kv_heads + h) * p.block_m + r;
    const int64_t step = static_cast<int64_t>(p.num_kv_heads) * p.block_m;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    float mx = NA_NEG_INF, wsum = 0.f;
    if (pieces <= kBatch) {
      float l[kBatch];
      float4 a[kBatch], b[kBatch];
#pragma unroll
      for (int j = 0; j < kBatch; ++j) {
        l[j] = NA_NEG_INF;
        a[j] = b[j] = make_float4(0.f, 0.f, 0.f, 0.f);
        if (j < pieces) {
          const int64_t row = row0 + j * step;
          const float* src = p.partial_o + row * p.head_dim + ch * 8;  // written by the finished prefill:
          l[j] = p.partial_lse[row];                                      // read-only here (ld.global.nc)
          const uint4 u0 = ptx::ld_global_nc_16(src), u1 = ptx::ld_global_nc_16(src + 4);
          a[j] = make_float4(__uint_as_float(u0.x), __uint_as_float(u0.y), __uint_as_float(u0.z), __uint_as_float(u0.w));
          b[j] = make_float4(__uint_as_float(u1.x), __uint_as_float(u1.y), __uint_as_float(u1.z), __uint_as_float(u1.w));
        }
      }
#pragma unroll
      for (int j = 0; j < kBatch; ++j) mx = fmaxf(mx, l[j]);
      if (mx != NA_NEG_INF) {
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
          const float w = ptx::exp2(l[j] - mx);  // 0 for a piece without keys (-inf) or past pieces
          wsum += w;
          add_weighted(acc, w, a[j], b[j]);
        }
      }
    } else {
      for (int j = 0; j < pieces; ++j) mx = fmaxf(mx, p.partial_lse[row0 + j * step]);
      if (mx != NA_NEG_INF) {
        for (int j = 0; j < pieces; ++j) {
          const int64_t row = row0 + j * step;
          const float w = ptx::exp2(p.partial_lse[row] - mx);  // 0 for a piece without keys (-inf)
          const float4* src = reinterpret_cast<const float4*>(p.partial_o + row * p.head_dim + ch * 8);
          wsum += w;
          add_weighted(acc, w, src[0], src[1]);
        }
      }
    }
    const float inv = wsum > 0.f ? p.v_scale / wsum : 0.f;
    uint4 v;
    uint32_t* vw = reinterpret_cast<uint32_t*>(&v);
#pragma unroll
    for (int k = 0; k < 4; ++k)
      vw[k] = p.is_bf16 ? ptx::pack2<true>(acc[2 * k] * inv, acc[2 * k + 1] * inv)
                        : ptx::pack2<false>(acc[2 * k] * inv, acc[2 * k + 1] * inv);
    ptx::st_global_16(static_cast<uint16_t*>(p.o) + q * p.o_stride_tok + hq * p.o_stride_head + ch * 8, v);
    if (p.lse != nullptr && ch == 0)
      p.lse[q * p.lse_stride_tok + hq * p.lse_stride_head] = wsum > 0.f ? (mx + ptx::log2(wsum)) * p.lse_scale : NA_NEG_INF;
  }
  // Every CTA waits for the prefill, those without a row too: the merge's completion then implies the
  // prefill's, so the next launch on the stream (the next layer's prefill, which claims its tiles from
  // the plan's counters) never overlaps this one's prefill.
  if (!waited) ptx::grid_dependency_wait();
}
