// Portable paged prefill (FlashAttention-2 style): mma.sync m16n8k16 tensor cores, ldmatrix,
// cp.async gathers of K/V rows through the plan's per-token offsets, online softmax in fp32.
// Runs on sm_80 and later; on Hopper it is the pre-SM90 path and the cross-check.
// Specialized by macros HEAD_DIM (64, 128, 256) and IS_BF16 (1: bf16, 0: fp16); KV_FP8 (1: e4m3, 2:
// e5m2) reads an fp8 cache, gathered as bytes and widened to 16 bits in shared memory by all threads.
#include "params.cuh"
#include "ptx_sm80.cuh"
#include "paged_kv_load.cuh"
#include "fp8_convert.cuh"
#include "softmax.cuh"
#include "scheduler.cuh"
#include "mask.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef IS_BF16
#define IS_BF16 1
#endif

// Tile shape, chosen per head dim in nvrtc_attn/variants.py (the one source of truth, so the
// launcher's block size and the planner's block_m always match the binary).
// Each warp owns BLOCK_M / WARPS query rows (one or two 16-row m-tiles); two m-tiles per warp
// halve the shared-memory reads per MMA, which keeps mma.sync fed; head_dim 256 needs 8 warps
// of one m-tile, and head_dim 128 a 48-key block, to stay within 255 registers without spills.
// OFFSET_UNITS (the K/V load path, chosen by plan()): 1 = one int32 table in units of the token
// stride; the next block's offsets are loaded into a register during the GEMMs and stored as final
// element offsets (measured 15-19% faster on the H100 than staging raw offsets with cp.async).
// 0 = int64 element tables (strides with stride_page % stride_token != 0): staged raw with cp.async
// so no 64-bit registers are held across the GEMMs.
#ifndef OFFSET_UNITS
#define OFFSET_UNITS 1
#endif
constexpr bool kOffsetUnits = OFFSET_UNITS != 0;  // gathers read final offsets staged from registers

#if !defined(BLOCK_M) || !defined(BLOCK_N) || !defined(WARPS) || !defined(MIN_BLOCKS) || !defined(KV_FP8)
#error "BLOCK_M, BLOCK_N, WARPS, MIN_BLOCKS and KV_FP8 come from nvrtc_attn/variants.py"
#endif
struct Dims {
  static constexpr int kBlockM = BLOCK_M, kBlockN = BLOCK_N, kWarps = WARPS, kMinBlocks = MIN_BLOCKS;
};

constexpr int kD = HEAD_DIM;
constexpr int kBM = Dims::kBlockM;
constexpr int kBN = Dims::kBlockN;
constexpr int kThreads = Dims::kWarps * 32;
constexpr int kMT = kBM / (16 * Dims::kWarps);  // 16-row m-tiles per warp
constexpr int kNT = kBN / 8;                    // 8-column tiles of S
constexpr int kDT = kD / 8;                     // 8-column tiles of O
constexpr int kRowBytes = kD * 2;               // bytes per row of the 16-bit Q, K and V tiles
constexpr int kChunks = kD / 8;                 // 16-byte chunks per row
constexpr int kRowsPerPass = kThreads / kChunks;
constexpr bool kBf16 = IS_BF16 != 0;
constexpr int kQBytes = kBM * kD * 2;
constexpr int kKVBytes = kBN * kD * 2;
static_assert(kMT >= 1, "each warp needs at least one m-tile");
constexpr int kKvFp8 = KV_FP8;  // fp8::Kind of the cache (0: the queries' 16-bit type)
constexpr bool kFp8 = kKvFp8 != 0;
constexpr int kStage8Bytes = kFp8 ? kBN * kD : 0;  // an fp8 block as gathered (K and V: one each)
// fp8 queries (Q_FP8 = 1 e4m3 / 2 e5m2, with a cache of the same kind; only those builds pass the macro): loaded as bytes
// and widened into the 16-bit Q tile by all threads (portable bit path); IS_BF16 is the output's type.
#ifndef Q_FP8
#define Q_FP8 0
#endif
constexpr bool kQFp8 = Q_FP8 != 0;
static_assert(!kQFp8 || kKvFp8 == Q_FP8, "fp8 queries need a cache of their fp8 kind");

// Dynamic shared memory: [Q | K | V | row offsets | fp8 K | fp8 V]. The host reads the size from the
// cubin (nvrtc_attn/cubin.py): no second copy of this arithmetic.
constexpr int kSmemBytes = kQBytes + 2 * kKVBytes + (int)sizeof(KvRowOffsets<kBN>) + 2 * kStage8Bytes;
extern "C" __device__ const int dynamic_smem_bytes = kSmemBytes;

