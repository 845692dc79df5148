// The Hopper kernel's producer warpgroup: per tile, Q by TMA or cp.async into its Q stage, then the
// tile's K/V blocks, last to first, into the K/V rings through paged_kv_load.cuh (TMA or gather).
#pragma once
#include "tile_sm90.cuh"
#include "paged_kv_load.cuh"
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
      const uint32_t k_tile = smem + SmemLayout::kKV + s * kKVBytes;
      const uint32_t v_tile = smem + SmemLayout::kKV + (kStages + s) * kKVBytes;
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

