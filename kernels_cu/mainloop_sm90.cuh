// The Hopper consumer warpgroups: per tile, S = Q K^T, online softmax and O += P V with wgmma over the
// tile's key blocks in one of two schedules (with and without intra-warpgroup overlap), one step per
// line, then the epilogue.
#pragma once
#include "tile_sm90.cuh"
#include "mask.cuh"
#include "softmax.cuh"
#include "epilogue_sm90.cuh"
#include "ptx_mbarrier.cuh"
#include "ptx_wgmma.cuh"
#include "fp8_convert.cuh"

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

// fp8 cache: every stage was widened and fenced by the producer (producer_loop_fp8), or V's with kConsumerV
// by the consumers (widen_v), none is "gathered".
NA_DEVICE StageRef stage_of(const PrefillParams& p, const TileCoords& c, int it, int n0) {
  return {it % kStages, static_cast<uint32_t>((it / kStages) & 1), !kFp8 && PagedKv::by_gather(p, c, n0)};
}

// One consumer warpgroup on one tile: its 64 rows' S, P and O accumulators, the ring stages it waits
// for and releases, and the steps of a key block. With kPingPong the warpgroups take turns issuing
// their GEMMs (named barrier of the next warpgroup: its 128 waiting threads + our 128 arriving ones).
// Every member refers to consumer_loop's own variables, as the lambdas these steps once were did:
// copies (even of the scalars) changed the kernel's register assignment.
struct Consumer {
  // The GEMMs' shared-memory descriptors are made once per block and stepped by constants
  // (wgmma::desc_advance) instead of rebuilt (mask, shift, or) at each wgmma; with the warpgroup
  // index warp-uniform (prefill_sm90.cu) they live in uniform registers, one add per wgmma
  // (s16r2: rebuilt, Q's took 4-5 vector instructions per k step in some builds; s17r2: W1 +5%, W5 +4%,
  // W2p1 +2.6%, W6 +1.8% against per-wgmma descriptors).
  const PrefillParams& p;
  const TileCoords& c;
  const TileMask& mask;
  const uint32_t &smem, &bars, &q_tile;
  const int& qs;                           // Q stage of the tile
  const int &wg_row0, &warp, &g, &t4;      // first tile row of the warpgroup; the thread's mma coordinates
  const int &my_turn, &other_turn;
  const float& c2;                         // p.scale_log2 (fp8 cache: the tile's, TileScales)
  const float& cap_scale;                  // p.cap_scale (fp8 cache: the tile's)
  float (&o)[kD / 2];
  TileSoftmax& sm;
  float (&sacc)[kBN / 2];         // S, then P (fp32)
  uint32_t (&pa)[kBN / kPvK][4];  // P as the A operand of P V: 16-bit pairs (fp8-MMA builds: e4m3 quads)
  const int& vtid;                // the thread among all consumer threads (kConsumerV's widening)
  const float (&q_rows)[2];       // fp8 queries: the rows' per-query-head q_scale (query_row_scales)