// The K/V tiles' layout as fp8::widen_block writes it: [kBN][kD] rows, chunks swizzled by row (and Q's,
// for fp8::load_q_rows).
struct KvTileLayout {
  static NA_DEVICE uint32_t offset(int row, int chunk) { return swizzled_offset(row, chunk, kChunks); }
  static constexpr int kEightRowBytes = 8 * kD * 2;
};

// Gather the tile's Q rows (packed (token, head) rows) into swizzled shared memory (fp8 queries:
// synchronous loads, widened; the barrier before the first mma.sync orders them like the cp.asyncs).
NA_DEVICE void load_q_tile(const PrefillParams& p, const TileCoords& c, uint32_t q_sa, int tid) {
  if constexpr (kQFp8) {
    fp8::load_q_rows<kD, kBM, kThreads, kBf16, kKvFp8, false, KvTileLayout>(
        static_cast<const uint8_t*>(p.q), p.q_stride_tok, p.q_stride_head, c.q0, c.row_start, c.row_end,
        p.group_size, c.kv_head, q_sa, tid);
    return;
  }
  const uint16_t* q = static_cast<const uint16_t*>(p.q);
  const int chunk = tid % kChunks;
#pragma unroll 4
  for (int pass = 0; pass < kBM / kRowsPerPass; ++pass) {
    const int row = tid / kChunks + pass * kRowsPerPass;
    const int packed = c.row_start + row;
    const bool valid = packed < c.row_end;
    const int i = packed / p.group_size;
    const int h = c.kv_head * p.group_size + (packed - i * p.group_size);
    const uint16_t* src = valid ? q + (c.q0 + i) * p.q_stride_tok + h * p.q_stride_head + chunk * 8 : q;
    ptx::cp_async_16(q_sa + swizzled_offset(row, chunk, kChunks), src, valid ? 16 : 0);
  }
}

// One block of K (kIsV false) or V: 16-bit rows straight into the swizzled tile (tile16), fp8 rows
// into their staging tile (tile8), widened by widen() once they landed.
template <bool kIsV>
NA_DEVICE void gather_block(const PrefillParams& p, uint32_t tile16, uint32_t tile8, const KvRowOffsets<kBN>& offs,
                            int parity, int n0, int kv_end, int kv_head, int tid) {
  if constexpr (kFp8) {
    gather_kv_block<kD, kBN, kThreads, kIsV, kOffsetUnits, 1>(p, tile8, offs, parity, n0, kv_end, kv_head, tid);
  } else {
    gather_kv_block<kD, kBN, kThreads, kIsV, kOffsetUnits>(p, tile16, offs, parity, n0, kv_end, kv_head, tid);
  }
}

// fp8 cache: every thread's copies of the staged block have landed (the caller's cp.async wait and
// __syncthreads) and nothing reads tile16 any more; widen it, and a barrier before mma.sync reads it.
NA_DEVICE void widen(uint32_t tile8, uint32_t tile16, int tid) {
  if constexpr (kFp8) {
    fp8::widen_block<kD, kBN, kThreads, kBf16, kKvFp8, false, KvTileLayout>(tile8, tile16, tid);
    __syncthreads();
  }
}

// Soft cap and mask of a block's scores s (keys n0..; logits), before the softmax: every 16-row
// m-tile's accumulator rows (warp_row0 + 16 mt + g + 8 hh) see the keys mask.cuh gives them.
// fp8 queries with a q_scale per query head: the scores first take their row's factor (q_rows[2 mt + hh]).
NA_DEVICE void cap_and_mask(float (&s)[kMT][kNT][4], const PrefillParams& p, const TileCoords& c, int n0,
                            int min_hi, int max_lo, int warp_row0, int g, int t4, float cap_scale,
                            const float (&q_rows)[kMT * 2]) {
  if constexpr (kQFp8) {
    if (p.q_scale_qo_heads != nullptr) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][nt][e] *= q_rows[2 * mt + e / 2];
    }
  }
  if (p.soft_cap != 0.f) {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = p.soft_cap * ptx::tanh(s[mt][nt][e] * cap_scale);
  }
  if (n0 + kBN > min_hi || n0 < max_lo) {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int packed = c.row_start + warp_row0 + mt * 16 + g + hh * 8;
        const int i = packed / p.group_size;
        const int hi = row_hi(p, c, i);
        const int lo = row_lo(p, c, i);
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = n0 + nt * 8 + 2 * t4 + e;
            if (j >= hi || j < lo) s[mt][nt][hh * 2 + e] = NA_NEG_INF;
          }
      }
  }
}

