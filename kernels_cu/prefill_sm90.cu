// Hopper paged prefill (sm_90a): one producer warpgroup loads Q and K/V into 128-byte-swizzled
// shared memory (2-stage K and V rings, mbarrier full/empty handshakes); two consumer warpgroups
// (three at head_dim 64) of 64 query rows each compute S = Q K^T and O += P V with wgmma (HGMMA)
// and the online softmax in registers.
// K/V blocks come by TMA (one box per page part) or by cp.async gather, chosen per block by
// paged_kv_load.cuh (PagedKvSm90::by_gather) from run()'s p.kv_box_tokens.
// Q comes by TMA when group_size divides the tile rows (p.q_tma), by cp.async otherwise.
// Specialized by macros HEAD_DIM, IS_BF16, BLOCK_N, CONSUMER_WGS, KV_STAGES, Q_STAGES, PINGPONG (from
// nvrtc_attn/variants.py).
#include "params.cuh"
#include "ptx_sm80.cuh"
#include "ptx_wgmma.cuh"
#include "ptx_mbarrier.cuh"
#include "ptx_tma.cuh"
#include "paged_kv_load.cuh"
#include "softmax.cuh"
#include "scheduler.cuh"

#if !defined(HEAD_DIM) || !defined(IS_BF16) || !defined(BLOCK_N) || !defined(CONSUMER_WGS) || \
    !defined(KV_STAGES) || !defined(Q_STAGES) || !defined(PINGPONG)
#error "HEAD_DIM, IS_BF16, BLOCK_N, CONSUMER_WGS, KV_STAGES, Q_STAGES, PINGPONG come from nvrtc_attn/variants.py"
#endif

constexpr int kD = HEAD_DIM;
constexpr int kConsumerWGs = CONSUMER_WGS;  // 2, or 3 at head_dim 64 (registers allow 192-row tiles)
constexpr int kConsumerThreads = 128 * kConsumerWGs;
constexpr int kBM = 64 * kConsumerWGs;   // query rows per tile: 64 per consumer warpgroup
constexpr int kBN = BLOCK_N;             // keys per block
constexpr int kStages = KV_STAGES;   // K and V ring depth
constexpr int kQStages = Q_STAGES;   // 2: the next tile's Q loads during this tile
// Intra-warpgroup overlap keeps S, P and O live at once: it fits the registers of two consumer
// warpgroups up to head_dim 128 (not head_dim 256, nor three warpgroups' 152 registers).
constexpr bool kOverlap = HEAD_DIM <= 128 && CONSUMER_WGS == 2;
// Consumer warpgroups take turns issuing their GEMMs (plan() picks the build: short tiles want it).
constexpr bool kPingPong = PINGPONG != 0;
// Lazy rescaling of the online softmax: a row's reference max lags its true max by at most
// kMaxGrowthLog2 (log2 units; P <= 2^8 in 16 bits), so O is rescaled only when the max grows past
// that, rare after a row's first blocks. It pays where the softmax runs alone (head_dim 256: +1.8%
// on 1 x 8192 causal, H100 A/B; head_dim 64 even); under the intra-warpgroup overlap the branch
// and vote cost more than the multiplies they skip (-1.5 to -3% on head_dim 128 TMA workloads).
constexpr bool kLazyRescale = !kOverlap;
constexpr float kMaxGrowthLog2 = 8.f;
constexpr int kThreads = 128 + kConsumerThreads;  // producer warpgroup + consumer warpgroups
constexpr int kChunks = kD / 8;          // 16-byte chunks per row
constexpr int kRowsPerPass = 128 / kChunks;
constexpr bool kBf16 = IS_BF16 != 0;
using PagedKv = PagedKvSm90<kD, kBN>;  // K/V block loads (paged_kv_load.cuh)
constexpr int kQBytes = kBM * kD * 2;
constexpr int kKVBytes = PagedKv::kBlockBytes;
constexpr int kSwizzleRowBytes = PagedKv::kRowBytes;  // one 64-element column block row, 128B swizzle atom
constexpr int kAtomBytes = PagedKv::kAtomBytes;       // 8 rows x 128 B: the swizzle period
constexpr int kColBlocks = PagedKv::kColBlocks;
constexpr int kKVGroupBytes = PagedKv::kGroupBytes;   // 8 keys x all of head_dim
// setmaxnreg split of the 64K-register file (the launch bound gives every thread 65536 / kThreads).
constexpr int kProducerRegs = 56;
constexpr int kConsumerRegs = kConsumerWGs == 2 ? 224 : 152;
static_assert(kProducerRegs * 128 + kConsumerRegs * kConsumerThreads <= 65536 / kThreads * kThreads, "registers");
static_assert(kD % 64 == 0, "head_dim must be a multiple of the 64-element swizzle atom");

