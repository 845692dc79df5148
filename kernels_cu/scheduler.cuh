// The device side of the plan's work list: CTA c runs tiles[work_indptr[c] .. work_indptr[c+1])
// (longest first, balanced on the host); each tile is (request, KV head, packed-row range, KV range).
#pragma once
#include "params.cuh"

struct TileCoords {  // one work tile, decoded
  int req, kv_head, row_start, row_end, kv_start, kv_end;
  int q0, qo_len, kv_len;
};

// Visible keys of query token i: [lo, hi) (bottom-right aligned causal mask, sliding window).
NA_DEVICE int row_hi(const PrefillParams& p, const TileCoords& c, int i) {
  return p.causal ? min(i + c.kv_len - c.qo_len + 1, c.kv_len) : c.kv_len;
}
NA_DEVICE int row_lo(const PrefillParams& p, const TileCoords& c, int i) {
  return p.window_left >= 0 ? i + c.kv_len - c.qo_len - p.window_left : 0;
}

// Decode tile w of the plan (two int4 loads) and its request's lengths.
NA_DEVICE TileCoords load_tile(const PrefillParams& p, int w) {
  const int4 t0 = reinterpret_cast<const int4*>(p.tiles)[2 * w];
  const int4 t1 = reinterpret_cast<const int4*>(p.tiles)[2 * w + 1];
  TileCoords c;
  c.req = t0.x; c.kv_head = t0.y; c.row_start = t0.z; c.row_end = t0.w;
  c.kv_start = t1.x; c.kv_end = t1.y;
  c.q0 = p.qo_indptr[c.req];
  c.qo_len = p.qo_indptr[c.req + 1] - c.q0;
  c.kv_len = p.kv_lens[c.req];
  return c;
}
