// The one parameter block of the prefill kernels, passed by value as const __grid_constant__.
// Its Python mirror is nvrtc_attn/launcher.py (PrefillParams); tests/test_launcher.py checks
// that size and field offsets agree. Keep fields 8-byte aligned and the order identical.
#pragma once
#include "nvrtc_std.cuh"

struct PrefillParams {
  // Data (caller's arrays). Element strides, head_dim stride is 1.
  const void* q;            // [total_q, num_qo_heads, head_dim]
  const void* k;            // paged cache, this layer's view
  const void* v;
  void* o;                  // [total_q, num_qo_heads, head_dim]
  float* lse;               // [total_q, num_qo_heads] or null

  // Plan (workspace). Built once per batch by plan(), shared by every layer.
  const int32_t* qo_indptr;      // [batch + 1] first query row of each request in q
  const int32_t* kv_lens;        // [batch]
  const int32_t* kv_tok_indptr;  // [batch + 1] first token of each request in the offset tables
  const int32_t* tok_units;      // [total_kv] page * (stride_page / stride_token) + slot, or null
  const int64_t* k_tok_elems;    // [total_kv] element offsets (fallback when tok_units is null)
  const int64_t* v_tok_elems;
  const int32_t* tok_page;       // [total_kv] pool page of each token (sm90 TMA boxes)
  const int32_t* tok_slot;       // [total_kv] token slot within its page
  const int32_t* tiles;          // [num_tiles, 12]: planner.DEVICE_TILE_FIELDS (partial: 1 + slot, or 0)
  const int32_t* work_indptr;    // [grid + 1] CTA c runs tiles[work_indptr[c] .. work_indptr[c+1])

  int64_t q_stride_tok, q_stride_head;
  int64_t o_stride_tok, o_stride_head;
  int64_t lse_stride_tok, lse_stride_head;
  int64_t k_stride_tok, k_stride_head;
  int64_t v_stride_tok, v_stride_head;

  int32_t num_qo_heads;
  int32_t group_size;            // num_qo_heads / num_kv_heads
  int32_t causal;                // 0 or 1
  int32_t window_left;           // < 0: no sliding window
  float scale_log2;              // multiplies the (capped) logit before exp2
  float soft_cap;                // 0: off; else logit = soft_cap * tanh(q.k * cap_scale)
  float cap_scale;               // sm_scale / soft_cap
  int32_t kv_box_tokens;         // sm90: 0 = K/V by cp.async gather; else TMA boxes of this many tokens
  int32_t q_tma;                 // sm90: 1 = Q by TMA (group_size divides block_m), 0 = cp.async
  int32_t k_page_heads;          // sm90 TMA: page stride / head stride of K (heads dim folded into pages)
  int32_t v_page_heads;
  float v_scale;                 // multiplies O in the epilogue (FlashInfer's v_scale)
  float lse_scale;               // multiplies the base-2 LSE: 1 (log2) or ln 2 (natural log)

  // Split-KV builds (SPLIT_KV): a piece tile (partial = 1 + slot) writes its rows' O over its keys,
  // normalized, in fp32, and their base-2 LSE (no v_scale, no lse_scale: merge_split.cu applies both
  // once) to slot `slot` of the caller's float workspace. Null in other builds.
  int32_t reserved;
  float* partial_o;              // [slots, block_m, head_dim]
  float* partial_lse;            // [slots, block_m]

  // fp8 cache builds (KV_FP8 != 0): per-KV-head scales [num_kv_heads] (float32), or null for
  // per-tensor scales (already folded into scale_log2 / cap_scale and v_scale). k_scale_heads[h]
  // multiplies the logit scale of KV head h's tiles, v_scale_heads[h] their O (a piece's partial O
  // too: merge_split.cu then applies the per-tensor v_scale only). Last, so that the fields above
  // keep their offsets (and the 16-bit builds their SASS).
  const float* k_scale_heads;
  const float* v_scale_heads;

  // The plan's counts (planner.COUNTS, workspace): the sm90 kernel reads its tile count there and
  // claims tiles through counts[kCountNext] (tile_sm90.cuh: claim_tile); the sm80 kernel, which runs
  // a static work list (work_indptr), never reads it.
  int32_t* counts;

  // fp8 cache builds: per-head query scales (FlashInfer's q_scale as a float32 array), or null.
  // q_scale_kv_heads [num_kv_heads] multiplies the logit scale of KV head h's tiles with
  // k_scale_heads (TileScales). q_scale_qo_heads [num_qo_heads] (fp8-query builds, Q_FP8) multiplies
  // the fp32 scores of each query row by its head's entry before soft cap, mask and softmax. Last,
  // so that the fields above keep their offsets.
  const float* q_scale_kv_heads;
  const float* q_scale_qo_heads;
};

