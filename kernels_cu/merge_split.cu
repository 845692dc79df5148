// Merge of split tiles: the sm90 plan may cut a batch's last wave of equal tiles into key-range
// pieces run by different CTAs (nvrtc_attn/schedule.split_equal_tail). Each piece stored its rows'
// normalized O (fp32) and base-2 LSE in a slot; here the pieces of one tile are combined:
//   O = sum_k 2^(lse_k - m) O_k / sum_k 2^(lse_k - m),  LSE = m + log2(sum_k 2^(lse_k - m)),
// m = max_k lse_k. One CTA per split tile; a thread handles 8 columns of one row.
#include "params.cuh"
#include "ptx_sm80.cuh"

extern "C" __global__ void __launch_bounds__(256) merge_split(const __grid_constant__ MergeParams p) {
  const int4* t = reinterpret_cast<const int4*>(p.merges) + 3 * blockIdx.x;
  const int4 t0 = t[0], t1 = t[1], t2 = t[2];
  const int kv_head = t0.y, row_start = t0.z, row_end = t0.w, q0 = t1.z;
  const int slot0 = t2.z, pieces = t2.w;
  const int chunks = p.head_dim / 8;
  for (int item = threadIdx.x; item < p.block_m * chunks; item += blockDim.x) {
    const int r = item / chunks, ch = item % chunks;
    const int packed = row_start + r;
    if (packed >= row_end) continue;
    float m = NA_NEG_INF;
    for (int k = 0; k < pieces; ++k) m = fmaxf(m, p.partial_lse[(int64_t)(slot0 + k) * p.block_m + r]);
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    float wsum = 0.f;
    if (m != NA_NEG_INF) {
      for (int k = 0; k < pieces; ++k) {
        const int64_t s = slot0 + k;
        const float w = ptx::exp2(p.partial_lse[s * p.block_m + r] - m);
        wsum += w;
        const float4* src = reinterpret_cast<const float4*>(p.partial_o + (s * p.block_m + r) * p.head_dim + ch * 8);
        const float4 a = src[0], b = src[1];
        acc[0] += w * a.x; acc[1] += w * a.y; acc[2] += w * a.z; acc[3] += w * a.w;
        acc[4] += w * b.x; acc[5] += w * b.y; acc[6] += w * b.z; acc[7] += w * b.w;
      }
    }
    const float inv = wsum > 0.f ? 1.f / wsum : 0.f;
    uint4 v;
    uint32_t* vw = reinterpret_cast<uint32_t*>(&v);
    for (int e = 0; e < 4; ++e)
      vw[e] = p.is_bf16 ? ptx::pack2<true>(acc[2 * e] * inv, acc[2 * e + 1] * inv)
                        : ptx::pack2<false>(acc[2 * e] * inv, acc[2 * e + 1] * inv);
    const int i = packed / p.group_size;
    const int h = kv_head * p.group_size + (packed - i * p.group_size);
    ptx::st_global_16(static_cast<uint16_t*>(p.o) + (q0 + i) * p.o_stride_tok + h * p.o_stride_head + ch * 8, v);
    if (p.lse != nullptr && ch == 0)
      p.lse[(q0 + i) * p.lse_stride_tok + h * p.lse_stride_head] = wsum > 0.f ? m + ptx::log2(wsum) : NA_NEG_INF;
  }
}
