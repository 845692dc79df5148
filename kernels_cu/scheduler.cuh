// The device side of the plan's work list: each tile is (request, KV head, packed-row range, KV
// range). The sm80 kernel's CTA c runs tiles[work_indptr[c] .. work_indptr[c+1]) (longest first,
// balanced on the host); the sm90 kernel's CTAs claim them in order at run time (tile_sm90.cuh).
#pragma once
#include "params.cuh"

// Split-KV builds (SPLIT_KV=1, sm90: variants.py) read each tile's partial-result slot; the others
// (every sm80 build too) are never given a plan with pieces.
#ifndef SPLIT_KV
#define SPLIT_KV 0
#endif
constexpr bool kSplitKv = SPLIT_KV != 0;

struct TileCoords {  // one work tile, decoded
  int req, kv_head, row_start, row_end, kv_start, kv_end;
  int q0, qo_len, kv_len, kv_tok0;  // the request's first query row, lengths, first offset-table token
  int slot;                         // partial-result slot of a piece (SPLIT_KV builds), else -1
};

// Decode tile w of the plan: three independent loads (planner.DEVICE_TILE_FIELDS).
NA_DEVICE TileCoords load_tile(const PrefillParams& p, int w) {
  const int4* t = reinterpret_cast<const int4*>(p.tiles) + 3 * w;
  const int4 t0 = t[0], t1 = t[1];
  TileCoords c;
  c.req = t0.x; c.kv_head = t0.y; c.row_start = t0.z; c.row_end = t0.w;
  c.kv_start = t1.x; c.kv_end = t1.y; c.q0 = t1.z; c.qo_len = t1.w;
  if constexpr (kSplitKv) {
    const int4 t2 = t[2];  // partial = 1 + slot, 0: the tile writes the output
    c.kv_len = t2.x; c.kv_tok0 = t2.y; c.slot = t2.z - 1;
  } else {
    const int2 t2 = *reinterpret_cast<const int2*>(t + 2);  // partial and reserved not loaded
    c.kv_len = t2.x; c.kv_tok0 = t2.y; c.slot = -1;
  }
  return c;
}

// Pull tile w into this SM's L1 ahead of its load_tile (the latency hides behind the current tile).
NA_DEVICE void prefetch_tile(const PrefillParams& p, int w) {
  asm volatile("prefetch.global.L1 [%0];\n" ::"l"(p.tiles + 12 * w));
}