// mbarriers: full (producer -> consumers) and empty (consumers -> producer) per K/V and Q stage.
enum class Bar : int { FullK = 0, FullV = kStages, EmptyK = 2 * kStages, EmptyV = 3 * kStages,
                       QFull = 4 * kStages, QEmpty = 4 * kStages + kQStages,
                       Count = 4 * kStages + 2 * kQStages };
static_assert(static_cast<int>(Bar::Count) * 8 <= 128, "barriers outgrew their 128 bytes");
constexpr int kKVBase = kQStages * kQBytes;
constexpr int kBarOffset = kKVBase + 2 * kStages * kKVBytes;
// Dynamic shared memory: [Q stages | K stages | V stages | barriers | row offsets | epilogue staging]
// + slack to align the base to the 1024-byte swizzle period.
constexpr int kOffsetsOffset = kBarOffset + 128;  // BlockOffsets, after the barriers
// Epilogue staging: per consumer warp, 16 rows (8 when shared memory is short: two passes) x 64
// columns of 16-bit O, one column block at a time.
constexpr int kEpiOffset = kOffsetsOffset + 2 * 2 * 8 * kBN;
constexpr int kMaxSmemBytes = 227 * 1024;  // opt-in dynamic shared memory per block on sm_90
constexpr int kEpiRows =
    kEpiOffset + (kConsumerThreads / 32) * 16 * kSwizzleRowBytes + 1024 <= kMaxSmemBytes ? 16 : 8;
constexpr int kEpiWarpBytes = kEpiRows * kSwizzleRowBytes;
constexpr int kSmemBytes = kEpiOffset + (kConsumerThreads / 32) * kEpiWarpBytes + 1024;
static_assert(kSmemBytes <= kMaxSmemBytes, "tile outgrew shared memory");
// The host reads the size from the cubin (nvrtc_attn/cubin.py): no second copy of this arithmetic.
extern "C" __device__ const int dynamic_smem_bytes = kSmemBytes;

// Byte offset of 16-byte chunk `chunk` of row `row` in a [rows][kD] tile stored as kD/64 column
// blocks of [rows][64] with the 128-byte swizzle (chunk ^ row % 8) that wgmma descriptors expect.
NA_DEVICE uint32_t sw128_offset(int row, int chunk, int rows) {
  return static_cast<uint32_t>((chunk >> 3) * rows * kSwizzleRowBytes + row * kSwizzleRowBytes +
                               (((chunk & 7) ^ (row & 7)) << 4));
}

NA_DEVICE uint32_t bar_addr(uint32_t bars, Bar b, int stage = 0) {
  return bars + 8 * (static_cast<int>(b) + stage);
}

// Key blocks of a tile start at kv_start rounded down to a multiple of kBN, so a TMA box (whose
// token count divides kBN and the page size) never straddles two pages; the keys below kv_start
// that this adds are masked like any key outside a row's window.
NA_DEVICE int first_key(const TileCoords& c) { return c.kv_start / kBN * kBN; }
NA_DEVICE int num_blocks(const TileCoords& c) {
  return c.kv_end > c.kv_start ? (c.kv_end - first_key(c) + kBN - 1) / kBN : 0;
}

