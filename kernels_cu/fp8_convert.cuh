// The only place that knows the fp8 bit layouts: a KV cache in e4m3 or e5m2 (KV_FP8 = 1 or 2) is
// widened in shared memory to the queries' 16-bit type, exactly (fp16 and bf16 hold every finite
// e4m3 and e5m2 value), into the tiles the 16-bit GEMMs read unchanged.
#pragma once
#include "ptx_sm80.cuh"

namespace fp8 {

enum Kind : int { kNone = 0, kE4M3 = 1, kE5M2 = 2 };

// Four fp8 bytes x (element 0 in the low byte) -> two words of 16-bit pairs: lo = (e1, e0),
// hi = (e3, e2), element 0 in the low half.
// Portable path (every arch): prmt places each byte in its own 16-bit half with the byte's sign
// replicated over the byte above it; a shift moves exponent and mantissa onto the 16-bit type's low
// exponent and high mantissa bits, whose sign bit then holds a copy of the fp8 sign; the mask keeps
// those bits only. The half then reads as the fp8 value times 2^(bias8 - bias16), subnormals
// included, and one exact multiply by 2^(bias16 - bias8) finishes it:
//   e4m3 -> bf16: shift 4, x 2^120     e4m3 -> f16: shift 7, x 2^8
//   e5m2 -> bf16: shift 5, x 2^112     e5m2 -> f16: the byte is the top half of an f16 (prmt alone)
// kHwCvt (sm_89+): e4m3 -> f16 by cvt.rn.f16x2.e4m3x2 instead (the sm80 kernel keeps the portable
// path: it is built for sm_80 too, and its cross-check is then an independent implementation).
// NaN and inf bytes, which a cache never holds, come out finite.
template <bool kBf16, int kKind, bool kHwCvt>
NA_DEVICE void widen4(uint32_t x, uint32_t& lo, uint32_t& hi) {
  static_assert(kKind == kE4M3 || kKind == kE5M2, "fp8 kind: 1 (e4m3) or 2 (e5m2)");
  if constexpr (kKind == kE5M2 && !kBf16) {
    lo = ptx::prmt(x, 0x1404);  // (e1 << 24) | (e0 << 8)
    hi = ptx::prmt(x, 0x3424);
  } else if constexpr (kKind == kE4M3 && !kBf16 && kHwCvt) {
    ptx::cvt_f16x2_e4m3x4(x, lo, hi);
  } else {
    constexpr int kShift = kBf16 ? (kKind == kE4M3 ? 4 : 5) : 7;
    constexpr uint32_t kMask = kBf16 ? (kKind == kE4M3 ? 0x87F087F0u : 0x8FE08FE0u) : 0xBF80BF80u;
    constexpr uint32_t kScale = kBf16 ? (kKind == kE4M3 ? 0x7B807B80u : 0x77807780u) : 0x5C005C00u;
    constexpr uint32_t kNegZero = 0x80008000u;  // a * s + (-0) == a * s exactly, zeros keep their sign
    lo = ptx::fma2<kBf16>((ptx::prmt(x, 0x9180) << kShift) & kMask, kScale, kNegZero);  // (sgn e1, e1, sgn e0, e0)
    hi = ptx::fma2<kBf16>((ptx::prmt(x, 0xB3A2) << kShift) & kMask, kScale, kNegZero);
  }
}

// One key block staged as fp8, row-major [kRows][kHeadDim] bytes at src (TMA boxes and 16-byte
// gathers land that way, unswizzled), widened into the 16-bit tile at dst, whose 16-byte chunk
// (row, chunk) lies at dst + Layout::offset(row, chunk) with its bank slot at (chunk ^ row) % 8 (the
// 128-byte swizzle both kernels' tiles use) and rows r and r + 8 Layout::kEightRowBytes apart.
// Run by kThreads threads (tid); the caller orders it against the copies that fill src and the
// readers of dst.
//
// Per pass a thread widens one 16-byte fp8 chunk c8 of a row into 16-bit chunks 2 c8 and 2 c8 + 1.
// The 8 threads of a quarter warp take two rows r, r + 1 (r even): one 64-byte half of a 128-byte
// segment of row r and the other half of the same segment of row r + 1 (at head_dim 64: the whole
// rows, one 128-byte line). Their loads then cover 8 different bank slots, and so do their stores
// (chunks 2 c8 of row r land in even slots of (chunk ^ row) % 8, those of row r + 1 in odd ones):
// no bank conflicts either way.
template <int kHeadDim, int kRows, int kThreads, bool kBf16, int kKind, bool kHwCvt, typename Layout,
          int kLoadsAsked = 0>
NA_DEVICE void widen_block(uint32_t src, uint32_t dst, int tid) {
  constexpr int kQuarters = kThreads / 8;                         // quarter warps: chunk pairs per pass
  constexpr int kSegments = kHeadDim >= 128 ? kHeadDim / 128 : 1;  // 128-byte segments per fp8 row
  constexpr int kRowStep = kQuarters * 128 / kHeadDim;             // rows one pass covers
  static_assert(kHeadDim % 64 == 0 && kRows % kRowStep == 0 && kRowStep % 8 == 0,
                "passes step whole 8-row swizzle periods");
  // The per-thread offsets are recomputed on every call from an opaque copy of tid: hoisted out of the
  // producer's loop (one set per slot and stage) they would outgrow its 56 registers.
  int t;
  asm volatile("mov.u32 %0, %1;\n" : "=r"(t) : "r"(tid));
  const int l = t % 8;
  const int u = t / 8;  // this thread's quarter warp: (row pair, segment, half) of the first pass
  int row, c8;
  if constexpr (kHeadDim == 64) {
    row = 2 * u + l / 4;
    c8 = l % 4;
  } else {
    const int half = u % 2;
    const int seg = (u / 2) % kSegments;
    row = 2 * (u / 2 / kSegments) + l / 4;
    c8 = seg * 8 + l % 4 + 4 * ((l / 4) ^ half);
  }
  const uint32_t s0 = src + row * kHeadDim + c8 * 16;
  const uint32_t d0 = dst + Layout::offset(row, 2 * c8);
  const uint32_t d1 = dst + Layout::offset(row, 2 * c8 + 1);
  constexpr uint32_t kDstStep = kRowStep / 8 * Layout::kEightRowBytes;
  // Shared-memory loads and stores are ordered as written (asm volatile with memory clobbers), so
  // kLoads passes' loads go out together before any of them is widened: their latency overlaps. Two
  // where registers allow (the sm90 producer has 56): widening to bf16 works on its words in place;
  // the f16 paths keep their inputs live beside the outputs and take one.
  // kLoadsAsked: more, where the caller has the registers (the latency of a lone producer warp).
  constexpr int kLoads = kLoadsAsked ? kLoadsAsked : kBf16 ? 2 : 1;
  constexpr int kPasses = kRows / kRowStep;
  static_assert(kPasses % kLoads == 0, "passes in groups of kLoads");
#pragma unroll 1
  for (int pass = 0; pass < kPasses; pass += kLoads) {
    uint4 x[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) x[i] = ptx::ld_shared_16(s0 + (pass + i) * kRowStep * kHeadDim);
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      uint4 a, b;
      widen4<kBf16, kKind, kHwCvt>(x[i].x, a.x, a.y);
      widen4<kBf16, kKind, kHwCvt>(x[i].y, a.z, a.w);
      widen4<kBf16, kKind, kHwCvt>(x[i].z, b.x, b.y);
      widen4<kBf16, kKind, kHwCvt>(x[i].w, b.z, b.w);
      ptx::st_shared_16(d0 + (pass + i) * kDstStep, a);
      ptx::st_shared_16(d1 + (pass + i) * kDstStep, b);
    }
  }
}