  NA_DEVICE void wait_k(const StageRef& st) {
    ptx::mbar_wait(bar_addr(bars, Bar::FullK, st.s), st.ph);
    if (st.gathered) ptx::fence_proxy_async();
  }
  // kConsumerV: V's stage is complete once both warpgroups widened their halves (widen_v).
  NA_DEVICE void wait_v(const StageRef& st) {
    if constexpr (kConsumerV) {
      ptx::named_barrier_sync(ptx::NamedBarrier::ConsumersV, kConsumerThreads);
      return;
    }
    ptx::mbar_wait(bar_addr(bars, Bar::FullV, st.s), st.ph);
    if (st.gathered) ptx::fence_proxy_async();
  }
  // K's stage is free once S is done; Q's after S of the tile's last block (n = 0).
  NA_DEVICE void release_k(const StageRef& st, int n) {
    ptx::mbar_arrive(bar_addr(bars, Bar::EmptyK, st.s));
    if (n == 0) ptx::mbar_arrive(bar_addr(bars, Bar::QEmpty, qs));
  }
  // (kConsumerV: the consumers write V's stages themselves; the producer never waits for them.)
  NA_DEVICE void release_v(const StageRef& st) {
    if constexpr (!kConsumerV) ptx::mbar_arrive(bar_addr(bars, Bar::EmptyV, st.s));
  }
  // kConsumerV: this thread's share of block it's V, from its fp8 staging slot (1) into V's ring stage
  // st.s (free: P V of block it - 2 completed in both warpgroups before the ConsumersV bar.sync they
  // passed since), fenced for wgmma; the slot is handed back to the producer on VFree.
  NA_DEVICE void widen_v(const StageRef& st, int it) {
    if constexpr (kConsumerV) {
      ptx::mbar_wait(bar_addr(bars, Bar::Staged, 1), it & 1);  // V unit 2 it + 1: slot 1, its it-th fill
      fp8::widen_block<kD, kBN, kConsumerThreads, kBf16, kKvFp8, kHwCvt, PagedKv>(
          smem + SmemLayout::kStage8 + SmemLayout::kStage8Bytes, smem + SmemLayout::kKV + (kStages + st.s) * kKVBytes, vtid);
      ptx::fence_proxy_async();  // generic-proxy stores -> wgmma (async proxy), before the bar.sync
      ptx::mbar_arrive(bar_addr(bars, Bar::VFree));
    }
  }
  NA_DEVICE void take_turn() {
    if constexpr (kPingPong) ptx::named_barrier_sync(my_turn, 256);
  }
  NA_DEVICE void pass_turn() {
    if constexpr (kPingPong) ptx::named_barrier_arrive(other_turn, 256);
  }
  NA_DEVICE void fence_s() { fence_regs(sacc); }
  NA_DEVICE void fence_o_p() {
    fence_regs(o);
    fence_regs(pa);
  }

