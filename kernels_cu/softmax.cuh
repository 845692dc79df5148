// Online softmax in registers (base 2). Each thread owns rows of mma.sync m16n8k16 / wgmma m64nN
// accumulators: two rows (g and g + 8) per 16-row m-tile, each spread over the 4 threads of a quad.
// OnlineSoftmax is the per-row state and its steps (sm90); sm80 uses the quad helpers directly.
#pragma once
#include "params.cuh"
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

// Logit soft cap (p.soft_cap != 0): s = soft_cap * tanh(s * sm_scale / soft_cap), before masking.
template <int N>
NA_DEVICE void apply_soft_cap(float (&s)[N], float soft_cap, float cap_scale) {
  if (soft_cap != 0.f) {
#pragma unroll
    for (int x = 0; x < N; ++x) s[x] = soft_cap * ptx::tanh(s[x] * cap_scale);
  }
}

// One thread's two rows of a 16-row accumulator tile. Scores s of a key block hold row hh at
// s[4 nt + 2 hh + e] (8-key chunk nt, e in {0, 1}); O the same way per 8-column chunk. c2 =
// p.scale_log2 turns a logit into log2 units. update() makes P = 2^kPExp exp2(s c2 - max c2) of the
// block in place and sets scale[hh], the factor O (and the row sum) must be multiplied by. kPExp > 0
// (the fp8-MMA builds' P before its e4m3 rounding) is free: a bias of the exponent, taken out of the
// LSE again; O / l does not see it (the row sum carries the same factor).
template <int kPExp = 0>
struct OnlineSoftmax {
  // Lazy rescaling (update_lazy): a row's reference max lags its true max by at most kMaxGrowthLog2
  // (log2 units; P <= 2^8 in 16 bits), so O is rescaled only when the max grows past that, rare
  // after a row's first blocks.
  static constexpr float kMaxGrowthLog2 = 8.f;

  // Member order matters to the SASS: row_max before row_sum reorders the loop's phi registers.
  float row_sum[2] = {0.f, 0.f};
  float row_max[2] = {NA_NEG_INF, NA_NEG_INF};
  float scale[2];

  // Row hh's max over the block and its running max, across the quad.
  template <int N>
  NA_DEVICE float block_max(const float (&s)[N], int hh) const {
    float mx = row_max[hh];
#pragma unroll
    for (int nt = 0; nt < N / 4; ++nt) mx = fmaxf(mx, fmaxf(s[4 * nt + 2 * hh], s[4 * nt + 2 * hh + 1]));
    return quad_max(mx);
  }
  // Row hh of s becomes P = exp2(s c2 - offset); the row sum advances by P's sum.
  template <int N>
  NA_DEVICE void exp2_and_sum(float (&s)[N], int hh, float c2, float offset) {
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < N / 4; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float pv = ptx::exp2(fmaf(s[4 * nt + 2 * hh + e], c2, -offset));
        s[4 * nt + 2 * hh + e] = pv;
        sum += pv;
      }
    row_sum[hh] = row_sum[hh] * scale[hh] + sum;
  }

  // Exact: the reference max is the running max.
  template <int N>
  NA_DEVICE void update(float (&s)[N], float c2) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float mx = block_max(s, hh);
      const float offset = safe_offset(mx, c2);
      scale[hh] = ptx::exp2(row_max[hh] * c2 - offset);
      row_max[hh] = mx;
      exp2_and_sum(s, hh, c2, offset - kPExp);
    }
  }
  // Lazy: the reference max moves only when the block's max exceeds it by more than kMaxGrowthLog2
  // (or the row had none): P stays below 2^kMaxGrowthLog2 and most blocks leave scale at 1 (times
  // 2^kPExp: no build with kPExp > 0 runs this, tile_sm90.cuh).
  template <int N>
  NA_DEVICE void update_lazy(float (&s)[N], float c2) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float mx = block_max(s, hh);
      const bool up = mx > row_max[hh] && (row_max[hh] == NA_NEG_INF || (mx - row_max[hh]) * c2 > kMaxGrowthLog2);
      scale[hh] = up ? ptx::exp2((row_max[hh] - mx) * c2) : 1.f;
      if (up) row_max[hh] = mx;
      exp2_and_sum(s, hh, c2, safe_offset(row_max[hh], c2) - kPExp);
    }
  }
  // After update_lazy: whether some row of the warp moved its reference max (warp-uniform).
  NA_DEVICE bool warp_rescales() const { return __any_sync(0xffffffffu, scale[0] != 1.f || scale[1] != 1.f); }

  template <int N>
  NA_DEVICE void rescale_o(float (&o)[N]) const {
#pragma unroll
    for (int dt = 0; dt < N / 4; ++dt) {
      o[4 * dt + 0] *= scale[0];
      o[4 * dt + 1] *= scale[0];
      o[4 * dt + 2] *= scale[1];
      o[4 * dt + 3] *= scale[1];
    }
  }

  // Finalize row hh: l, its sum over the quad; 1 / l normalizes O (0 for a row that saw no key: an
  // empty tile or a fully masked row keeps O = 0); LSE in log2 units (-inf for such a row).
  NA_DEVICE float total(int hh) const { return quad_sum(row_sum[hh]); }
  static NA_DEVICE float inverse(float l) { return l > 0.f ? 1.f / l : 0.f; }
  NA_DEVICE float lse(int hh, float l, float c2) const {
    return l > 0.f ? row_max[hh] * c2 + (ptx::log2(l) - kPExp) : NA_NEG_INF;
  }
};

