// The device half of plan() (planner.py, launcher.expand_plan): from the uploaded page table and
// compact work list, write the per-token K/V tables and the tile rows the prefill kernels read.
// Counts come from the workspace, never from the launch: a launch captured in a CUDA graph stays
// valid after a later plan() of the same capacity. Same formulas as nvrtc_attn/paging.py
// (token_pages, offsets_in_*) and schedule.decode_tiles / planner.device_tiles.
#include "params.cuh"

// Largest i in [0, n) with a[i * stride] <= x, for a ascending with a[0] <= x (n >= 1).
NA_DEVICE int last_not_above(const int32_t* a, int n, int stride, int64_t x) {
  int lo = 0, hi = n;
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (a[static_cast<int64_t>(mid) * stride] <= x) lo = mid; else hi = mid;
  }
  return lo;
}

// Key token t: its page and slot (request b = the last one starting at or before t, which skips
// empty requests), then the offset table entries the prefill kernels gather by.
NA_DEVICE void expand_token(const OffsetParams& p, int batch, int64_t t) {
  const int b = last_not_above(p.kv_tok_indptr, batch, 1, t);
  const int64_t j = t - p.kv_tok_indptr[b];
  const int64_t page = p.page_indices[p.paged_kv_indptr[b] + j / p.page_size];
  const int64_t slot = j % p.page_size;
  if (p.tok_page != nullptr) {
    p.tok_page[t] = static_cast<int32_t>(page);
    p.tok_slot[t] = static_cast<int32_t>(slot);
  }
  if (p.tok_units != nullptr) {
    p.tok_units[t] = static_cast<int32_t>(page * p.page_ratio + slot);
  } else if (p.k_tok_elems != nullptr) {
    p.k_tok_elems[t] = page * p.k_stride_page + slot * p.k_stride_tok;
    p.v_tok_elems[t] = page * p.v_stride_page + slot * p.v_stride_tok;
  }
}

// The tile at sorted position pos of the work list, written to work-list slot `slot`: its block
// (pos0, k, e0, h_lo) names the KV head and the row tile (schedule.WorkList); the row tile and the
// request's lengths make the 12-int tile row. A piece of a split row tile (row field piece = 1 +
// its index) gets 1 + its partial-result slot, piece * num_kv_heads + kv_head (planner.device_tiles).
NA_DEVICE void expand_tile(const OffsetParams& p, int num_blocks, int pos, int slot) {
  const int4 blk = reinterpret_cast<const int4*>(p.blocks)[last_not_above(p.blocks, num_blocks, 4, pos)];
  const int o = pos - blk.x;
  const int row = p.entries[blk.z + o % blk.y];
  const int4* r = reinterpret_cast<const int4*>(p.rows) + 2 * static_cast<int64_t>(row);
  const int4 r0 = r[0], r1 = r[1];  // (req, 0, row_start, row_end), (kv_start, kv_end, piece, 0)
  const int req = r0.x;
  int4 t0, t1, t2;
  t0.x = req; t0.y = blk.w + o / blk.y; t0.z = r0.z; t0.w = r0.w;
  t1.x = r1.x; t1.y = r1.y; t1.z = p.qo_indptr[req]; t1.w = p.qo_indptr[req + 1] - t1.z;
  t2.x = p.kv_lens[req]; t2.y = p.kv_tok_indptr[req];
  t2.z = r1.z > 0 ? (r1.z - 1) * p.num_kv_heads + t0.y + 1 : 0; t2.w = 0;
  int4* out = reinterpret_cast<int4*>(p.tiles) + 3 * static_cast<int64_t>(slot);
  out[0] = t0; out[1] = t1; out[2] = t2;
}

// A static work list (sm80 plans), one warp per CTA c: its tiles are the sorted positions with
// tile_cta == c, in order (the host's stable grouping, partition's CSR list), so the warp walks
// tile_cta 32 positions at a time and the lanes that match write slots work_indptr[c] + (matches
// before them). Stops after its last.
NA_DEVICE void expand_cta_tiles(const OffsetParams& p, int num_tiles, int num_blocks, int cta, int lane) {
  const int slot0 = p.work_indptr[cta];
  const int count = p.work_indptr[cta + 1] - slot0;
  int found = 0;  // warp-uniform: every lane adds the same ballot
  for (int pos0 = 0; found < count && pos0 < num_tiles; pos0 += 32) {
    const int pos = pos0 + lane;
    const bool mine = pos < num_tiles && p.tile_cta[pos] == cta;
    const unsigned match = __ballot_sync(0xffffffffu, mine);
    if (mine) expand_tile(p, num_blocks, pos, slot0 + found + __popc(match & ((1u << lane) - 1u)));
    found += __popc(match);
  }
}

extern "C" __global__ void expand_plan(const __grid_constant__ OffsetParams p) {
  const int batch = p.counts[kCountBatch];
  const int num_tiles = p.counts[kCountTiles];
  const int num_blocks = p.counts[kCountBlocks];
  const int64_t total_kv = p.counts[kCountKvTokens];
  const int num_ctas = p.counts[kCountCtas];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p.tok_page != nullptr || p.tok_units != nullptr || p.k_tok_elems != nullptr) {
    for (int64_t t = first; t < total_kv; t += stride) expand_token(p, batch, t);
  }
  if (p.tiles != nullptr && num_ctas == 0) {  // claimed at run time (sm90): slot = sorted position
    for (int64_t pos = first; pos < num_tiles; pos += stride) {
      expand_tile(p, num_blocks, static_cast<int>(pos), static_cast<int>(pos));
    }
  } else if (p.tiles != nullptr) {  // whole warps (blockDim.x is a multiple of 32), one CTA each
    const int warps = static_cast<int>(stride / 32);
    for (int cta = static_cast<int>(first / 32); cta < num_ctas; cta += warps) {
      expand_cta_tiles(p, num_tiles, num_blocks, cta, threadIdx.x % 32);
    }
  }
}