// ---------------------------------------------------------------------------------------------
// Producer: Q by TMA or cp.async, K/V blocks through paged_kv_load.cuh.

NA_DEVICE void gather_q(const PrefillParams& p, const TileCoords& c, uint32_t q_tile, int ptid) {
  const uint16_t* q = static_cast<const uint16_t*>(p.q);
  const int chunk = ptid % kChunks;
#pragma unroll 4
  for (int pass = 0; pass < kBM / kRowsPerPass; ++pass) {
    const int row = ptid / kChunks + pass * kRowsPerPass;
    const int packed = c.row_start + row;
    const bool valid = packed < c.row_end;
    const int i = packed / p.group_size;
    const int h = c.kv_head * p.group_size + (packed - i * p.group_size);
    const uint16_t* src = valid ? q + (c.q0 + i) * p.q_stride_tok + h * p.q_stride_head + chunk * 8 : q;
    ptx::cp_async_16(q_tile + sw128_offset(row, chunk, kBM), src, valid ? 16 : 0);
  }
}

// Q by TMA: kD / 64 boxes of (64 columns, group_size heads, kBM / group_size tokens), i.e. the
// tile's kBM packed rows in order; rows past total_q are zero-filled by the hardware.
NA_DEVICE void tma_q(const PrefillParams& p, const Sm90TensorMaps& maps, const TileCoords& c, uint32_t q_tile,
                     uint32_t full, int ptid) {
  if (ptid == 0) {
    ptx::mbar_arrive_expect_tx(full, kQBytes);
    const int tok = c.q0 + c.row_start / p.group_size;
#pragma unroll
    for (int cb = 0; cb < kD / 64; ++cb)
      ptx::tma_load_3d(q_tile + cb * kBM * kSwizzleRowBytes, &maps.q, full, cb * 64, c.kv_head * p.group_size, tok);
  } else {
    ptx::mbar_arrive(full);
  }
}