// The driver's opaque 128-byte CUtensorMap (cuda.h is not available under NVRTC).
struct alignas(64) TensorMap {
  uint64_t opaque[16];
};

// The Hopper kernel's second parameter: TMA descriptors encoded by run() (wrapper.py). Q is
// (head_dim, qo head, token) with boxes of (64, group_size, block_m / group_size); K and V are this
// layer's pool views as (64 columns, token % 8, column block, token / 8 in page, head + page *
// page_heads) with boxes of (64, 8, head_dim / 64, kv_box_tokens / 8, 1). A map is all zeros when
// its path is off (q_tma = 0, kv_box_tokens = 0).
struct Sm90TensorMaps {
  TensorMap q, k, v;
};

// The plan's device-side expansion (kv_offsets.cu): launched by plan() right after its upload,
// and again by run() for strides plan() did not see. Inputs are uploaded workspace sections
// (planner.UPLOADED); null outputs are skipped. Counts are read from `counts` (planner.COUNTS).
// kCountCtas: CTAs of the static work list (work_indptr, tile_cta; sm80 plans), 0 when the kernel's CTAs
// claim the tiles in sorted order at run time (sm90 plans). kCountNext and kCountDone: that claim's
// counters (zero after the upload and after every launch).
enum PlanCount { kCountBatch = 0, kCountTiles = 1, kCountBlocks = 2, kCountKvTokens = 3, kCountCtas = 4,
                 kCountMerges = 5, kCountNext = 6, kCountDone = 7 };

struct OffsetParams {
  const int32_t* counts;           // [8] PlanCount
  const int32_t* qo_indptr;        // [batch + 1]
  const int32_t* kv_lens;          // [batch]
  const int32_t* kv_tok_indptr;    // [batch + 1] first token of each request
  const int32_t* paged_kv_indptr;  // [batch + 1]
  const int32_t* page_indices;     // [pages] the used page-table entries
  const int32_t* rows;             // [R, 8] row tiles (schedule.TILE_FIELDS; pieces of split ones)
  const int32_t* blocks;           // [blocks, 4] (pos0, k, e0, h_lo) (schedule.WorkList)
  const int32_t* entries;          // [entries] row tile of each entry
  const int32_t* work_indptr;      // [ctas + 1] CTA c runs work-list slots work_indptr[c] ..
  const uint16_t* tile_cta;        // [tiles] CTA of each sorted position (schedule.WorkList)
  int32_t* tiles;                  // out [tiles, 12] planner.DEVICE_TILE_FIELDS, or null
  int32_t* tok_page;               // out [total_kv] (with tok_slot), or null
  int32_t* tok_slot;
  int32_t* tok_units;              // out, units mode (or null)
  int64_t* k_tok_elems;            // out, elements mode (or null)
  int64_t* v_tok_elems;
  int64_t page_ratio;              // stride_page / stride_token (units mode)
  int64_t k_stride_page, k_stride_tok, v_stride_page, v_stride_tok;
  int32_t page_size;
  int32_t num_kv_heads;            // a piece's partial slot is piece * num_kv_heads + kv_head
};

// The merge of split tiles (merge_split.cu), launched after the prefill kernel on its stream: for
// each split row tile of the plan's merge table and each KV head, the pieces' partial O and LSE
// become the rows' O (times v_scale) and LSE (times lse_scale). Counts come from the workspace.
struct MergeParams {
  const int32_t* counts;      // planner.COUNTS: kCountMerges entries in `merges`
  const int32_t* merges;      // [merges, 8] schedule.MERGE_FIELDS: req, -, row_start, row_end, first_piece, pieces
  const int32_t* qo_indptr;   // [batch + 1]
  const float* partial_o;     // [slots, block_m, head_dim] (PrefillParams)
  const float* partial_lse;   // [slots, block_m]
  void* o;                    // [total_q, num_qo_heads, head_dim], 16-bit
  float* lse;                 // [total_q, num_qo_heads] or null
  int64_t o_stride_tok, o_stride_head;
  int64_t lse_stride_tok, lse_stride_head;
  int32_t num_kv_heads, group_size, head_dim, block_m;
  float v_scale, lse_scale;
  int32_t is_bf16;            // o's type: 1 bf16, 0 fp16
  int32_t reserved;
};
