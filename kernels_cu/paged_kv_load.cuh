// The only place that knows about pages. plan() turned the page table and the cache strides into
// one offset per key token (in units of the token stride, or in elements as a fallback); here those
// offsets are staged in shared memory per KV block and turned into 16-byte cp.async gathers.
// Pages can be as small as one token and sit anywhere in the pool, so each row is gathered on its
// own: no page-table walk and no stride multiplication beyond offset * stride_token in the hot loop.
#pragma once
#include "params.cuh"
#include "ptx_sm80.cuh"

// Shared-memory tiles are [rows][head_dim] in 16-byte chunks, XOR-swizzled on the low 3 bits of
// the chunk index so that the 8 rows an ldmatrix phase reads, and the 8 chunks a cp.async phase
// writes, fall in different banks.
NA_DEVICE uint32_t swizzled_offset(int row, int chunk, int chunks_per_row) {
  return static_cast<uint32_t>((row * chunks_per_row + (chunk ^ (row & 7))) * 16);
}

// The same swizzle for a per-lane base address (tile base + row * row_bytes + (x ^ (row & 7)) * 16,
// with the tile 128-byte aligned) moved by a compile-time even chunk c: flipping bits 4..6 and
// adding whole 128-byte groups keeps the loop-invariant part in one register per operand instead
// of one address per (k step, tile) that would spill.
NA_DEVICE uint32_t swizzle_step(uint32_t lane_base, int c) {
  return (lane_base ^ static_cast<uint32_t>((c & 7) << 4)) + static_cast<uint32_t>((c >> 3) << 7);
}

// Offsets of the rows of one KV block, double-buffered by block parity: token units (one table
// for K and V) or element offsets (K and V tables), exactly as plan() stored them.
template <int kBlockN>
struct KvRowOffsets {
  int64_t k_elems[2][kBlockN];
  int64_t v_elems[2][kBlockN];
  int32_t units[2][kBlockN];
};

// Copy the offsets of rows [n0, n0 + kBlockN) (clipped to kv_end) into slot `parity` with
// cp.async, one thread per row, so they ride in the same commit group as a K/V tile and hold
// no registers while the tensor cores run.
template <int kBlockN>
NA_DEVICE void stage_row_offsets(const PrefillParams& p, KvRowOffsets<kBlockN>& offs, int parity,
                                 int tok0, int n0, int kv_end, int tid) {
  const int j = n0 + tid;
  if (tid < kBlockN && j < kv_end) {
    const int t = tok0 + j;
    if (p.tok_units != nullptr) {
      ptx::cp_async_4(ptx::smem_addr(&offs.units[parity][tid]), p.tok_units + t);
    } else {
      ptx::cp_async_8(ptx::smem_addr(&offs.k_elems[parity][tid]), p.k_tok_elems + t);
      ptx::cp_async_8(ptx::smem_addr(&offs.v_elems[parity][tid]), p.v_tok_elems + t);
    }
  }
}

// Units mode: one thread per row loads the row's token-unit offset into a register while the
// tensor cores run (one 32-bit register held), then stores final element offsets (head offset
// included) for K and V with store_row_offsets before the next barrier.
template <int kBlockN>
NA_DEVICE int32_t load_row_units(const PrefillParams& p, int tok0, int n0, int kv_end, int tid) {
  const int j = n0 + tid;
  return (tid < kBlockN && j < kv_end) ? p.tok_units[tok0 + j] : 0;
}
template <int kBlockN>
NA_DEVICE void store_row_offsets(const PrefillParams& p, KvRowOffsets<kBlockN>& offs, int parity,
                                 int32_t units, int kv_head, int tid) {
  if (tid < kBlockN) {
    offs.k_elems[parity][tid] = units * p.k_stride_tok + kv_head * p.k_stride_head;
    offs.v_elems[parity][tid] = units * p.v_stride_tok + kv_head * p.v_stride_head;
  }
}

// Gather one [kBlockN, kHeadDim] block of K or V (rows n0..) into swizzled shared memory with
// 16-byte cp.async: element offset = units * stride_token (or the element table) + head offset.
// Rows at or past kv_end are zero-filled.
template <int kHeadDim, int kBlockN, int kThreads, bool kIsV, bool kFinal = false>
NA_DEVICE void gather_kv_block(const PrefillParams& p, uint32_t smem_tile, const KvRowOffsets<kBlockN>& offs,
                               int parity, int n0, int kv_end, int kv_head, int tid) {
  constexpr int kChunks = kHeadDim / 8;            // 16-byte chunks per row
  constexpr int kRowsPerPass = kThreads / kChunks;
  static_assert(kBlockN % kRowsPerPass == 0, "block rows must tile the thread passes");
  const uint16_t* base = static_cast<const uint16_t*>(kIsV ? p.v : p.k);
  const int64_t stride_tok = kIsV ? p.v_stride_tok : p.k_stride_tok;
  const int64_t head_off = kv_head * (kIsV ? p.v_stride_head : p.k_stride_head);
  const bool units = p.tok_units != nullptr;
  const int chunk = tid % kChunks;
  const int row0 = tid / kChunks;
#pragma unroll
  for (int pass = 0; pass < kBlockN / kRowsPerPass; ++pass) {
    const int row = row0 + pass * kRowsPerPass;
    const bool valid = n0 + row < kv_end;
    const int64_t staged = kIsV ? offs.v_elems[parity][row] : offs.k_elems[parity][row];
    const int64_t off = kFinal ? staged : (units ? offs.units[parity][row] * stride_tok : staged) + head_off;
    const uint16_t* src = valid ? base + off + chunk * 8 : base;
    ptx::cp_async_16(smem_tile + swizzled_offset(row, chunk, kChunks), src, valid ? 16 : 0);
  }
}