// Online softmax of the block (log2 domain): s becomes P, the row statistics advance and O is
// rescaled by each row's correction factor.
NA_DEVICE void online_softmax(float (&s)[kMT][kNT][4], float (&o)[kMT][kDT][4], float (&row_max)[kMT * 2],
                              float (&row_sum)[kMT * 2], float c2) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = mt * 2 + hh;
      float mx = row_max[r];
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][hh * 2], s[mt][nt][hh * 2 + 1]));
      mx = quad_max(mx);
      const float offset = safe_offset(mx, c2);
      const float corr = ptx::exp2(row_max[r] * c2 - offset);
      row_max[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pv = ptx::exp2(fmaf(s[mt][nt][hh * 2 + e], c2, -offset));
          s[mt][nt][hh * 2 + e] = pv;
          sum += pv;
        }
      row_sum[r] = row_sum[r] * corr + sum;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        o[mt][dt][hh * 2] *= corr;
        o[mt][dt][hh * 2 + 1] *= corr;
      }
    }
}

// Epilogue, first half: normalize O by the row sums (times v_scale) and stage it in this warp's own
// Q rows (the swizzled Q layout), and store the LSE (log2 units times lse_scale) by one lane per row. A row that saw no key
// (l = 0: an empty tile or a fully masked row) gets O = 0 and LSE = -inf.
NA_DEVICE void stage_o_and_lse(const PrefillParams& p, const TileCoords& c, const float (&o)[kMT][kDT][4],
                               const float (&row_max)[kMT * 2], const float (&row_sum)[kMT * 2], uint8_t* q_s,
                               int warp_row0, int g, int t4, float c2, float v_scale) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = mt * 2 + hh;
      const float l = quad_sum(row_sum[r]);
      const float inv = l > 0.f ? v_scale / l : 0.f;  // FlashInfer's v_scale (p's or the tile's), fused here
      const int local = warp_row0 + mt * 16 + g + hh * 8;
      const uint32_t row_off = local * kRowBytes + (g << 4) + 4 * t4;  // swizzle bits = g = local & 7
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const uint32_t packed = ptx::pack2<kBf16>(o[mt][dt][hh * 2] * inv, o[mt][dt][hh * 2 + 1] * inv);
        *reinterpret_cast<uint32_t*>(q_s + swizzle_step(row_off, dt)) = packed;
      }
      const int packed_row = c.row_start + local;
      if (p.lse != nullptr && t4 == 0 && packed_row < c.row_end) {
        const int i = packed_row / p.group_size;
        const int h = c.kv_head * p.group_size + (packed_row - i * p.group_size);
        p.lse[(c.q0 + i) * p.lse_stride_tok + h * p.lse_stride_head] =
            (l > 0.f ? row_max[r] * c2 + ptx::log2(l) : NA_NEG_INF) * p.lse_scale;
      }
    }
}

// The tile's O rows, staged in shared memory by stage_o_and_lse, to global memory with coalesced
// 16-byte stores.
NA_DEVICE void store_o_rows(const PrefillParams& p, const TileCoords& c, const uint8_t* q_s, int tid) {
  uint16_t* out = static_cast<uint16_t*>(p.o);
  const int chunk = tid % kChunks;
#pragma unroll 4
  for (int pass = 0; pass < kBM / kRowsPerPass; ++pass) {
    const int row = tid / kChunks + pass * kRowsPerPass;
    const int packed = c.row_start + row;
    if (packed < c.row_end) {
      const int i = packed / p.group_size;
      const int h = c.kv_head * p.group_size + (packed - i * p.group_size);
      const uint4 val = *reinterpret_cast<const uint4*>(q_s + swizzled_offset(row, chunk, kChunks));
      ptx::st_global_16(out + (c.q0 + i) * p.o_stride_tok + h * p.o_stride_head + chunk * 8, val);
    }
  }
}

// Accumulator tiles n and n + 1 (8 columns each) of every m-tile += A x one ldmatrix.x4 B fragment
// (b0, b1: tile n; b2, b3: tile n + 1), mma.sync m16n8k16: the inner step of both GEMMs.
template <int N>
NA_DEVICE void mma_pair(float (&acc)[kMT][N][4], int n, const uint32_t (&a)[kMT][4], uint32_t b0, uint32_t b1,
                        uint32_t b2, uint32_t b3) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
    ptx::mma_16816<kBf16>(acc[mt][n], a[mt], b0, b1);
    ptx::mma_16816<kBf16>(acc[mt][n + 1], a[mt], b2, b3);
  }
}

