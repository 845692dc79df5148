// The Hopper kernel's O/LSE epilogue: LSE by one lane per row; O normalized by the row sums, staged per
// warp in shared memory and stored as whole 128-byte row segments with 16-byte stores.
#pragma once
#include "tile_sm90.cuh"
#include "softmax.cuh"

// The sm90 tiles' softmax: P times 2^kPExp (tile_sm90.cuh).
using TileSoftmax = OnlineSoftmax<kPExp>;

// Finalizes row g + 8 hh of the thread's warp (warp of the consumer warpgroup whose rows start at
// wg_row0; t4 = lane % 4) and stores its LSE (log2 units times p.lse_scale: 1, or ln 2 for a
// natural-log LSE) when the caller asked for it (p.lse). Returns v_scale / l for store_o. A row that saw no key (an empty tile, or a fully masked row) has l = 0:
// its LSE is -inf and its O, scaled by 0, is 0.
NA_DEVICE float store_lse(const PrefillParams& p, const TileCoords& c, const TileSoftmax& sm, int hh, int warp, int g,
                          int t4, int wg_row0, float c2, float v_scale) {
  const float l = sm.total(hh);
  const float inv = TileSoftmax::inverse(l) * v_scale;  // FlashInfer's v_scale (p.v_scale or the tile's), fused here
  const int packed = c.row_start + wg_row0 + warp * 16 + g + hh * 8;
  if (p.lse != nullptr && t4 == 0 && packed < c.row_end) {
    const int i = packed / p.group_size;
    const int h = c.kv_head * p.group_size + (packed - i * p.group_size);
    p.lse[(c.q0 + i) * p.lse_stride_tok + h * p.lse_stride_head] = sm.lse(hh, l, c2) * p.lse_scale;
  }
  return inv;
}

// O of the tile's rows for consumer warpgroup cw (ctid: thread in it), scaled by inv (store_lse).
// Staging: each warp's 16 rows x 64 columns (SmemLayout::kEpiRows at a time) in shared memory,
// 16-byte chunks swizzled by row (conflict-free both ways), one column block after the other.
NA_DEVICE void store_o(const PrefillParams& p, const TileCoords& c, const float (&o)[kD / 2], const float (&inv)[2],
                        uint32_t smem, int cw, int ctid, int warp, int lane, int wg_row0) {
  // The swizzled staging offsets are recomputed here from an opaque copy of the lane index: hoisted
  // out of the tile loop they would be a dozen registers live across the GEMMs (and spill).
  int ln;
  asm volatile("mov.u32 %0, %1;\n" : "=r"(ln) : "r"(lane));
  const int wg = ln / 4;  // == g
  const uint32_t stage = smem + SmemLayout::kEpi + (ctid / 32 + cw * 4) * SmemLayout::kEpiWarpBytes;
  // Reads: lane copies chunk lane % 8 of rows lane / 8 + 4 k.
  const int rd_chunk = ln % 8;
  uint16_t* out = static_cast<uint16_t*>(p.o);
#pragma unroll
  for (int cb = 0; cb < kColBlocks; ++cb) {
#pragma unroll
    for (int h0 = 0; h0 < 2; h0 += SmemLayout::kEpiRows / 8) {  // rows g + 8 hh, hh in [h0, h0 + kEpiRows / 8)
#pragma unroll
      for (int hh = h0; hh < h0 + SmemLayout::kEpiRows / 8; ++hh) {
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
      for (int k = 0; k < SmemLayout::kEpiRows / 4; ++k) {
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

// A piece of a split tile (SPLIT_KV builds, c.slot >= 0): rows g + 8 hh of the thread's warp keep O over
// the piece's keys normalized by their own row sums, in fp32, and their base-2 LSE in slot c.slot of
// the float workspace, for merge_split.cu (which applies v_scale and lse_scale once, after combining).
// A row that saw none of the piece's keys stores O = 0 and LSE = -inf, which the merge weighs 0.
// The quad's four threads store 32 contiguous bytes of a row per 8-column chunk (float2 each).
// fp8 cache: c2 is the tile's (TileScales) and v_head the tile's KV-head factor of a per-head v_scale
// (O is linear in V, so the merge's weighted sum of pieces scaled by v_head is the scaled sum); the
// per-tensor v_scale stays the merge's. 16-bit builds pass 1 and never multiply.
NA_DEVICE void store_partial(const PrefillParams& p, const TileCoords& c, const TileSoftmax& sm, const float (&o)[kD / 2],
                             int warp, int g, int t4, int wg_row0, float c2, float v_head) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const float l = sm.total(hh);  // every lane: a quad shuffle
    float inv = TileSoftmax::inverse(l);
    if constexpr (kFp8) inv *= v_head;
    const int r = wg_row0 + warp * 16 + g + hh * 8;
    if (c.row_start + r < c.row_end) {
      const int64_t row = static_cast<int64_t>(c.slot) * kBM + r;
      float* dst = p.partial_o + row * kD + 2 * t4;
#pragma unroll
      for (int dt = 0; dt < kD / 8; ++dt)
        *reinterpret_cast<float2*>(dst + dt * 8) = make_float2(o[4 * dt + 2 * hh] * inv, o[4 * dt + 2 * hh + 1] * inv);
      if (t4 == 0) p.partial_lse[row] = sm.lse(hh, l, c2);
    }
  }
}