NA_DEVICE void producer_loop(const PrefillParams& p, const Sm90TensorMaps& maps, uint32_t smem, PagedKv::BlockOffsets& offs,
                             uint32_t bars, int ptid) {
  int it = 0, tq = 0;
  int gathered = 0;  // gather blocks so far: parity of their row-offset buffer
  int32_t prefetched = 0;  // units-table entry of the next block's first row (gather-only batches)
  int prefetched_n0 = -1;
  if (ptid == 0) {
    if (p.q_tma) ptx::tma_prefetch_map(&maps.q);
    if (p.kv_box_tokens) { ptx::tma_prefetch_map(&maps.k); ptx::tma_prefetch_map(&maps.v); }
  }
  // With two row slots (176-key blocks) the work range's end is re-read per tile (an L1 hit) instead
  // of held: the producer's 56 registers are spoken for.
  const int w_end_held = p.work_indptr[blockIdx.x + 1];
  auto w_end = [&]() { return PagedKv::kRowSlots == 1 ? w_end_held : p.work_indptr[blockIdx.x + 1]; };
  for (int w = p.work_indptr[blockIdx.x]; w < w_end(); ++w) {
    const TileCoords c = load_tile(p, w);
    if (w + 1 < w_end()) prefetch_tile(p, w + 1);
    const int n_blocks = num_blocks(c);
    if (n_blocks == 0) continue;
    const int qs = tq % kQStages;
    ptx::mbar_wait(bar_addr(bars, Bar::QEmpty, qs), ((tq / kQStages) & 1) ^ 1);
    const uint32_t q_tile = smem + qs * kQBytes;
    if (p.q_tma) {
      tma_q(p, maps, c, q_tile, bar_addr(bars, Bar::QFull, qs), ptid);
    } else {
      gather_q(p, c, q_tile, ptid);
      ptx::cp_async_mbar_arrive(bar_addr(bars, Bar::QFull, qs));
    }
    ++tq;
    const int tok0 = c.kv_tok0;
    for (int n = n_blocks - 1; n >= 0; --n, ++it) {
      const int s = it % kStages;
      const uint32_t ph = (it / kStages) & 1;
      const int n0 = first_key(c) + n * kBN;
      const uint32_t k_tile = smem + kKVBase + s * kKVBytes;
      const uint32_t v_tile = smem + kKVBase + (kStages + s) * kKVBytes;
      if (!PagedKv::by_gather(p, c, n0)) {
        const PagedKv::Box b = PagedKv::box_of(p, tok0 + n0, ptid);
        ptx::mbar_wait(bar_addr(bars, Bar::EmptyK, s), ph ^ 1);
        PagedKv::tma_kv(p, &maps.k, b, c.kv_head, p.k_page_heads, k_tile, bar_addr(bars, Bar::FullK, s), ptid);
        ptx::mbar_wait(bar_addr(bars, Bar::EmptyV, s), ph ^ 1);
        PagedKv::tma_kv(p, &maps.v, b, c.kv_head, p.v_page_heads, v_tile, bar_addr(bars, Bar::FullV, s), ptid);
        continue;
      }
      const int par = gathered++ & 1;
      const PagedKv::RowOffset ro = PagedKv::load_row_offset(p, c, tok0, n0, ptid, prefetched, prefetched_n0 == n0);
      prefetched_n0 = -1;
      if (PagedKv::kRowSlots == 1 && p.kv_box_tokens == 0 && p.tok_units != nullptr && n > 0) {
        prefetched = PagedKv::load_row_unit(p, c, tok0, n0 - kBN, ptid);
        prefetched_n0 = n0 - kBN;
      }
      PagedKv::stage_block_offsets(p, c, tok0, n0, ro, ptid, offs, par);
      ptx::mbar_wait(bar_addr(bars, Bar::EmptyK, s), ph ^ 1);
      PagedKv::gather_kv<false>(p, c, n0, offs.k[par], k_tile, ptid);
      ptx::cp_async_mbar_arrive(bar_addr(bars, Bar::FullK, s));
      ptx::mbar_wait(bar_addr(bars, Bar::EmptyV, s), ph ^ 1);
      PagedKv::gather_kv<true>(p, c, n0, offs.v[par], v_tile, ptid);
      ptx::cp_async_mbar_arrive(bar_addr(bars, Bar::FullV, s));
    }
  }
  ptx::cp_async_wait<0>();  // no copy may outlive the CTA
}

// ---------------------------------------------------------------------------------------------
NA_DEVICE uint64_t q_desc(uint32_t addr) {
  return wgmma::desc_sw128(addr, 16, kAtomBytes);  // LBO unused for swizzled K-major operands
}
NA_DEVICE uint64_t k_desc(uint32_t addr) {
  return wgmma::desc_sw128(addr, 16, kKVGroupBytes);
}
// V is the N-major B operand of O += P V: LBO steps between 64-column blocks, SBO between 8-key groups.
NA_DEVICE uint64_t v_desc(uint32_t addr) {
  return wgmma::desc_sw128(addr, kAtomBytes, kKVGroupBytes);
}