// S = Q K^T for this warp's kMT m-tiles and the block's kBN keys: ldmatrix fragments of Q (A) and K
// (B) from their swizzled tiles (q_lane, k_lane: this lane's bases, see swizzle_step), mma.sync m16n8k16.
NA_DEVICE void scores_qk(float (&s)[kMT][kNT][4], uint32_t q_lane, uint32_t k_lane) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    uint32_t a[kMT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
      ptx::ldmatrix_x4(swizzle_step(q_lane, kk * 2) + mt * 16 * kRowBytes, a[mt][0], a[mt][1], a[mt][2], a[mt][3]);
#pragma unroll
    for (int np = 0; np < kNT / 2; ++np) {
      uint32_t b0, b1, b2, b3;
      ptx::ldmatrix_x4(swizzle_step(k_lane, kk * 2) + np * 16 * kRowBytes, b0, b1, b2, b3);
      mma_pair(s, 2 * np, a, b0, b1, b2, b3);
    }
  }
}

// O += P V: P (the softmax's s) packed to 16 bits in registers as the A fragments (the accumulator
// layout of S is that of A), V's fragments by transposing ldmatrix from its tile (v_lane).
NA_DEVICE void accumulate_pv(float (&o)[kMT][kDT][4], const float (&s)[kMT][kNT][4], uint32_t v_lane) {
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk) {
    uint32_t a[kMT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      a[mt][0] = ptx::pack2<kBf16>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
      a[mt][1] = ptx::pack2<kBf16>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
      a[mt][2] = ptx::pack2<kBf16>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
      a[mt][3] = ptx::pack2<kBf16>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
    }
#pragma unroll
    for (int dp = 0; dp < kDT / 2; ++dp) {
      uint32_t b0, b1, b2, b3;
      ptx::ldmatrix_x4_trans(swizzle_step(v_lane, dp * 2) + kk * 16 * kRowBytes, b0, b1, b2, b3);
      mma_pair(o, 2 * dp, a, b0, b1, b2, b3);
    }
  }
}