// fp8 queries (Q_FP8): the tile's kRows packed (token, head) query rows from global memory into the
// 16-bit tile at dst (Layout as in widen_block), widened on the way: per pass a thread loads one 16-byte
// chunk c8 of a row (16 fp8 values of kind kKind; rows at or past row_end read as zeros) and stores 16-bit chunks
// 2 c8 and 2 c8 + 1. kWiden false (the fp8-MMA builds): the bytes as they are, into chunk c8 of an
// fp8 tile whose 16-byte chunk (row, c8) lies at dst + Layout::offset(row, c8). Synchronous loads,
// kLoads at a time (Q loads once per tile); the caller orders the stores against the readers of dst. Row r of the tile is packed row row_start + r of KV head kv_head:
// token q0 + packed / group_size, head kv_head * group_size + packed % group_size. e4m3 and e5m2 ->
// fp16 and -> bf16 are exact, so the tile holds the queries' values as the 16-bit GEMM reads them.
template <int kHeadDim, int kRows, int kThreads, bool kBf16, int kKind, bool kHwCvt, typename Layout,
          bool kWiden = true>
NA_DEVICE void load_q_rows(const uint8_t* q, int64_t stride_tok, int64_t stride_head, int q0, int row_start,
                           int row_end, int group_size, int kv_head, uint32_t dst, int tid) {
  constexpr int kChunks8 = kHeadDim / 16;           // 16-byte fp8 chunks per row
  constexpr int kRowStep = kThreads / kChunks8;     // rows one pass covers
  constexpr int kPasses = kRows / kRowStep;
  constexpr int kLoads = kPasses % 2 == 0 ? 2 : 1;  // loads in flight per thread
  static_assert(kRows % kRowStep == 0, "query rows must tile the thread passes");
  const int c8 = tid % kChunks8;
#pragma unroll 1
  for (int pass = 0; pass < kPasses; pass += kLoads) {
    uint4 x[kLoads];
    int rows[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      rows[i] = tid / kChunks8 + (pass + i) * kRowStep;
      const int packed = row_start + rows[i];
      x[i] = make_uint4(0u, 0u, 0u, 0u);
      if (packed < row_end) {
        const int t = packed / group_size;
        const int h = kv_head * group_size + (packed - t * group_size);
        x[i] = ptx::ld_global_nc_16(q + (q0 + t) * stride_tok + h * stride_head + c8 * 16);
      }
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      if constexpr (kWiden) {  // words w of the 16 bytes -> 16-bit words 2w, 2w + 1 (chunk 2 c8, then 2 c8 + 1)
        const uint32_t in[4] = {x[i].x, x[i].y, x[i].z, x[i].w};
        uint32_t h[8];
#pragma unroll
        for (int w = 0; w < 4; ++w) widen4<kBf16, kKind, kHwCvt>(in[w], h[2 * w], h[2 * w + 1]);
        ptx::st_shared_16(dst + Layout::offset(rows[i], 2 * c8), make_uint4(h[0], h[1], h[2], h[3]));
        ptx::st_shared_16(dst + Layout::offset(rows[i], 2 * c8 + 1), make_uint4(h[4], h[5], h[6], h[7]));
      } else {
        ptx::st_shared_16(dst + Layout::offset(rows[i], c8), x[i]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// fp8-MMA builds (FP8_MMA): the operands stay e4m3; blocks staged row-major ([kRows][128] bytes, as
// the unswizzled TMA boxes and gathers land) are rearranged for e4m3 wgmma, which reads 8-bit
// operands K-major only, from 128-byte rows with the 128-byte swizzle (16-byte chunk c of row r at
// r * 128 + ((c ^ r % 8) << 4); 8-row groups 1024 bytes apart). K blocks that come by TMA skip this:
// their map has that swizzle and they land in the K stage directly (producer_sm90.cuh).

// K of a gathered block: the same rows, swizzled. Thread tid copies chunk tid % 8 of rows
// tid / 8 + pass * kThreads / 8 (a quarter warp reads one whole staged row and writes it to 8
// different bank slots).
template <int kRows, int kThreads>
NA_DEVICE void swizzle_rows128(uint32_t src, uint32_t dst, int tid) {
  constexpr int kRowStep = kThreads / 8;
  static_assert(kRows % kRowStep == 0 && kRowStep % 8 == 0, "passes keep each thread's swizzle phase");
  int t;
  asm volatile("mov.u32 %0, %1;\n" : "=r"(t) : "r"(tid));  // (as widen_block: offsets per call)
  const int c = t % 8;
  const int r0 = t / 8;
  const uint32_t s0 = src + r0 * 128 + c * 16;
  const uint32_t d0 = dst + r0 * 128 + ((c ^ (r0 & 7)) << 4);
#pragma unroll 1
  for (int pass = 0; pass < kRows / kRowStep; pass += 2) {
    const uint4 a = ptx::ld_shared_16(s0 + pass * kRowStep * 128);
    const uint4 b = ptx::ld_shared_16(s0 + (pass + 1) * kRowStep * 128);
    ptx::st_shared_16(d0 + pass * kRowStep * 128, a);
    ptx::st_shared_16(d0 + (pass + 1) * kRowStep * 128, b);
  }
}

// The key of P V's contraction position q (0..15) within a 16-key group. wgmma's k32 register fragment
// of A gives thread (g = lane / 4, t = lane % 4) columns 4t..4t+3 (register 0: row g, 1: row g + 8) and
// 16+4t..16+4t+3 (registers 2, 3) of its warp's 16 x 32 slice, while S's accumulators give it keys
// 2t, 2t+1 of every 8-key chunk. P keeps the accumulator order (pack_p: chunks 2i, 2i+1 of a 32-key
// slice into register i's four bytes) and V's rows are permuted to match: position 4t + e holds key
// 2t + (e & 1) + 8 (e >> 1), i.e. positions 0..15 hold keys 0 1 8 9 2 3 10 11 4 5 12 13 6 7 14 15.
NA_DEVICE constexpr int pv_key_of_position(int q) { return 2 * (q / 4) + (q & 1) + 8 * ((q & 3) >> 1); }

#if __CUDA_ARCH__ >= 900
// V: staged [kKeys][128] bytes (key-major) -> [128 head dims][kKeys] bytes, each 128-byte row (one
// head dim, every key of the block) swizzled, keys in pv_key_of_position order per 16-key group. The
// staging's key rows come 128-byte swizzled like the ring's (16-byte chunk j of key r at chunk j ^ r % 8:
// the fp8-MMA V map's swizzle, or PagedKv::gather_kv8<true, true>), so that ldmatrix reads 8 keys' chunk
// j without bank conflicts. Per thread and block: 8 LDSM.x4.trans, 32 byte permutes, 8 STSM.x4 (+4.6% /
// +6.3% on W2f8q / W7f8q against 32 LDS.32 + 64 PRMT + 16 STS.64 through a row-major staging, s11r3).
// A unit is 16 head dims (chunk j) x 16 keys (group g). ldmatrix.trans of the 8 x 16-byte matrix of
// keys 16g + 8h .. + 7 gives lane (c = lane / 4, t = lane % 4) keys 2t, 2t + 1 of head dims 2c, 2c + 1
// of the chunk (bytes: k2t d2c, k2t d2c+1, k2t+1 d2c, k2t+1 d2c+1); two permutes of h = 0 and 1 make
// head dim 2c's (2c + 1's) positions 4t..4t+3 = keys 2t, 2t+1, 2t+8, 2t+9 (pv_key_of_position), i.e.
// row c's 4-byte slice t of an 8 x 16-byte stmatrix matrix. Lanes c >= 4 swap their two words, so the
// "even" matrix has head dims 0 2 4 6 9 11 13 15 and the "odd" one 1 3 5 7 8 10 12 14: 8 distinct
// swizzle chunks each, no bank conflicts in the stores either.
// Warp w takes chunks 2w, 2w + 1, all 8 groups; an LDSM.x4 / STSM.x4 covers groups 2i, 2i + 1 (a
// step). kStepsAtOnce of the 8 steps have their loads in flight together (8 where the producer has 72
// registers, 2 with 56: 4 words each).
template <int kKeys, int kThreads, int kStepsAtOnce>
NA_DEVICE void transpose_v_block(uint32_t src, uint32_t dst, int tid) {
  static_assert(kKeys == 128 && kThreads == 128, "128 keys x 128 head dims, four warps of 2 chunks each");
  int t;
  asm volatile("mov.u32 %0, %1;\n" : "=r"(t) : "r"(tid));  // (as widen_block: offsets per call)
  const int lane = t % 32, warp = t / 32;
  const int rr = lane & 7, m = lane >> 3;  // the matrix row this lane addresses, and its matrix
  // ldmatrix: matrix m is keys 8m + rr of the 32 keys from group 2i; chunk j is at j ^ rr.
  // (The addresses are paged_kv_load.cuh's swizzled_offset / swizzle_step written out: used here,
  // with that header included, the fp8-MMA builds' SASS moved, which no device run has checked.)
  const uint32_t ld0 = src + (8 * m + rr) * 128 + (rr << 4);
  const uint32_t ld_lo = ld0 ^ ((2 * warp) << 4), ld_hi = ld0 ^ ((2 * warp + 1) << 4);
  // stmatrix: matrix m is group 2i + (m >> 1), even (m & 1 = 0) or odd head dims; row rr's head dim
  // 16j + dim_of_row, chunk (group ^ dim % 8) of its 128-byte row.
  const int dim_of_row = (rr < 4) == ((m & 1) == 0) ? 2 * rr : 2 * rr + 1;
  const uint32_t st0 = dst + (32 * warp + dim_of_row) * 128 + (((m >> 1) ^ (dim_of_row & 7)) << 4);
  const uint32_t sel_even = (lane >> 2) < 4 ? 0x6420 : 0x7531, sel_odd = sel_even ^ 0x1111;
  static_assert(8 % kStepsAtOnce == 0, "whole batches of steps");
  // (The asm statements keep their order: a batch's loads are all issued before its stores.)
#pragma unroll 1
  for (int step0 = 0; step0 < 8; step0 += kStepsAtOnce) {
    uint32_t w[kStepsAtOnce][4];  // per step: group 2i keys 0-7, 8-15; group 2i + 1 likewise
#pragma unroll
    for (int k = 0; k < kStepsAtOnce; ++k) {
      const int jj = (step0 + k) / 4, i = (step0 + k) % 4;  // chunk 2 warp + jj, groups 2i, 2i + 1
      ptx::ldmatrix_x4_trans((jj ? ld_hi : ld_lo) + i * 32 * 128, w[k][0], w[k][1], w[k][2], w[k][3]);
    }
#pragma unroll
    for (int k = 0; k < kStepsAtOnce; ++k) {
      const int jj = (step0 + k) / 4, i = (step0 + k) % 4;
      ptx::stmatrix_x4((st0 ^ (i << 5)) + jj * 16 * 128, __byte_perm(w[k][0], w[k][1], sel_even),
                       __byte_perm(w[k][0], w[k][1], sel_odd), __byte_perm(w[k][2], w[k][3], sel_even),
                       __byte_perm(w[k][2], w[k][3], sel_odd));
    }
  }
}
#endif

// Four floats -> four e4m3 bytes (round to nearest, saturating to +-448), f0 in the low byte.
NA_DEVICE uint32_t pack4_e4m3(float f0, float f1, float f2, float f3) {
  uint32_t r;
  asm("{\n.reg .b16 lo, hi;\ncvt.rn.satfinite.e4m3x2.f32 lo, %2, %1;\ncvt.rn.satfinite.e4m3x2.f32 hi, %4, %3;\n"
      "mov.b32 %0, {lo, hi};\n}\n"
      : "=r"(r) : "f"(f0), "f"(f1), "f"(f2), "f"(f3));
  return r;
}

}  // namespace fp8