// Keeps the compiler from moving register reads/writes of wgmma operands across the wgmma issue and
// wait points (an empty asm that "modifies" each register, ordered with the volatile wgmma asms).
template <int N>
NA_DEVICE void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
NA_DEVICE void fence_regs(uint32_t (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
}

// One key block's stage in the K/V rings, as both producer and consumers count them.
struct StageRef {
  int s;
  uint32_t ph;
  bool gathered;  // loaded by cp.async (consumers fence before wgmma reads it)
};

NA_DEVICE StageRef stage_of(const PrefillParams& p, const TileCoords& c, int it, int n0) {
  return {it % kStages, static_cast<uint32_t>((it / kStages) & 1), PagedKv::by_gather(p, c, n0)};
}

// Consumers: each warpgroup owns 64 rows of the tile. With kOverlap (two warpgroups, head_dim <= 128)
// block n's S GEMM and block n+1's P V GEMM are issued together, and block n's softmax runs while the
// P V GEMM is still on the tensor cores; O is rescaled after it completes. Otherwise S, softmax and
// P V run in turn. With kPingPong the warpgroups also take turns issuing (one's softmax overlaps the
// other's GEMMs); plan() picks that build for short tiles.
NA_DEVICE void consumer_loop(const PrefillParams& p, uint32_t smem, uint32_t bars, int cw, int ctid) {
  const int warp = ctid / 32;
  const int lane = ctid % 32;
  const int g = lane / 4;
  const int t4 = lane % 4;
  const int wg_row0 = cw * 64;
  const float c2 = p.scale_log2;
  int it = 0, tq = 0;
  // Turns cycle through the warpgroups: each waits for its own, issues, and passes the turn on
  // (named barrier of the next warpgroup: its 128 waiting threads + our 128 arriving ones).
  const int my_turn = static_cast<int>(ptx::NamedBarrier::ConsumerTurn0) + cw;
  const int other_turn = static_cast<int>(ptx::NamedBarrier::ConsumerTurn0) + (cw + 1) % kConsumerWGs;
  if (kPingPong && cw == kConsumerWGs - 1) ptx::named_barrier_arrive(other_turn, 256);

  // No prefetch here: the producer, running ahead on this SM, has already pulled the tile into L1.
  for (int w = p.work_indptr[blockIdx.x]; w < p.work_indptr[blockIdx.x + 1]; ++w) {
    const TileCoords c = load_tile(p, w);
    const int n_blocks = num_blocks(c);
    const int min_hi = row_hi(p, c, c.row_start / p.group_size);
    const int max_lo = row_lo(p, c, (c.row_end - 1) / p.group_size);

    float o[kD / 2];
#pragma unroll
    for (int x = 0; x < kD / 2; ++x) o[x] = 0.f;
    float row_max[2] = {NA_NEG_INF, NA_NEG_INF};
    float row_sum[2] = {0.f, 0.f};

    if (n_blocks > 0) {
      const int qs = tq % kQStages;
      const uint32_t q_tile = smem + qs * kQBytes;
      ptx::mbar_wait(bar_addr(bars, Bar::QFull, qs), (tq / kQStages) & 1);
      if (!p.q_tma) ptx::fence_proxy_async();
      ++tq;

      float sacc[kBN / 2];
      uint32_t pa[kBN / 16][4];
      float corr[2];

      // S = Q K^T for the block in stage st (issue only).
      auto issue_s = [&](const StageRef& st) {
        const uint32_t k_tile = smem + kKVBase + st.s * kKVBytes;
#pragma unroll
        for (int kk = 0; kk < kD / 16; ++kk) {
          const uint32_t a = q_tile + (kk / 4) * kBM * kSwizzleRowBytes + wg_row0 * kSwizzleRowBytes + (kk % 4) * 32;
          const uint32_t b = k_tile + (kk / 4) * kAtomBytes + (kk % 4) * 32;
          wgmma::mma_ss<kBN, kBf16, 0>(sacc, q_desc(a), k_desc(b), kk > 0 ? 1 : 0);
        }
      };
      // O += P V for the block in stage st (issue only).
      auto issue_pv = [&](const StageRef& st) {
        const uint32_t v_tile = smem + kKVBase + (kStages + st.s) * kKVBytes;
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk)
          wgmma::mma_rs<kD, kBf16, 1>(o, pa[kk], v_desc(v_tile + kk * 2 * kKVGroupBytes), 1);
      };
      // Soft cap, mask and online softmax of block n0 (log2 domain): sacc becomes P (fp32), the
      // row statistics advance, corr[hh] is the factor O must be rescaled by.
      auto softmax = [&](int n0) {
        if (p.soft_cap != 0.f) {
#pragma unroll
          for (int x = 0; x < kBN / 2; ++x) sacc[x] = p.soft_cap * ptx::tanh(sacc[x] * p.cap_scale);
        }
        if (n0 + kBN > min_hi || n0 < max_lo) {
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
            const int packed = c.row_start + wg_row0 + warp * 16 + g + hh * 8;
            const int i = packed / p.group_size;
            const int hi = row_hi(p, c, i);
            const int lo = row_lo(p, c, i);
#pragma unroll
            for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                const int j = n0 + nt * 8 + 2 * t4 + e;
                if (j >= hi || j < lo) sacc[4 * nt + 2 * hh + e] = NA_NEG_INF;
              }
          }
        }
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          float mx = row_max[hh];
#pragma unroll
          for (int nt = 0; nt < kBN / 8; ++nt) mx = fmaxf(mx, fmaxf(sacc[4 * nt + 2 * hh], sacc[4 * nt + 2 * hh + 1]));
          mx = quad_max(mx);
          float offset;
          if constexpr (kLazyRescale) {
            // The row's reference max moves only when the block's max exceeds it by more than
            // kMaxGrowthLog2 (or the row had none): P stays below 2^kMaxGrowthLog2, and most blocks
            // leave O unscaled (see rescale_o).
            const bool up = mx > row_max[hh] && (row_max[hh] == NA_NEG_INF || (mx - row_max[hh]) * c2 > kMaxGrowthLog2);
            corr[hh] = up ? ptx::exp2((row_max[hh] - mx) * c2) : 1.f;
            if (up) row_max[hh] = mx;
            offset = safe_offset(row_max[hh], c2);
          } else {
            offset = safe_offset(mx, c2);
            corr[hh] = ptx::exp2(row_max[hh] * c2 - offset);
            row_max[hh] = mx;
          }
          float sum = 0.f;
#pragma unroll
          for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float pv = ptx::exp2(fmaf(sacc[4 * nt + 2 * hh + e], c2, -offset));
              sacc[4 * nt + 2 * hh + e] = pv;
              sum += pv;
            }
          row_sum[hh] = row_sum[hh] * corr[hh] + sum;
        }
      };
      // With kLazyRescale O is rescaled only when some row of the warp moved its reference max
      // (warp-uniform branch).
      auto rescale_o = [&]() {
        if (kLazyRescale && !__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f)) return;
