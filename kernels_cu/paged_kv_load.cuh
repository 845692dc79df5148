// The only place that knows about pages: K/V blocks of both kernels, from the plan's per-token
// tables into shared memory (sm80: cp.async gathers; sm90: cp.async gathers or one TMA box per page
// part). plan() turned the page table and the cache strides into one offset per key token (in units
// of the token stride, or in elements as a fallback); here those offsets are staged per KV block.
// Pages can be as small as one token and sit anywhere in the pool, so each row is gathered on its
// own: no page-table walk and no stride multiplication beyond offset * stride_token in the hot loop.
#pragma once
#include "params.cuh"
#include "ptx_sm80.cuh"
#include "ptx_mbarrier.cuh"
#include "ptx_tma.cuh"
#include "scheduler.cuh"

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

// The cache's element as the loads see it: 16-bit words, or the bytes of an fp8 cache.
template <int kBytes> struct KvElem;
template <> struct KvElem<2> { using T = uint16_t; };
template <> struct KvElem<1> { using T = uint8_t; };

// Gather one [kBlockN, kHeadDim] block of K or V (rows n0..) into shared memory with 16-byte
// cp.async: element offset = units * stride_token (or the element table) + head offset. Rows at or
// past kv_end are zero-filled (a zero byte is +0 in e4m3 and e5m2 too). 16-bit rows land swizzled,
// as ldmatrix reads them; an fp8 cache's rows (kElemBytes 1) land row-major and unswizzled, as
// fp8::widen_block reads them.
template <int kHeadDim, int kBlockN, int kThreads, bool kIsV, bool kFinal = false, int kElemBytes = 2>
NA_DEVICE void gather_kv_block(const PrefillParams& p, uint32_t smem_tile, const KvRowOffsets<kBlockN>& offs,
                               int parity, int n0, int kv_end, int kv_head, int tid) {
  using Elem = typename KvElem<kElemBytes>::T;
  constexpr int kChunks = kHeadDim * kElemBytes / 16;  // 16-byte chunks per row
  constexpr int kRowsPerPass = kThreads / kChunks;
  static_assert(kBlockN % kRowsPerPass == 0, "block rows must tile the thread passes");
  const Elem* base = static_cast<const Elem*>(kIsV ? p.v : p.k);
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
    const Elem* src = valid ? base + off + chunk * (16 / kElemBytes) : base;
    const uint32_t dst = kElemBytes == 2 ? swizzled_offset(row, chunk, kChunks) : static_cast<uint32_t>((row * kChunks + chunk) * 16);
    ptx::cp_async_16(smem_tile + dst, src, valid ? 16 : 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Hopper (prefill_sm90.cu): a [kBlockN][kHeadDim] K or V block in the 128-byte swizzle that wgmma
// descriptors read, filled by the producer warpgroup (128 threads, ptid) one of two ways:
//   TMA:    one 5-D cp.async.bulk.tensor box per page part (page_size a multiple of 8 keys), addressed
//           by the plan's (page, slot) tables. TMA can only describe whole boxes of the pool, so a
//           request's last, partial block takes the gather path: its cp.async zero-fills keys past
//           kv_len, and stale or unwritten cache slots never reach P V.
//   gather: every page size; 16-byte cp.async from row addresses staged in shared memory.
// Gathers signal their stage with cp.async.mbarrier.arrive (the hardware arrives once the thread's
// copies have landed); TMA copies complete the stage's transaction count. Either way a full barrier
// sees one arrival per producer thread. cp.async writes go through the generic proxy, so consumers
// fence (fence.proxy.async) after waiting on a gathered stage and before wgmma reads it.
// An fp8 cache (kElemBytes 1) comes the same two ways into a staging tile instead, [kBlockN][kHeadDim]
// bytes row-major (gather_kv8, tma_kv8), which the producer then widens into the ring stage
// (fp8_convert.cuh).
template <int kHeadDim, int kBlockN, int kElemBytes = 2>
struct PagedKvSm90 {
  using Elem = typename KvElem<kElemBytes>::T;
  static constexpr int kRowBytes = 128;                 // one 64-element column block row, swizzle atom
  static constexpr int kAtomBytes = 8 * kRowBytes;      // 8 rows x 128 B: the swizzle period
  static constexpr int kColBlocks = kHeadDim / 64;
  static constexpr int kGroupBytes = kColBlocks * kAtomBytes;  // 8 keys x all of head_dim
  static constexpr int kBlockBytes = kBlockN * kHeadDim * 2;
  static constexpr int kEightRowBytes = kGroupBytes;           // rows r and r + 8 (fp8::widen_block)
  static constexpr int kStageBytes = kBlockN * kHeadDim;       // an fp8 block as staged
  static_assert(kBlockN % 16 == 0 && kBlockN / 8 <= 32, "key blocks: whole 16-key wgmma steps, one TMA box per producer lane");

  // The one TMA-or-gather decision, made by the producer and read again by the consumers (which
  // fence gathered stages): the block at n0 is gathered when run() encoded no K/V maps
  // (p.kv_box_tokens == 0) or it holds fewer than kBlockN keys of the request; else TMA.
  static NA_DEVICE bool by_gather(const PrefillParams& p, const TileCoords& c, int n0) {
    return p.kv_box_tokens == 0 || n0 + kBlockN > c.kv_len;
  }

  // K and V tiles are stored 8 keys at a time: [key / 8][column block][key % 8][128 B], each 128-byte
  // row swizzled (chunk ^ key % 8). One TMA box of a page part (any multiple of 8 keys, every column)
  // is then one contiguous piece of the tile; the wgmma descriptors step kGroupBytes between 8-key groups.
  static NA_DEVICE uint32_t offset(int row, int chunk) {
    return static_cast<uint32_t>((row >> 3) * kGroupBytes + (chunk >> 3) * kAtomBytes +
                                 (row & 7) * kRowBytes + (((chunk & 7) ^ (row & 7)) << 4));
  }

  // Gather path. Row addresses of one block, double-buffered by parity in shared memory: one producer
  // thread per row turns its plan offset into a K and a V address once; the gathers then read them
  // with broadcast loads instead of holding 64-bit addresses in registers.
  struct BlockOffsets {
    const Elem* k[2][kBlockN];
    const Elem* v[2][kBlockN];
  };

  // Producer thread ptid stages rows ptid + 128 x (x < kRowSlots) of a block.
  static constexpr int kRowSlots = (kBlockN + 127) / 128;

  // One row's element offsets, head included (0 past the tile's keys).
  struct RowOffset {
    int64_t k = 0, v = 0;
  };

  // The units-table entry of this thread's first row (ptid) of the block at n0 (0 past the tile's
  // keys), loaded a block ahead by gather-only producers so its latency hides behind the previous
  // block's copies. Rows past 128 (kRowSlots 2) are read when staged: the producer has no registers
  // to spare.
  static NA_DEVICE int32_t load_row_unit(const PrefillParams& p, const TileCoords& c, int tok0, int n0, int ptid) {
    const int j = n0 + ptid;
    return ptid < kBlockN && j < c.kv_end ? p.tok_units[tok0 + j] : 0;
  }

  // Row `row` of the block at n0; unit: its prefetched units entry when have_unit.
  static NA_DEVICE RowOffset load_row_offset(const PrefillParams& p, const TileCoords& c, int tok0, int n0, int row,
                                             int32_t unit, bool have_unit) {
    RowOffset r;
    const int j = n0 + row;
    if (row < kBlockN && j < c.kv_end) {
      const int t = tok0 + j;
      if (p.tok_units != nullptr) {
        const int64_t u = have_unit ? unit : p.tok_units[t];
        r.k = u * p.k_stride_tok + c.kv_head * p.k_stride_head;
        r.v = u * p.v_stride_tok + c.kv_head * p.v_stride_head;
      } else {
        r.k = p.k_tok_elems[t] + c.kv_head * p.k_stride_head;
        r.v = p.v_tok_elems[t] + c.kv_head * p.v_stride_head;
      }
    }
    return r;
  }

  // Stages row ptid (offsets r) and this thread's further rows of the block at n0.
  static NA_DEVICE void stage_block_offsets(const PrefillParams& p, const TileCoords& c, int tok0, int n0,
                                            const RowOffset& r, int ptid, BlockOffsets& offs, int parity) {
#pragma unroll 1
    for (int x = 1; x < kRowSlots; ++x) {
      const int row = ptid + 128 * x;
      if (row < kBlockN) {
        const RowOffset rx = load_row_offset(p, c, tok0, n0, row, 0, false);
        offs.k[parity][row] = static_cast<const Elem*>(p.k) + rx.k;
        offs.v[parity][row] = static_cast<const Elem*>(p.v) + rx.v;
      }
    }
    if (ptid < kBlockN) {
      offs.k[parity][ptid] = static_cast<const Elem*>(p.k) + r.k;
      offs.v[parity][ptid] = static_cast<const Elem*>(p.v) + r.v;
    }
    ptx::named_barrier_sync(ptx::NamedBarrier::Producer, 128);
  }

  // Eight threads per row: thread ptid copies chunk ptid % 8 of every 64-column block (one row
  // address, kColBlocks copies) of rows ptid / 8 + 16 * pass. A warp's copy instruction then covers
  // four rows x 128 contiguous bytes, and the row keeps its swizzle phase (row % 8) across passes,
  // so the destination is one per-thread base plus constants.
  static constexpr int kGatherRowsPerPass = 128 / 8;

  // (16-bit caches: an fp8 build compiles it, unused, and stages through gather_kv8.)
  template <bool kIsV>
  static NA_DEVICE void gather_kv(const PrefillParams& p, const TileCoords& c, int n0, const Elem* const* rows,
                                  uint32_t tile, int ptid) {
    const Elem* dummy = static_cast<const Elem*>(kIsV ? p.v : p.k);  // valid address for 0-byte copies
    const int chunk = ptid % 8;
    const int r0 = ptid / 8;
    const int live = c.kv_end - n0;  // rows [0, live) exist
    const uint32_t dst0 = tile + offset(r0, chunk);
#pragma unroll 4
    for (int pass = 0; pass < kBlockN / kGatherRowsPerPass; ++pass) {
      const int row = r0 + pass * kGatherRowsPerPass;
      const bool valid = row < live;
      const Elem* src = valid ? rows[row] + chunk * 8 : dummy;
      const uint32_t dst = dst0 + pass * (kGatherRowsPerPass / 8) * kGroupBytes;
#pragma unroll
      for (int cb = 0; cb < kColBlocks; ++cb)
        ptx::cp_async_16(dst + cb * kAtomBytes, valid ? src + cb * 64 : dummy, valid ? 16 : 0);
    }
  }

  // TMA path. Box b of a block (kv_box_tokens tokens, inside one page) is loaded by producer lane b;
  // its (page, slot) is read from the plan's tables before the stage wait so the latency overlaps.
  struct Box {
    int page = 0, slot = 0;
  };

  static NA_DEVICE Box box_of(const PrefillParams& p, int tok, int ptid) {
    Box b;
    if (ptid < kBlockN / p.kv_box_tokens) {
      const int t = tok + ptid * p.kv_box_tokens;
      b.page = p.tok_page[t];
      b.slot = p.tok_slot[t];
    }
    return b;
  }

  // One stage's boxes by warp 0 (lane 0 first announces the stage's bytes), one arrival per producer
  // thread as in the gather path, so the full barriers keep one arrival count for both paths.
  // The maps are 5-D (64 columns, key % 8, column block, key / 8 in the page, head + page * page_heads):
  // one box is kv_box_tokens keys x head_dim, landing as kv_box_tokens / 8 consecutive 8-key groups.
  static NA_DEVICE void tma_kv(const PrefillParams& p, const TensorMap* map, const Box& b, int kv_head, int page_heads,
                               uint32_t tile, uint32_t full, int ptid) {
    if (ptid < 32) {
      if (ptid == 0) ptx::mbar_arrive_expect_tx(full, kBlockBytes);
      __syncwarp();
      if (ptid < kBlockN / p.kv_box_tokens) {
        const uint32_t dst = tile + ptid * (p.kv_box_tokens / 8) * kGroupBytes;
        ptx::tma_load_5d(dst, map, full, 0, 0, 0, b.slot / 8, b.page * page_heads + kv_head);
      }
      if (ptid != 0) ptx::mbar_arrive(full);
    } else {
      ptx::mbar_arrive(full);
    }
  }

  // fp8 cache, gather path: thread ptid copies 16-byte chunk ptid % (kHeadDim / 16) of rows
  // ptid / (kHeadDim / 16) + k * kGather8RowsPerPass into the row-major staging tile; rows at or past
  // kv_end are zero-filled (a zero byte is +0 in e4m3 and e5m2). kSwizzled: 128-byte rows (head_dim
  // 128) with the 128-byte swizzle of a swizzled map's TMA box (chunk j of row r at j ^ r % 8; the
  // fp8-MMA builds' V, for fp8::transpose_v_block).
  static constexpr int kChunks8 = kHeadDim / 16;
  static constexpr int kGather8RowsPerPass = 128 / kChunks8;

  template <bool kIsV, bool kSwizzled = false>
  static NA_DEVICE void gather_kv8(const PrefillParams& p, const TileCoords& c, int n0, const Elem* const* rows,
                                   uint32_t tile8, int ptid) {
    static_assert(kElemBytes == 1, "fp8 staging");
    static_assert(!kSwizzled || (kHeadDim == 128 && kGather8RowsPerPass % 8 == 0), "one swizzle row per key");
    const Elem* dummy = static_cast<const Elem*>(kIsV ? p.v : p.k);  // valid address for 0-byte copies
    const int chunk = ptid % kChunks8;
    const int r0 = ptid / kChunks8;
    const int live = c.kv_end - n0;  // rows [0, live) exist
    // (each pass moves 16 rows: a thread's swizzle phase r0 % 8 stays)
    const uint32_t dst0 = tile8 + r0 * kHeadDim + (kSwizzled ? (chunk ^ (r0 & 7)) : chunk) * 16;
#pragma unroll 4
    for (int pass = 0; pass < kBlockN / kGather8RowsPerPass; ++pass) {
      const int row = r0 + pass * kGather8RowsPerPass;
      const bool valid = row < live;
      ptx::cp_async_16(dst0 + pass * kGather8RowsPerPass * kHeadDim, valid ? rows[row] + chunk * 16 : dummy,
                       valid ? 16 : 0);
    }
  }

  // fp8 cache, TMA path: the maps are 3-D (head_dim bytes, key in the page, head + page * page_heads),
  // unswizzled; box b (kv_box_tokens keys) lands as kv_box_tokens consecutive staged rows. Arrivals as
  // in tma_kv.
  static NA_DEVICE void tma_kv8(const PrefillParams& p, const TensorMap* map, const Box& b, int kv_head, int page_heads,
                                uint32_t tile8, uint32_t full, int ptid) {
    if (ptid < 32) {
      if (ptid == 0) ptx::mbar_arrive_expect_tx(full, kStageBytes);
      __syncwarp();
      if (ptid < kBlockN / p.kv_box_tokens)
        ptx::tma_load_3d(tile8 + ptid * p.kv_box_tokens * kHeadDim, map, full, 0, b.slot, b.page * page_heads + kv_head);
      if (ptid != 0) ptx::mbar_arrive(full);
    } else {
      ptx::mbar_arrive(full);
    }
  }
};