  // S = Q K^T for the block in stage st (issue only).
  NA_DEVICE void issue_s(const StageRef& st) {
    const uint32_t k_tile = smem + SmemLayout::kKV + st.s * kKVBytes;
    if constexpr (kF8Mma) {  // [rows][128] e4m3 bytes, 32 per k step
      const uint64_t qd = wgmma::desc_sw128(q_tile + wg_row0 * 128, 16, kAtomBytes);
      const uint64_t kd = wgmma::desc_sw128(k_tile, 16, kAtomBytes);
#pragma unroll
      for (int kk = 0; kk < kD / 32; ++kk)
        wgmma::mma_ss_e4m3<kBN>(sacc, wgmma::desc_advance(qd, kk * 32), wgmma::desc_advance(kd, kk * 32),
                                kk > 0 ? 1 : 0);
      return;
    }
    const uint64_t qd = q_desc(q_tile + wg_row0 * kSwizzleRowBytes);
    const uint64_t kd = k_desc(k_tile);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      const uint32_t a = (kk / 4) * kBM * kSwizzleRowBytes + (kk % 4) * 32;
      const uint32_t b = (kk / 4) * kAtomBytes + (kk % 4) * 32;
      wgmma::mma_ss<kBN, kBf16, 0>(sacc, wgmma::desc_advance(qd, a), wgmma::desc_advance(kd, b), kk > 0 ? 1 : 0);
    }
  }
  // O += P V for the block in stage st (issue only), kPvN columns of O per wgmma.
  NA_DEVICE void issue_pv(const StageRef& st) {
    const uint32_t v_tile = smem + SmemLayout::kKV + (kStages + st.s) * kKVBytes;
    if constexpr (kF8Mma) {  // V as [kD][kBN] bytes (keys contiguous, fp8::transpose_v_block), 32 keys per step
      const uint64_t vd = wgmma::desc_sw128(v_tile, 16, kAtomBytes);
#pragma unroll
      for (int kk = 0; kk < kBN / 32; ++kk) wgmma::mma_rs_e4m3<kD>(o, pa[kk], wgmma::desc_advance(vd, kk * 32), 1);
      return;
    }
    const uint64_t vd = v_desc(v_tile);
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk)
#pragma unroll
      for (int h = 0; h < kD / kPvN; ++h) {
        const uint32_t b = kk * 2 * kKVGroupBytes + h * (kPvN / 64) * kAtomBytes;
        wgmma::mma_rs<kPvN, kBf16, 1>(*reinterpret_cast<float(*)[kPvN / 2]>(o + h * (kPvN / 2)), pa[kk],
                                      wgmma::desc_advance(vd, b), 1);
      }
  }
  // Soft cap and mask of block n0's scores (still logits), before the softmax.
  NA_DEVICE void cap_and_mask(int n0) {
    if constexpr (kQFp8) {
      if (p.q_scale_qo_heads != nullptr) scale_score_rows(sacc, q_rows);
    }
    apply_soft_cap(sacc, p.soft_cap, cap_scale);
    if (mask.needed(n0, kBN)) mask_scores(sacc, p, c, wg_row0 + warp * 16 + g, n0, t4);
  }
  // Online softmax of block n0 after soft cap and mask: S becomes P; exact or lazy rescaling.
  NA_DEVICE void softmax(int n0) {
    cap_and_mask(n0);
    sm.update(sacc, c2);
  }
  NA_DEVICE void softmax_lazy(int n0) {
    cap_and_mask(n0);
    sm.update_lazy(sacc, c2);
  }
  NA_DEVICE void rescale_o() { sm.rescale_o(o); }
  // The overlapped schedule's softmax and O rescale: lazy or exact (kLazy: overlapped_schedule's choice).
  template <bool kLazy>
  NA_DEVICE void softmax_overlapped(int n0) {
    if constexpr (kLazy) softmax_lazy(n0);
    else softmax(n0);
  }
  // After softmax_lazy: O is rescaled only when some row of the warp moved its reference max.
  NA_DEVICE void rescale_o_lazy() {
    if (!sm.warp_rescales()) return;
    sm.rescale_o(o);
  }
  template <bool kLazy>
  NA_DEVICE void rescale_o_overlapped() {
    if constexpr (kLazy) rescale_o_lazy();
    else rescale_o();
  }
  // P (fp32 in sacc) to the A operand of P V (16-bit pairs, the accumulator layout). fp8-MMA builds:
  // P (2^kPExp times, OnlineSoftmax) to e4m3, 32 keys per k step: register i of step kk takes chunks
  // 2i, 2i+1 (keys 2t, 2t+1 of each) of the slice's four 8-key chunks, row g (i = 0, 2) or g + 8
  // (i = 1, 3); V's rows are permuted to that order (fp8::pv_key_of_position).
  NA_DEVICE void pack_p() {
    if constexpr (kF8Mma) {
#pragma unroll
      for (int kk = 0; kk < kBN / 32; ++kk) {
        const float* x = sacc + 16 * kk;
        pa[kk][0] = fp8::pack4_e4m3(x[0], x[1], x[4], x[5]);
        pa[kk][1] = fp8::pack4_e4m3(x[2], x[3], x[6], x[7]);
        pa[kk][2] = fp8::pack4_e4m3(x[8], x[9], x[12], x[13]);
        pa[kk][3] = fp8::pack4_e4m3(x[10], x[11], x[14], x[15]);
      }
      return;
    }
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      pa[kk][0] = ptx::pack2<kBf16>(sacc[8 * kk + 0], sacc[8 * kk + 1]);
      pa[kk][1] = ptx::pack2<kBf16>(sacc[8 * kk + 2], sacc[8 * kk + 3]);
      pa[kk][2] = ptx::pack2<kBf16>(sacc[8 * kk + 4], sacc[8 * kk + 5]);
      pa[kk][3] = ptx::pack2<kBf16>(sacc[8 * kk + 6], sacc[8 * kk + 7]);
    }
  }

  // S of block n, waited for (its K stage and, after the tile's last block n = 0, Q are released).
  NA_DEVICE void s_alone(const StageRef& st, int n) {
    wait_k(st);
    take_turn();
    wgmma::fence();
    issue_s(st);
    wgmma::commit();
    pass_turn();
    wgmma::wait<0>();
    fence_s();
    release_k(st, n);
  }
  // P V of one block, waited for (its V stage is released).
  NA_DEVICE void pv_alone(const StageRef& st) {
    wait_v(st);
    fence_o_p();
    wgmma::fence();
    issue_pv(st);
    wgmma::commit();
    wgmma::wait<0>();
    fence_regs(o);
    release_v(st);
  }
};

