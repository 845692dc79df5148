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

}  // namespace fp8
