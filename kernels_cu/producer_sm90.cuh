// The Hopper kernel's producer warpgroup: per tile, Q by TMA or cp.async into its Q stage, then the
// tile's K/V blocks, last to first, into the K/V rings through paged_kv_load.cuh (TMA or gather); an
// fp8 cache's blocks through staging slots, widened to 16 bits by this warpgroup (producer_loop_fp8).
#pragma once
#include "tile_sm90.cuh"
#include "paged_kv_load.cuh"
#include "fp8_convert.cuh"
#include "ptx_mbarrier.cuh"
#include "ptx_tma.cuh"

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

// fp8 queries: the sw128 Q stage as fp8::load_q_rows writes it (fp8-MMA builds: [kBM][128] bytes, one
// 128-byte swizzled row per query row).
struct QTileLayout {
  static NA_DEVICE uint32_t offset(int row, int chunk) {
    if constexpr (kF8Mma) return static_cast<uint32_t>(row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
    else return sw128_offset(row, chunk, kBM);
  }
};

// Q of tile c (the CTA's tq-th tile) into its Q stage, once the consumers released it. fp8
// queries are widened from global memory by all 128 producer threads (no TMA map: q_tma is 0), fenced
// for wgmma and signalled by plain arrivals.
NA_DEVICE void load_q(const PrefillParams& p, const Sm90TensorMaps& maps, const TileCoords& c, uint32_t smem,
                      uint32_t bars, int tq, int ptid) {
  const int qs = tq % kQStages;
  ptx::mbar_wait(bar_addr(bars, Bar::QEmpty, qs), ((tq / kQStages) & 1) ^ 1);
  const uint32_t q_tile = smem + qs * kQBytes;
  if constexpr (kQFp8) {
    fp8::load_q_rows<kD, kBM, 128, kBf16, kKvFp8, true, QTileLayout, !kF8Mma>(
        static_cast<const uint8_t*>(p.q), p.q_stride_tok, p.q_stride_head, c.q0, c.row_start, c.row_end,
        p.group_size, c.kv_head, q_tile, ptid);
    ptx::fence_proxy_async();  // generic-proxy stores -> the consumers' wgmma (async proxy)
    ptx::mbar_arrive(bar_addr(bars, Bar::QFull, qs));
  } else if (p.q_tma) {
    tma_q(p, maps, c, q_tile, bar_addr(bars, Bar::QFull, qs), ptid);
  } else {
    gather_q(p, c, q_tile, ptid);
    ptx::cp_async_mbar_arrive(bar_addr(bars, Bar::QFull, qs));
  }
}

// An empty tile's turn of Q stage k % kQStages (no Q: plain arrivals; the consumers wait for it and free
// the stage at once), so that the CTA's k-th tile, empty or not, always uses that stage.
NA_DEVICE void skip_q(uint32_t bars, int k) {
  const int qs = k % kQStages;
  ptx::mbar_wait(bar_addr(bars, Bar::QEmpty, qs), ((k / kQStages) & 1) ^ 1);
  ptx::mbar_arrive(bar_addr(bars, Bar::QFull, qs));
}

// A 16-bit cache (fp8 builds run producer_loop_fp8 instead).
NA_DEVICE void producer_loop(const PrefillParams& p, const Sm90TensorMaps& maps, uint32_t smem, PagedKv::BlockOffsets& offs,
                             uint32_t bars, int ptid) {
  int it = 0;
  int gathered = 0;  // gather blocks so far: parity of their row-offset buffer
  int32_t prefetched = 0;  // units-table entry of the next block's first row (gather-only batches)
  int prefetched_n0 = -1;
  if (ptid == 0) {
    if (p.q_tma) ptx::tma_prefetch_map(&maps.q);
    if (p.kv_box_tokens) { ptx::tma_prefetch_map(&maps.k); ptx::tma_prefetch_map(&maps.v); }
  }
  // Thread 0 claims and hands out each next tile once the current one's loads are issued (publish_next).
  if (ptid == 0) {
    keep_counts(p, smem);
    publish_tile(smem, bars, 0, claim_tile(smem));
  }
  for (int k = 0;; ++k) {
    const int w = take_tile(smem, bars, k);
    if (w < 0) break;
    const TileCoords c = load_tile(p, w);
    const int n_blocks = num_blocks(c);
    if (n_blocks == 0) {
      skip_q(bars, k);
      if (ptid == 0) publish_next(p, smem, bars, k + 1);
      continue;
    }
    load_q(p, maps, c, smem, bars, k, ptid);
    const int tok0 = c.kv_tok0;
    for (int n = n_blocks - 1; n >= 0; --n, ++it) {
      const int s = it % kStages;
      const uint32_t ph = (it / kStages) & 1;
      const int n0 = first_key(c) + n * kBN;
      const uint32_t k_tile = smem + SmemLayout::kKV + s * kKVBytes;
      const uint32_t v_tile = smem + SmemLayout::kKV + (kStages + s) * kKVBytes;
      if (!PagedKv::by_gather(p, c, n0)) {
        const PagedKv::Box b = PagedKv::box_of(p, tok0 + n0, ptid);
        ptx::mbar_wait(bar_addr(bars, Bar::EmptyK, s), ph ^ 1);
        PagedKv::tma_kv(p, &maps.k, b, c.kv_head, p.k_page_heads, k_tile, bar_addr(bars, Bar::FullK, s), ptid);
        ptx::mbar_wait(bar_addr(bars, Bar::EmptyV, s), ph ^ 1);
        PagedKv::tma_kv(p, &maps.v, b, c.kv_head, p.v_page_heads, v_tile, bar_addr(bars, Bar::FullV, s), ptid);
      } else {
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
    if (ptid == 0) publish_next(p, smem, bars, k + 1);
  }
  if (ptid == 0) retire_cta(smem);
  ptx::cp_async_wait<0>();  // no copy may outlive the CTA
}


// ---------------------------------------------------------------------------------------------
// fp8 cache. The producer walks the same blocks in the same order, but each K or V block (a "unit":
// unit 2 it is block it's K, unit 2 it + 1 its V) first lands as fp8 in staging slot unit % kSlots
// (TMA box or gather, signalled on that slot's Staged barrier), then all 128 producer threads widen
// it into the block's K or V ring stage (fp8::widen_block), fence it for wgmma and arrive on the
// stage's full barrier: the consumers see the same 16-bit stages and barriers as with a 16-bit
// cache. With two slots the next unit's copy is issued before the current unit is widened, so its
// latency hides behind the widening (and behind the wait for the ring stage); a bar.sync of the
// warpgroup before each copy keeps a slot from being refilled while a thread still reads it.
// Widened stages were written by the generic proxy and are fenced here, so the consumers treat every
// fp8 stage as loaded by TMA (no fence of their own).
// fp8-MMA builds take K's TMA boxes straight into the K ring stage (the K map is 128-byte swizzled,
// the layout e4m3 wgmma reads, fp8::swizzle_rows128): no staging, no copy; only gathered K blocks
// (a request's partial last block, or no TMA view) go through staging slot 0 and the swizzle copy.
// 16-byte loads in flight per widening step: twice the default where the producer has 72 registers.
constexpr int kWidenLoads = kProducerRegs >= 72 ? (kBf16 ? 4 : 2) : 0;

template <int kKind = kKvFp8>  // (a template so that 16-bit builds never instantiate it)
NA_DEVICE void producer_loop_fp8(const PrefillParams& p, const Sm90TensorMaps& maps, uint32_t smem,
                                 PagedKv::BlockOffsets& offs, uint32_t bars, int ptid) {
  constexpr int kSlots = SmemLayout::kStage8Slots;
  static_assert(kKind != fp8::kNone && (kSlots == 1 || kSlots == 2) && PagedKv::kRowSlots == 1, "fp8 staging");
  static_assert(!kConsumerV || kSlots == 2, "consumer-widened V has its own staging slot");
  static_assert(!kF8Mma || (kSlots == 2 && !kConsumerV), "fp8-MMA: K units in slot 0, V units in slot 1");
  if (ptid == 0) {
    if (p.q_tma) ptx::tma_prefetch_map(&maps.q);
    if (p.kv_box_tokens) { ptx::tma_prefetch_map(&maps.k); ptx::tma_prefetch_map(&maps.v); }
  }
  // Registers are short here (56 with the widening's): Q's coordinates are re-read from the tile
  // (next_q) when its Q loads. Thread 0 claims and hands out each next tile once the current one's
  // last block is loading (publish_next).
  int k = -1;     // tiles taken
  int w = -1;     // the current tile
  TileCoords c;
  int n = 0;      // the block of tile c whose units load next
  int par = 1;    // row-offset buffer of the block being loaded (gather path), flipped per block
  int32_t prefetched = 0;  // units-table entry of the next block's first row (gather-only batches)
  int prefetched_n0 = -1;
  // fp8-MMA: 2 x (K units staged in slot 0 so far: the parity of its Staged barrier) + 1 if the K unit
  // loaded last went straight into its ring stage by TMA (one register: the producer has 56).
  int k_units = 0;

  // The CTA's next tile with key blocks (empty tiles: no Q, no blocks, as in producer_loop).
  auto next_tile = [&]() -> bool {
    for (;;) {
      w = take_tile(smem, bars, ++k);
      if (w < 0) return false;
      c = load_tile(p, w);
      const int nb = num_blocks(c);
      if (nb > 0) {
        n = nb - 1;
        return true;
      }
      skip_q(bars, k);
      if (ptid == 0) publish_next(p, smem, bars, k + 1);
    }
  };
  auto next_q = [&]() { load_q(p, maps, load_tile(p, w), smem, bars, k, ptid); };
  // Copy unit j (K or V of block n of tile c) into its staging slot, once it is free: widened by this
  // warpgroup (its bar.sync), or with kConsumerV a V slot by the consumers (VFree, V unit j / 2).
  auto slot_free = [&](bool is_v, int j) {
    if (kConsumerV && is_v) ptx::mbar_wait(bar_addr(bars, Bar::VFree), ((j / 2) & 1) ^ 1);
    else ptx::named_barrier_sync(ptx::NamedBarrier::Producer, 128);
  };
  auto load_unit = [&](bool is_v, int j) {
    const int slot = j % kSlots;
    const uint32_t tile8 = smem + SmemLayout::kStage8 + slot * SmemLayout::kStage8Bytes;
    const uint32_t staged = bar_addr(bars, Bar::Staged, slot);
    const int n0 = first_key(c) + n * kBN;
    if (kF8Mma && !is_v) k_units = (k_units & ~1) | !PagedKv::by_gather(p, c, n0);
    if (kF8Mma && !is_v && (k_units & 1)) {  // block j / 2's K into its ring stage once the consumers freed it
      const int s = (j / 2) % kStages;
      ptx::mbar_wait(bar_addr(bars, Bar::EmptyK, s), (((j / 2) / kStages) & 1) ^ 1);
      const PagedKv::Box b = PagedKv::box_of(p, c.kv_tok0 + n0, ptid);
      PagedKv::tma_kv8(p, &maps.k, b, c.kv_head, p.k_page_heads, smem + SmemLayout::kKV + s * kKVBytes,
                       bar_addr(bars, Bar::FullK, s), ptid);
      return;
    }
    if (!PagedKv::by_gather(p, c, n0)) {
      const PagedKv::Box b = PagedKv::box_of(p, c.kv_tok0 + n0, ptid);
      slot_free(is_v, j);
      if (is_v) PagedKv::tma_kv8(p, &maps.v, b, c.kv_head, p.v_page_heads, tile8, staged, ptid);
      else PagedKv::tma_kv8(p, &maps.k, b, c.kv_head, p.k_page_heads, tile8, staged, ptid);
      return;
    }
    if (!is_v) {  // stage the block's row addresses (its bar.sync also frees the slot)
      par ^= 1;
      const PagedKv::RowOffset ro = PagedKv::load_row_offset(p, c, c.kv_tok0, n0, ptid, prefetched, prefetched_n0 == n0);
      prefetched_n0 = -1;
      if (p.kv_box_tokens == 0 && p.tok_units != nullptr && n > 0) {
        prefetched = PagedKv::load_row_unit(p, c, c.kv_tok0, n0 - kBN, ptid);
        prefetched_n0 = n0 - kBN;
      }
      PagedKv::stage_block_offsets(p, c, c.kv_tok0, n0, ro, ptid, offs, par);
      PagedKv::gather_kv8<false>(p, c, n0, offs.k[par], tile8, ptid);
    } else {
      slot_free(true, j);
      PagedKv::gather_kv8<true, kF8Mma>(p, c, n0, offs.v[par], tile8, ptid);
    }
    ptx::cp_async_mbar_arrive(staged);
  };
  // Widen unit j into ring stage it % kStages of K (is_v false) or V, once both have come free.
  auto widen_unit = [&](bool is_v, int j, int it) {
    const int slot = j % kSlots;
    const int s = it % kStages;
    if constexpr (kF8Mma) {  // K: by TMA into its stage (nothing to do), or the (k_units / 2)-th fill of slot 0
      if (!is_v && (k_units & 1)) return;
      ptx::mbar_wait(bar_addr(bars, Bar::Staged, slot), (is_v ? j / kSlots : k_units >> 1) & 1);
      if (!is_v) k_units += 2;
    } else {
      ptx::mbar_wait(bar_addr(bars, Bar::Staged, slot), (j / kSlots) & 1);
    }
    ptx::mbar_wait(bar_addr(bars, is_v ? Bar::EmptyV : Bar::EmptyK, s), ((it / kStages) & 1) ^ 1);
    const uint32_t tile = smem + SmemLayout::kKV + ((is_v ? kStages : 0) + s) * kKVBytes;
    if constexpr (kF8Mma) {  // bytes stay bytes: K swizzled, V transposed (fp8_convert.cuh)
      const uint32_t tile8 = smem + SmemLayout::kStage8 + slot * SmemLayout::kStage8Bytes;
      if (is_v) fp8::transpose_v_block<kBN, 128, kProducerRegs >= 72 ? 8 : 2>(tile8, tile, ptid);
      else fp8::swizzle_rows128<kBN, 128>(tile8, tile, ptid);
    } else {
      fp8::widen_block<kD, kBN, 128, kBf16, kKind, kHwCvt, PagedKv, kWidenLoads>(
          smem + SmemLayout::kStage8 + slot * SmemLayout::kStage8Bytes, tile, ptid);
    }
    ptx::fence_proxy_async();  // generic-proxy stores -> the consumers' wgmma (async proxy)
    ptx::mbar_arrive(bar_addr(bars, is_v ? Bar::FullV : Bar::FullK, s));
  };

  // Per block it: K(it) widened; V(it) copied (before that with two slots; with kConsumerV after it,
  // into slot 1 for the consumers); K(it + 1) copied; V(it) widened (not with kConsumerV). fp8-MMA:
  // a TMA K(it + 1) goes straight into its ring stage (the producer waits for that stage there), and
  // "widening" K(it) is then nothing.
  if (ptid == 0) {
    keep_counts(p, smem);
    publish_tile(smem, bars, 0, claim_tile(smem));
  }
  if (next_tile()) {
    next_q();
    load_unit(false, 0);
    for (int it = 0;; ++it) {
      if (kSlots == 2 && !kConsumerV) load_unit(true, 2 * it + 1);
      widen_unit(false, 2 * it, it);
      if (kSlots == 1 || kConsumerV) load_unit(true, 2 * it + 1);
      bool more = true, new_tile = false;
      if (n > 0) {
        --n;
      } else {
        if (ptid == 0) publish_next(p, smem, bars, k + 1);
        more = new_tile = next_tile();
      }
      if (kSlots == 2 && more) load_unit(false, 2 * it + 2);
      if (!kConsumerV) widen_unit(true, 2 * it + 1, it);
      if (!more) break;
      if (new_tile) next_q();
      if (kSlots == 1) load_unit(false, 2 * it + 2);
    }
  }
  if (ptid == 0) retire_cta(smem);
  ptx::cp_async_wait<0>();  // no copy may outlive the CTA
}