// The two mainloop schedules over a tile's n_blocks key blocks, last to first (it counts ring
// stages across tiles). Serial: each block's S, softmax and P V in turn (three consumer warpgroups,
// head_dim 256 on fp8 caches).
NA_DEVICE void serial_schedule(Consumer& wg, const PrefillParams& p, const TileCoords& c, int& it, int n_blocks) {
  for (int n = n_blocks - 1; n >= 0; --n, ++it) {
    const int n0 = first_key(c) + n * kBN;
    const StageRef st = stage_of(p, c, it, n0);
    wg.s_alone(st, n);     // wait K; S = Q K^T; release K (and Q after the tile's last block)
    wg.softmax_lazy(n0);   // soft cap, mask; S becomes P
    wg.pack_p();
    wg.rescale_o_lazy();
    wg.pv_alone(st);       // wait V; O += P V; release V
  }
}

// Overlapped (intra-warpgroup): block n's S = Q K^T runs on the tensor cores while block n + 1's
// P V does, and block n's softmax while P V finishes; O rescaled lazily or exactly (kLazy).
template <bool kLazy>
NA_DEVICE void overlapped_schedule(Consumer& wg, const PrefillParams& p, const TileCoords& c, int& it, int n_blocks) {
  // First (highest) block: S alone.
  int n = n_blocks - 1;
  int n0 = first_key(c) + n * kBN;
  StageRef cur = stage_of(p, c, it, n0);
  wg.s_alone(cur, n);
  wg.template softmax_overlapped<kLazy>(n0);
  wg.pack_p();
  wg.widen_v(cur, it);
  ++it;
  // Steady state: S of block n with P V of block n + 1.
  for (--n; n >= 0; --n, ++it) {
    const StageRef prev = cur;
    n0 = first_key(c) + n * kBN;
    cur = stage_of(p, c, it, n0);
    wg.wait_k(cur);
    wg.wait_v(prev);
    wg.take_turn();
    wg.fence_o_p();
    wgmma::fence();
    wg.issue_s(cur);
    wgmma::commit();
    wg.issue_pv(prev);
    wgmma::commit();
    wg.pass_turn();
    wgmma::wait<1>();  // S done, P V may still run
    wg.fence_s();
    wg.release_k(cur, n);
    wg.template softmax_overlapped<kLazy>(n0);
    wg.widen_v(cur, it);  // (kConsumerV) while P V of block n + 1 runs
    wgmma::wait<0>();
    wg.fence_o_p();
    wg.release_v(prev);
    wg.template rescale_o_overlapped<kLazy>();
    wg.pack_p();
  }
  // Last P V.
  wg.pv_alone(cur);
}