#pragma unroll
        for (int dt = 0; dt < kD / 8; ++dt) {
          o[4 * dt + 0] *= corr[0];
          o[4 * dt + 1] *= corr[0];
          o[4 * dt + 2] *= corr[1];
          o[4 * dt + 3] *= corr[1];
        }
      };
      auto pack_p = [&]() {
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk) {
          pa[kk][0] = ptx::pack2<kBf16>(sacc[8 * kk + 0], sacc[8 * kk + 1]);
          pa[kk][1] = ptx::pack2<kBf16>(sacc[8 * kk + 2], sacc[8 * kk + 3]);
          pa[kk][2] = ptx::pack2<kBf16>(sacc[8 * kk + 4], sacc[8 * kk + 5]);
          pa[kk][3] = ptx::pack2<kBf16>(sacc[8 * kk + 6], sacc[8 * kk + 7]);
        }
      };

      // S of block n, waited for (its K stage and, after the tile's last block n = 0, Q are released).
      auto s_alone = [&](const StageRef& st, int n) {
        ptx::mbar_wait(bar_addr(bars, Bar::FullK, st.s), st.ph);
        if (st.gathered) ptx::fence_proxy_async();
        if constexpr (kPingPong) ptx::named_barrier_sync(my_turn, 256);
        wgmma::fence();
        issue_s(st);
        wgmma::commit();
        if constexpr (kPingPong) ptx::named_barrier_arrive(other_turn, 256);
        wgmma::wait<0>();
        fence_regs(sacc);
        ptx::mbar_arrive(bar_addr(bars, Bar::EmptyK, st.s));
        if (n == 0) ptx::mbar_arrive(bar_addr(bars, Bar::QEmpty, qs));
      };
      // P V of one block, waited for (its V stage is released).
      auto pv_alone = [&](const StageRef& st) {
        ptx::mbar_wait(bar_addr(bars, Bar::FullV, st.s), st.ph);
        if (st.gathered) ptx::fence_proxy_async();
        fence_regs(o);
        fence_regs(pa);
        wgmma::fence();
        issue_pv(st);
        wgmma::commit();
        wgmma::wait<0>();
        fence_regs(o);
        ptx::mbar_arrive(bar_addr(bars, Bar::EmptyV, st.s));
      };

      if constexpr (!kOverlap) {
        // One block at a time: S, softmax, P V (head_dim 256: O alone takes 128 registers).
        for (int n = n_blocks - 1; n >= 0; --n, ++it) {
          const int n0 = first_key(c) + n * kBN;
          const StageRef st = stage_of(p, c, it, n0);
          s_alone(st, n);
          softmax(n0);
          pack_p();
          rescale_o();
          pv_alone(st);
        }
      } else {
        // First (highest) block: S alone.
        int n = n_blocks - 1;
        int n0 = first_key(c) + n * kBN;
        StageRef cur = stage_of(p, c, it, n0);
        s_alone(cur, n);
        softmax(n0);
        pack_p();
        ++it;

        // Steady state: S of block n with P V of block n + 1.
        for (--n; n >= 0; --n, ++it) {
          const StageRef prev = cur;
          n0 = first_key(c) + n * kBN;
          cur = stage_of(p, c, it, n0);
          ptx::mbar_wait(bar_addr(bars, Bar::FullK, cur.s), cur.ph);
          if (cur.gathered) ptx::fence_proxy_async();
          ptx::mbar_wait(bar_addr(bars, Bar::FullV, prev.s), prev.ph);
          if (prev.gathered) ptx::fence_proxy_async();
          if constexpr (kPingPong) ptx::named_barrier_sync(my_turn, 256);
          fence_regs(o);
          fence_regs(pa);
          wgmma::fence();
          issue_s(cur);
          wgmma::commit();
          issue_pv(prev);
          wgmma::commit();
          if constexpr (kPingPong) ptx::named_barrier_arrive(other_turn, 256);
          wgmma::wait<1>();  // S done, P V may still run
          fence_regs(sacc);
          ptx::mbar_arrive(bar_addr(bars, Bar::EmptyK, cur.s));
          if (n == 0) ptx::mbar_arrive(bar_addr(bars, Bar::QEmpty, qs));
          softmax(n0);
          wgmma::wait<0>();
          fence_regs(o);
          fence_regs(pa);
          ptx::mbar_arrive(bar_addr(bars, Bar::EmptyV, prev.s));
          rescale_o();
          pack_p();
        }

        // Last P V.
        pv_alone(cur);
      }  // kOverlap
    }

    // Epilogue: normalize O, stage each warp's 16 rows x 64 columns in shared memory (16-byte chunks
    // swizzled by row, conflict-free both ways) and store them as whole 128-byte row segments with
    // 16-byte stores; LSE by one lane per row.
    float inv[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float l = quad_sum(row_sum[hh]);
      inv[hh] = l > 0.f ? 1.f / l : 0.f;
      const int packed = c.row_start + wg_row0 + warp * 16 + g + hh * 8;
      if (p.lse != nullptr && t4 == 0 && packed < c.row_end) {
        const int i = packed / p.group_size;
        const int h = c.kv_head * p.group_size + (packed - i * p.group_size);
        p.lse[(c.q0 + i) * p.lse_stride_tok + h * p.lse_stride_head] =
            l > 0.f ? row_max[hh] * c2 + ptx::log2(l) : NA_NEG_INF;
      }
    }
    // The swizzled staging offsets are recomputed here from an opaque copy of the lane index: hoisted
    // out of the tile loop they would be a dozen registers live across the GEMMs (and spill).
    int ln;
    asm volatile("mov.u32 %0, %1;\n" : "=r"(ln) : "r"(lane));
    const int wg = ln / 4;  // == g
    const uint32_t stage = smem + kEpiOffset + (ctid / 32 + cw * 4) * kEpiWarpBytes;
    // Reads: lane copies chunk lane % 8 of rows lane / 8 + 4 k.
    const int rd_chunk = ln % 8;
    uint16_t* out = static_cast<uint16_t*>(p.o);