// One tile's scales with an fp8 cache: the per-tensor ones of p times the tile's KV-head entries of
// p.k_scale_heads / p.v_scale_heads / p.q_scale_kv_heads when run() was given per-head arrays. k_scale
// and q_scale multiply the logit: inside the soft cap when there is one (cap_scale), else the log2
// scale c2. (A q_scale per query head scales the rows' scores instead: query_row_scales.)
// v_head is the per-head factor alone (1 without arrays): pieces of split tiles apply it to their
// partial O, merge_split.cu the per-tensor v_scale.
struct TileScales {
  float c2, cap_scale, v_scale, v_head;
};
NA_DEVICE TileScales tile_scales(const PrefillParams& p, int kv_head) {
  TileScales t{p.scale_log2, p.cap_scale, p.v_scale, 1.f};
  if (p.k_scale_heads != nullptr || p.q_scale_kv_heads != nullptr) {
    float k = p.k_scale_heads != nullptr ? p.k_scale_heads[kv_head] : 1.f;
    if (p.q_scale_kv_heads != nullptr) k *= p.q_scale_kv_heads[kv_head];
    if (p.soft_cap != 0.f) t.cap_scale *= k;
    else t.c2 *= k;
  }
  if (p.v_scale_heads != nullptr) {
    t.v_head = p.v_scale_heads[kv_head];
    t.v_scale *= t.v_head;
  }
  return t;
}

// fp8 queries with a q_scale per query head (p.q_scale_qo_heads): the factors of the thread's
// accumulator rows, packed rows row0 + 8 hh of KV head kv_head (1 past row_end or without the array).
NA_DEVICE void query_row_scales(const PrefillParams& p, int kv_head, int row0, int row_end, float (&scale)[2]) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int packed = row0 + 8 * hh;
    scale[hh] = 1.f;
    if (p.q_scale_qo_heads != nullptr && packed < row_end) {
      const int i = packed / p.group_size;
      scale[hh] = p.q_scale_qo_heads[kv_head * p.group_size + (packed - i * p.group_size)];
    }
  }
}

// Scores s (the sm90 accumulator layout: row hh at s[4 nt + 2 hh + e]) times their row's factor.
template <int N>
NA_DEVICE void scale_score_rows(float (&s)[N], const float (&scale)[2]) {
#pragma unroll
  for (int nt = 0; nt < N / 4; ++nt)
#pragma unroll
    for (int x = 0; x < 4; ++x) s[4 * nt + x] *= scale[x / 2];
}