// Consumers: each warpgroup owns 64 rows of the tile and runs one of two schedules over its key blocks:
//   serial (three warpgroups at head_dim 64; head_dim 256 on fp8 caches): one block at a time, S,
//     softmax, P V, with lazy rescaling (where the softmax runs alone it pays: head_dim 256 +1.8% on
//     1 x 8192 causal, H100 A/B; head_dim 64 even);
//   overlapped (kOverlap: two warpgroups, head_dim <= 128, and 256 on 16-bit caches): block n's S GEMM
//     and block n+1's P V GEMM are issued together, block n's softmax runs while P V is still on the
//     tensor cores, O is rescaled after it completes; lazily where the consumers' issue slots are
//     short (kLazyOverlap: head_dim 256, fp8 caches; kLazyByLoad: the 16-bit 128-key builds without
//     turns when the launch gathers K/V), else exactly (the lazy variant's vote and branch cost TMA-fed
//     16-bit K/V 0.6-2.2%).
// With kPingPong the warpgroups also take turns issuing (one's softmax overlaps the other's GEMMs);
// plan() picks that build for short tiles. The schedules stay inline here: as functions of their own
// (even force-inlined) they changed the kernel's register assignment.
NA_DEVICE void consumer_loop(const PrefillParams& p, uint32_t smem, uint32_t bars, int cw, int ctid) {
  const int warp = ctid / 32;
  const int lane = ctid % 32;
  const int g = lane / 4;
  const int t4 = lane % 4;
  const int wg_row0 = cw * 64;
  const int vtid = cw * 128 + ctid;
  const float c2 = p.scale_log2;
  int it = 0;
  // Turns cycle through the warpgroups: each waits for its own, issues, and passes the turn on
  // (named barrier of the next warpgroup: its 128 waiting threads + our 128 arriving ones).
  const int my_turn = static_cast<int>(ptx::NamedBarrier::ConsumerTurn0) + cw;
  const int other_turn = static_cast<int>(ptx::NamedBarrier::ConsumerTurn0) + (cw + 1) % kConsumerWGs;
  if (kPingPong && cw == kConsumerWGs - 1) ptx::named_barrier_arrive(other_turn, 256);

  // The tiles the producer's thread 0 claimed, in turn (take_tile; -1: none left); the k-th uses Q
  // stage k % kQStages, an empty one too (no Q: the stage's turn passes). No prefetch here: the
  // producer, running ahead on this SM, has already pulled the tile into L1.
  for (int k = 0;; ++k) {
    const int w = take_tile(smem, bars, k);
    if (w < 0) break;
    const TileCoords c = load_tile(p, w);
    const int n_blocks = num_blocks(c);
    const TileMask mask = tile_mask(p, c);
    // fp8 cache: this tile's scales (per-head arrays); a 16-bit cache reads p's as before.
    TileScales ts{};
    if constexpr (kFp8) ts = tile_scales(p, c.kv_head);
    const float& c2t = kFp8 ? ts.c2 : c2;
    const float& cap_t = kFp8 ? ts.cap_scale : p.cap_scale;
    float q_rows[2] = {1.f, 1.f};
    if constexpr (kQFp8) query_row_scales(p, c.kv_head, c.row_start + wg_row0 + warp * 16 + g, c.row_end, q_rows);

    float o[kD / 2];
#pragma unroll
    for (int x = 0; x < kD / 2; ++x) o[x] = 0.f;
    TileSoftmax sm;

    const int qs = k % kQStages;
    ptx::mbar_wait(bar_addr(bars, Bar::QFull, qs), (k / kQStages) & 1);
    if (n_blocks == 0) ptx::mbar_arrive(bar_addr(bars, Bar::QEmpty, qs));  // (skip_q's turn)
    if (n_blocks > 0) {
      const uint32_t q_tile = smem + qs * kQBytes;
      if (!p.q_tma) ptx::fence_proxy_async();

      float sacc[kBN / 2];
      uint32_t pa[kBN / kPvK][4];

      Consumer wg{p, c, mask, smem, bars, q_tile, qs, wg_row0, warp, g, t4, my_turn, other_turn, c2t, cap_t,
                  o, sm, sacc, pa, vtid, q_rows};
      if constexpr (kLazyByLoad) {  // lazy when the launch gathers K/V, exact when TMA brings them
        if (p.kv_box_tokens == 0) overlapped_schedule<true>(wg, p, c, it, n_blocks);
        else overlapped_schedule<false>(wg, p, c, it, n_blocks);
      } else if constexpr (kOverlap) {
        overlapped_schedule<kLazyOverlap>(wg, p, c, it, n_blocks);
      } else {
        serial_schedule(wg, p, c, it, n_blocks);
      }
    }

    // An empty tile (n_blocks == 0; the producer skips it too) arrives here with O = 0 and row sums 0
    // and so writes O = 0 and LSE = -inf. 1 / l stays in this frame (a local of the epilogue's own
    // changed the SASS).
    if constexpr (kSplitKv) {
      if (c.slot >= 0) {  // a piece of a split tile: partial O and LSE for merge_split.cu
        store_partial(p, c, sm, o, warp, g, t4, wg_row0, c2t, kFp8 ? ts.v_head : 1.f);
        continue;
      }
    }
    float inv[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh)
      inv[hh] = store_lse(p, c, sm, hh, warp, g, t4, wg_row0, c2t,
                          kFp8 ? ts.v_scale : p.v_scale);
    store_o(p, c, o, inv, smem, cw, ctid, warp, lane, wg_row0);
  }
}