#pragma unroll
    for (int cb = 0; cb < kColBlocks; ++cb) {
#pragma unroll
      for (int h0 = 0; h0 < 2; h0 += kEpiRows / 8) {  // rows g + 8 hh, hh in [h0, h0 + kEpiRows / 8)
#pragma unroll
        for (int hh = h0; hh < h0 + kEpiRows / 8; ++hh) {
          const int r = wg + (hh - h0) * 8;
#pragma unroll
          for (int d8 = 0; d8 < 8; ++d8) {
            const int dt = cb * 8 + d8;
            ptx::st_shared_32(stage + r * kSwizzleRowBytes + ((d8 ^ wg) << 4) + 4 * (ln % 4),
                              ptx::pack2<kBf16>(o[4 * dt + 2 * hh] * inv[hh], o[4 * dt + 2 * hh + 1] * inv[hh]));
          }
        }
        __syncwarp();
#pragma unroll
        for (int k = 0; k < kEpiRows / 4; ++k) {
          const int r = ln / 8 + 4 * k;
          const uint4 v = ptx::ld_shared_16(stage + r * kSwizzleRowBytes + ((rd_chunk ^ (r & 7)) << 4));
          const int packed = c.row_start + wg_row0 + warp * 16 + h0 * 8 + r;
          if (packed < c.row_end) {
            const int i = packed / p.group_size;
            const int h = c.kv_head * p.group_size + (packed - i * p.group_size);
            ptx::st_global_16(out + (c.q0 + i) * p.o_stride_tok + h * p.o_stride_head + cb * 64 + rd_chunk * 8, v);
          }
        }
        __syncwarp();  // the next rows or column block overwrite the staging rows
      }
    }
  }
}

