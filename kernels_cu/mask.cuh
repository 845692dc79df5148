// Which keys a query row sees: the causal mask (bottom-right aligned), the sliding window and the
// request's key count, as per-row bounds [lo, hi) and as -inf scores in a tile's accumulators.
#pragma once
#include "params.cuh"
#include "scheduler.cuh"

// Visible keys of query token i: [lo, hi) (bottom-right aligned causal mask, sliding window).
NA_DEVICE int row_hi(const PrefillParams& p, const TileCoords& c, int i) {
  return p.causal ? min(i + c.kv_len - c.qo_len + 1, c.kv_len) : c.kv_len;
}
NA_DEVICE int row_lo(const PrefillParams& p, const TileCoords& c, int i) {
  return p.window_left >= 0 ? i + c.kv_len - c.qo_len - p.window_left : 0;
}

// The keys every row of a tile sees: a key block inside [max_lo, min_hi) needs no mask.
struct TileMask {
  int min_hi, max_lo;
  NA_DEVICE bool needed(int n0, int block_n) const { return n0 + block_n > min_hi || n0 < max_lo; }
};
NA_DEVICE TileMask tile_mask(const PrefillParams& p, const TileCoords& c) {
  return {row_hi(p, c, c.row_start / p.group_size), row_lo(p, c, (c.row_end - 1) / p.group_size)};
}

// Scores of keys n0.. that this thread's two accumulator rows (tile rows row and row + 8) do not see
// become -inf. Layout of s (mma.sync m16n8 / wgmma m64nN, per 8-key chunk nt): s[4 nt + 2 hh + e] is
// row + 8 hh, key n0 + 8 nt + 2 t4 + e, with t4 = lane % 4.
template <int N>
NA_DEVICE void mask_scores(float (&s)[N], const PrefillParams& p, const TileCoords& c, int row, int n0, int t4) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int packed = c.row_start + row + hh * 8;
    const int i = packed / p.group_size;
    const int hi = row_hi(p, c, i);
    const int lo = row_lo(p, c, i);
#pragma unroll
    for (int nt = 0; nt < N / 4; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = n0 + nt * 8 + 2 * t4 + e;
        if (j >= hi || j < lo) s[4 * nt + 2 * hh + e] = NA_NEG_INF;
      }
  }
}