extern "C" __global__ void __launch_bounds__(kThreads, Dims::kMinBlocks)
prefill_sm80(const __grid_constant__ PrefillParams p) {
  extern __shared__ __align__(128) uint8_t smem[];
  if (ptx::dynamic_smem_size() < kSmemBytes) __trap();  // launched with less than dynamic_smem_bytes
  uint8_t* q_s = smem;
  KvRowOffsets<kBN>& offs = *reinterpret_cast<KvRowOffsets<kBN>*>(smem + kQBytes + 2 * kKVBytes);
  const uint32_t q_sa = ptx::smem_addr(q_s);
  const uint32_t k_sa = q_sa + kQBytes;
  const uint32_t v_sa = k_sa + kKVBytes;
  const uint32_t k8_sa = v_sa + kKVBytes + (int)sizeof(KvRowOffsets<kBN>);  // fp8 staging
  const uint32_t v8_sa = k8_sa + kStage8Bytes;

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int g = lane / 4;   // accumulator row within an 8-row half
  const int t4 = lane % 4;  // accumulator column pair
  const int warp_row0 = warp * kMT * 16;
  const float c2 = p.scale_log2;
  // Per-lane ldmatrix bases (see swizzle_step): A = Q rows, B = K rows, Bt = V rows (transposed).
  const int a_row = (lane % 8) + ((lane / 8) % 2) * 8;
  const uint32_t q_lane = q_sa + (warp_row0 + a_row) * kRowBytes + (((lane / 16) ^ (lane % 8)) << 4);
  const int b_row = (lane % 8) + (lane / 16) * 8;
  const uint32_t k_lane = k_sa + b_row * kRowBytes + ((((lane / 8) % 2) ^ (lane % 8)) << 4);
  const uint32_t v_lane = v_sa + a_row * kRowBytes + (((lane / 16) ^ (lane % 8)) << 4);

  const int w_end = p.work_indptr[blockIdx.x + 1];
  for (int w = p.work_indptr[blockIdx.x]; w < w_end; ++w) {
    const TileCoords c = load_tile(p, w);
    if (w + 1 < w_end) prefetch_tile(p, w + 1);
    const int n_blocks = c.kv_end > c.kv_start ? (c.kv_end - c.kv_start + kBN - 1) / kBN : 0;
    // Keys every row of the tile sees: blocks inside [max_lo, min_hi) need no mask.
    const int min_hi = row_hi(p, c, c.row_start / p.group_size);
    const int max_lo = row_lo(p, c, (c.row_end - 1) / p.group_size);
    const TileScales ts = kFp8 ? tile_scales(p, c.kv_head) : TileScales{c2, p.cap_scale, p.v_scale, 1.f};
    float q_rows[kMT * 2];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      float r[2] = {1.f, 1.f};
      if constexpr (kQFp8) query_row_scales(p, c.kv_head, c.row_start + warp_row0 + 16 * mt + g, c.row_end, r);
      q_rows[2 * mt] = r[0];
      q_rows[2 * mt + 1] = r[1];
    }

    float o[kMT][kDT][4];
    float row_max[kMT * 2], row_sum[kMT * 2];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.f;
      row_max[2 * mt] = row_max[2 * mt + 1] = NA_NEG_INF;
      row_sum[2 * mt] = row_sum[2 * mt + 1] = 0.f;
    }

    if (n_blocks > 0) {
      const int tok0 = c.kv_tok0;
      int n = n_blocks - 1;  // walk KV blocks last to first: masked blocks come first
#if OFFSET_UNITS
      store_row_offsets<kBN>(p, offs, n & 1, load_row_units<kBN>(p, tok0, c.kv_start + n * kBN, c.kv_end, tid),
                             c.kv_head, tid);
      __syncthreads();
      load_q_tile(p, c, q_sa, tid);
#else
      stage_row_offsets<kBN>(p, offs, n & 1, tok0, c.kv_start + n * kBN, c.kv_end, tid);
      ptx::cp_async_commit();
      load_q_tile(p, c, q_sa, tid);
      ptx::cp_async_commit();
      ptx::cp_async_wait<1>();  // the offsets of block n landed (Q may still be in flight)
      __syncthreads();
#endif
      gather_block<false>(p, k_sa, k8_sa, offs, n & 1, c.kv_start + n * kBN, c.kv_end, c.kv_head, tid);
      ptx::cp_async_commit();

      for (; n >= 0; --n) {
        const int n0 = c.kv_start + n * kBN;
#if OFFSET_UNITS
        const int32_t next_units = n > 0 ? load_row_units<kBN>(p, tok0, n0 - kBN, c.kv_end, tid) : 0;
#endif
        ptx::cp_async_wait<0>();  // K[n] (and Q) landed
        __syncthreads();          // ... for every thread; V buffer free
        gather_block<true>(p, v_sa, v8_sa, offs, n & 1, n0, c.kv_end, c.kv_head, tid);
#if !OFFSET_UNITS
        if (n > 0) stage_row_offsets<kBN>(p, offs, (n - 1) & 1, tok0, n0 - kBN, c.kv_end, tid);
#endif
        ptx::cp_async_commit();
        widen(k8_sa, k_sa, tid);  // fp8: K[n] to 16 bits

        float s[kMT][kNT][4];
        scores_qk(s, q_lane, k_lane);  // S = Q K^T

        // Soft cap, mask, online softmax (log2 domain).
        cap_and_mask(s, p, c, n0, min_hi, max_lo, warp_row0, g, t4, ts.cap_scale, q_rows);
        online_softmax(s, o, row_max, row_sum, ts.c2);

#if OFFSET_UNITS
        if (n > 0) store_row_offsets<kBN>(p, offs, (n - 1) & 1, next_units, c.kv_head, tid);
#endif
        ptx::cp_async_wait<0>();  // V[n] and the offsets of block n - 1 landed
        __syncthreads();          // ... for every thread; K buffer free
        if (n > 0) {
          gather_block<false>(p, k_sa, k8_sa, offs, (n - 1) & 1, n0 - kBN, c.kv_end, c.kv_head, tid);
          ptx::cp_async_commit();
        }
        widen(v8_sa, v_sa, tid);  // fp8: V[n] to 16 bits

        accumulate_pv(o, s, v_lane);  // O += P V
      }
    }

    // Epilogue: normalize, stage O in this warp's own Q rows, then coalesced 16-byte stores.
    stage_o_and_lse(p, c, o, row_max, row_sum, q_s, warp_row0, g, t4, ts.c2, ts.v_scale);
    __syncthreads();
    store_o_rows(p, c, q_s, tid);
    __syncthreads();  // shared memory is reused by the next tile
  }
}