extern "C" __global__ void __launch_bounds__(kThreads, 1)
prefill_sm90(const __grid_constant__ PrefillParams p, const __grid_constant__ Sm90TensorMaps maps) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  if (ptx::dynamic_smem_size() < kSmemBytes) __trap();  // launched with less than dynamic_smem_bytes
  const uint32_t smem = (ptx::smem_addr(smem_raw) + 1023) & ~1023u;  // swizzle atoms need 1024
  const uint32_t bars = smem + kBarOffset;
  const int tid = threadIdx.x;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      ptx::mbar_init(bar_addr(bars, Bar::FullK, s), 128);
      ptx::mbar_init(bar_addr(bars, Bar::FullV, s), 128);
      ptx::mbar_init(bar_addr(bars, Bar::EmptyK, s), kConsumerThreads);
      ptx::mbar_init(bar_addr(bars, Bar::EmptyV, s), kConsumerThreads);
    }
    for (int s = 0; s < kQStages; ++s) {
      ptx::mbar_init(bar_addr(bars, Bar::QFull, s), 128);
      ptx::mbar_init(bar_addr(bars, Bar::QEmpty, s), kConsumerThreads);
    }
  }
  __syncthreads();

  const int warpgroup = tid / 128;
  if (warpgroup == 0) {
    ptx::regs_dealloc<kProducerRegs>();
    PagedKv::BlockOffsets& offs = *reinterpret_cast<PagedKv::BlockOffsets*>(smem_raw + (smem - ptx::smem_addr(smem_raw)) + kOffsetsOffset);
    producer_loop(p, maps, smem, offs, bars, tid);
  } else {
    ptx::regs_alloc<kConsumerRegs>();
    consumer_loop(p, smem, bars, warpgroup - 1, tid % 128);
  }
}
