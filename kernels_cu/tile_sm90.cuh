// The Hopper kernel's tile: sizes from nvrtc_attn/variants.py's macros, the register split, the
// mbarriers and the shared-memory layout (the one place its size is computed; the host reads it
// from the cubin), plus the swizzled offsets and key-block counting both warpgroup roles share.
#pragma once
#include "nvrtc_std.cuh"
#include "paged_kv_load.cuh"
#include "scheduler.cuh"

#if !defined(HEAD_DIM) || !defined(IS_BF16) || !defined(BLOCK_N) || !defined(CONSUMER_WGS) || \
    !defined(KV_STAGES) || !defined(Q_STAGES) || !defined(PINGPONG) || !defined(CTAS_PER_SM) || !defined(KV_FP8)
#error "HEAD_DIM, IS_BF16, BLOCK_N, CONSUMER_WGS, KV_STAGES, Q_STAGES, PINGPONG, CTAS_PER_SM, KV_FP8 come from nvrtc_attn/variants.py"
#endif

constexpr int kD = HEAD_DIM;
// 2, or 3 at head_dim 64 (registers allow 192-row tiles); 1 in the short tiles (64 rows, two CTAs per SM).
constexpr int kConsumerWGs = CONSUMER_WGS;
// CTAs an SM runs at once: the launch bound, the shared-memory budget and the register split below.
constexpr int kCtasPerSm = CTAS_PER_SM;
constexpr int kConsumerThreads = 128 * kConsumerWGs;
constexpr int kBM = 64 * kConsumerWGs;   // query rows per tile: 64 per consumer warpgroup
constexpr int kBN = BLOCK_N;             // keys per block
constexpr int kStages = KV_STAGES;   // K and V ring depth
constexpr int kQStages = Q_STAGES;   // 2: the next tile's Q loads during this tile
// Intra-warpgroup overlap keeps S, P and O live at once: it fits the registers of one or two consumer
// warpgroups up to head_dim 128, and at head_dim 256 with 64-key blocks (O 128, S 32, P 16 of the
// consumers' 224), not three warpgroups' 152 registers. head_dim 256 on a 16-bit cache only: H200
// same-call A/B (s23r1, against the serial schedule): W6 656.2 -> 699.5 TFLOP/s (+6.6%), 8K
// non-causal +7.1%, 8 x 2048 GQA 2 +7.2%, chunks of 512 on 4096 at page 64 +8.2%, pages of 1 (gather)
// +3.4% (s23r5: short tiles with turns even to +1.9%, 16 x 1024 +5.2%); on an e4m3 cache (its producer
// widens every K and V) -5.4%, so fp8 caches stay serial.
constexpr bool kOverlap = (HEAD_DIM <= 128 || (HEAD_DIM == 256 && BLOCK_N <= 64 && KV_FP8 == 0)) && CONSUMER_WGS <= 2;
// Consumer warpgroups take turns issuing their GEMMs (plan() picks the build: short tiles want it).
constexpr bool kPingPong = PINGPONG != 0;
static_assert(!kPingPong || kConsumerWGs > 1, "turn-taking needs two consumer warpgroups");
constexpr int kThreads = 128 + kConsumerThreads;  // producer warpgroup + consumer warpgroups
constexpr int kChunks = kD / 8;          // 16-byte chunks per row
constexpr int kRowsPerPass = 128 / kChunks;
constexpr bool kBf16 = IS_BF16 != 0;           // the queries' (and output's) 16-bit type
// The cache: 0 = the queries' 16-bit type; 1 = fp8 e4m3, 2 = fp8 e5m2 (fp8::Kind), staged as bytes and
// widened by the producer warpgroup into the same 16-bit ring stages (producer_loop_fp8).
constexpr int kKvFp8 = KV_FP8;
constexpr bool kFp8 = kKvFp8 != 0;
constexpr bool kHwCvt = true;  // sm_90a has cvt.rn.f16x2.e4m3x2 (fp8_convert.cuh)
// fp8 queries (Q_FP8 = 1 e4m3 / 2 e5m2, with a cache of the same kind): loaded as bytes and widened by the producer into
// the same 16-bit Q stage (fp8::load_q_rows), so IS_BF16 is then the output's (and the GEMMs') type.
// Only those builds pass the macro: every other build's macros (and cache keys) stay as they were.
#ifndef Q_FP8
#define Q_FP8 0
#endif
constexpr bool kQFp8 = Q_FP8 != 0;
static_assert(!kQFp8 || kKvFp8 == Q_FP8, "fp8 queries need a cache of their fp8 kind");
// fp8 queries on the fp8 tensor cores (FP8_MMA = 1; only those builds pass it): Q, K and V stay bytes.
// Q and K tiles are [rows][kD] bytes, each 128-byte row swizzled (chunk ^ row % 8), for e4m3 wgmma
// k32 (8-bit operands are K-major only); V is transposed by the producer into [kD][kBN] bytes
// (keys contiguous, in the key order of P's register fragment: fp8::transpose_v_block); P goes to
// e4m3 in registers (pack_p). head_dim 128: one swizzle row is one fp8 row.
#ifndef FP8_MMA
#define FP8_MMA 0
#endif
constexpr bool kF8Mma = FP8_MMA != 0;
// The overlapped schedule rescales O lazily (OnlineSoftmax::update_lazy: fewer consumer instructions,
// a warp vote and a branch on the way to P V) where the consumers' issue slots are what is short, and
// exactly elsewhere. H200 same-call A/Bs against exact rescaling:
// - head_dim 256 (128 O accumulators per thread against a block's 32 scores): +4.8 to +5.8% (s23r1);
// - fp8 caches (the producer widens, the consumers widen V; not the fp8-MMA builds, whose P carries
//   2^kPExp): W2f8 +2.8%, W1f8 +1.7%, W2f8q +1.9% (s23r2);
// - gathered 16-bit K/V (the producer's cp.async issue shares the schedulers): W2p1 +2.8% (s23r2);
// - not TMA-fed 16-bit K/V: W7 -2.2%, W2 -1.4%, W10 -1.5%, W3 -1.6%, W1 -0.6% (s23r2), W2 with a
//   1024-key window -1.6% (s23r3).
// Not the short tiles (two CTAs per SM, untested). The 16-bit 128-key builds without turns serve both
// the gather (page sizes TMA cannot box) and TMA pages with a sliding window (176-key blocks take no
// window), so they choose per launch, on p.kv_box_tokens, between two inlined copies of the overlapped
// schedule (kLazyByLoad). Against one lazy copy (s24r1, s24r2, same call): W2 with a 1024-key window
// on TMA pages 475.8 -> 482.3 and 475.5 -> 482.3 TFLOP/s (+1.4%), W2p1 599.4 -> 597.7 and 603.6 ->
// 601.9 (-0.3%), W2p1 with the window equal.
constexpr bool kLazyOverlap = kOverlap && !kF8Mma && CTAS_PER_SM == 1 && (HEAD_DIM == 256 || KV_FP8 != 0);
constexpr bool kLazyByLoad = kOverlap && !kF8Mma && CTAS_PER_SM == 1 && HEAD_DIM <= 128 && KV_FP8 == 0 &&
                             !PINGPONG && BLOCK_N == 128;
static_assert(!kF8Mma || (Q_FP8 == 1 && HEAD_DIM == 128 && BLOCK_N % 32 == 0), "fp8 MMA: e4m3 queries, head_dim 128");
// fp8 cache, 16-bit GEMMs, two consumer warpgroups without turn-taking (head_dim <= 128): the consumers
// widen V themselves (Consumer::widen_v, while P V of the block before runs) and the producer only K,
// half of what its one warp per scheduler had to widen. V's fp8 bytes then always use staging slot 1,
// which the consumers free on the VFree barrier; both consumer warpgroups' halves of a V stage are
// complete at a bar.sync of the 256 (ConsumersV) before its P V.
constexpr bool kConsumerV = kFp8 && !kF8Mma && HEAD_DIM <= 128 && CONSUMER_WGS == 2 && !PINGPONG;
constexpr int kPvK = kF8Mma ? 32 : 16;  // keys per P V wgmma (its k)
// P is 2^kPExp times its value before its e4m3 rounding (P <= 1 after the running max; 256 < 448,
// e4m3's largest finite value) so that P down to 2^-14 keeps e4m3's 3-bit mantissa instead of
// flushing below 2^-9: a bias of the softmax's exponent (OnlineSoftmax), which the row sum carries too.
constexpr int kPExp = kF8Mma ? 8 : 0;
static_assert(!kF8Mma || kOverlap, "2^kPExp P from the exact softmax only (the lazy one's P reaches 2^8 already)");
using PagedKv = PagedKvSm90<kD, kBN, kFp8 ? 1 : 2>;  // K/V block loads (paged_kv_load.cuh)
constexpr int kQBytes = kBM * kD * (kF8Mma ? 1 : 2);
constexpr int kKVBytes = kF8Mma ? PagedKv::kStageBytes : PagedKv::kBlockBytes;
constexpr int kSwizzleRowBytes = PagedKv::kRowBytes;  // one 64-element column block row, 128B swizzle atom
constexpr int kAtomBytes = PagedKv::kAtomBytes;       // 8 rows x 128 B: the swizzle period
constexpr int kColBlocks = PagedKv::kColBlocks;
constexpr int kKVGroupBytes = PagedKv::kGroupBytes;   // 8 keys x all of head_dim
// setmaxnreg split of the CTA's share of the 64K-register file: the launch bound gives every thread
// kLaunchRegs (65536 / (kCtasPerSm x kThreads), in whole 8-register steps); the producer keeps 56,
// the consumers share the rest: 224 for two warpgroups, 152 for three, 200 for one (two CTAs per SM).
constexpr int kLaunchRegs = 65536 / (kCtasPerSm * kThreads) / 8 * 8;
// fp8 caches at head_dim 128 without turn-taking, and their short tiles (two CTAs per SM): 72, so the
// widening keeps more loads in flight (fp8::widen_block; the turn-taking consumers spill with 8
// registers fewer). Short tiles, H200 A/B (s20r3): +4-5% on few-query batches over 56.
constexpr int kProducerRegs = KV_FP8 && HEAD_DIM == 128 && ((CONSUMER_WGS == 2 && !PINGPONG) || CTAS_PER_SM == 2) ? 72 : 56;
constexpr int kConsumerRegs = (kLaunchRegs * kThreads - kProducerRegs * 128) / kConsumerThreads / 8 * 8;
static_assert(kConsumerRegs <= 256, "setmaxnreg allows at most 256 registers per thread");
// Columns of O per P V wgmma: all of head_dim, or 128 where ptxas cannot fit one m64n{head_dim} wgmma
// (head_dim / 2 accumulators + ~30 registers, C7602: checked against the launch's kLaunchRegs, not the
// consumers' setmaxnreg count): head_dim 256 with two CTAs per SM (128 registers at launch).
constexpr int kPvN = kLaunchRegs >= kD / 2 + 32 ? kD : 128;
static_assert(kD % 64 == 0, "head_dim must be a multiple of the 64-element swizzle atom");

// Dynamic shared memory, in bytes from the base (aligned up to the 1024-byte swizzle period):
// [Q stages | K stages | V stages | barriers | row offsets | fp8 staging | epilogue staging] + slack.
struct SmemLayout {
  // Dynamic shared memory per CTA: the SM's 228 KB less 1 KB the system reserves per CTA, shared by
  // kCtasPerSm CTAs (227 KB, sm_90's opt-in maximum, for one; 113 KB each for two).
  static constexpr int kMax = 228 * 1024 / kCtasPerSm - 1024;
  static constexpr int kQ = 0;                                    // kQStages tiles of kQBytes
  static constexpr int kKV = kQ + kQStages * kQBytes;             // kStages K tiles, then kStages V tiles
  static constexpr int kBars = kKV + 2 * kStages * kKVBytes;      // Bar, 8 bytes each
  static constexpr int kTileRing = kBars + 192;                   // kTileSlots int32: the tiles handed out
  static constexpr int kCountsPtr = kTileRing + 8;                // PrefillParams::counts (keep_counts)
  static constexpr int kOffsets = kBars + 256;                    // PagedKv::BlockOffsets (gather rows)
  // fp8 cache: slots that stage fp8 blocks until the producer widens them into the K/V stages. Two
  // (a block's K and V: the next block's K loads while this block's V is widened) where they fit
  // beside an epilogue staging of 8 rows, else one (head_dim 256: K, then V, through one slot).
  // (fp8-MMA: at a swizzle period, as V lands 128-byte swizzled for fp8::transpose_v_block.)
  static constexpr int kAfterOffsets = kOffsets + static_cast<int>(sizeof(PagedKv::BlockOffsets));
  static constexpr int kStage8 = kF8Mma ? (kAfterOffsets + 1023) & ~1023 : kAfterOffsets;
  static constexpr int kStage8Bytes = kFp8 ? PagedKv::kStageBytes : 0;
  static constexpr int kStage8Slots =
      !kFp8 ? 0 : kStage8 + 2 * kStage8Bytes + (kConsumerThreads / 32) * 8 * kSwizzleRowBytes + 1024 <= kMax ? 2 : 1;
  static constexpr int kEpi = kStage8 + kStage8Slots * kStage8Bytes;
  // Epilogue staging: per consumer warp, 16 rows (8 when shared memory is short: two passes) x 64
  // columns of 16-bit O, one column block at a time.
  static constexpr int kEpiRows = kEpi + (kConsumerThreads / 32) * 16 * kSwizzleRowBytes + 1024 <= kMax ? 16 : 8;
  static constexpr int kEpiWarpBytes = kEpiRows * kSwizzleRowBytes;
  static constexpr int kBytes = kEpi + (kConsumerThreads / 32) * kEpiWarpBytes + 1024;
};
constexpr int kSmemBytes = SmemLayout::kBytes;
static_assert(kSmemBytes <= SmemLayout::kMax, "tile outgrew shared memory");

// mbarriers: full (producer -> consumers) and empty (consumers -> producer) per K/V and Q stage; with
// an fp8 cache also one "staged" barrier per staging slot (its copies landed -> the producer widens,
// or with kConsumerV the consumers, V's slot), and with kConsumerV VFree (consumers -> producer: V's
// slot was widened); per slot of the tile ring (take_tile) TileFull (the producer's thread 0 wrote
// it) and TileEmpty (every warp of the CTA read it).
constexpr int kTileSlots = 2;
constexpr int kTileReaders = 4 + kConsumerThreads / 32;  // warps: the producer's 4 and the consumers'
// Each kind of barrier starts where the previous one's stages end.
enum class Bar : int { FullK = 0, FullV = FullK + kStages, EmptyK = FullV + kStages, EmptyV = EmptyK + kStages,
                       QFull = EmptyV + kStages, QEmpty = QFull + kQStages, Staged = QEmpty + kQStages,
                       VFree = Staged + SmemLayout::kStage8Slots, TileFull = VFree + 1,
                       TileEmpty = TileFull + kTileSlots, Count = TileEmpty + kTileSlots };
static_assert(static_cast<int>(Bar::Count) * 8 <= SmemLayout::kTileRing - SmemLayout::kBars,
              "barriers outgrew their bytes");
static_assert(4 * kTileSlots <= SmemLayout::kCountsPtr - SmemLayout::kTileRing &&
              SmemLayout::kCountsPtr + 8 <= SmemLayout::kOffsets && SmemLayout::kCountsPtr % 8 == 0,
              "tile ring outgrew its bytes");

NA_DEVICE uint32_t bar_addr(uint32_t bars, Bar b, int stage = 0) {
  return bars + 8 * (static_cast<int>(b) + stage);
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a [rows][kD] tile stored as kD/64 column
// blocks of [rows][64] with the 128-byte swizzle (chunk ^ row % 8) that wgmma descriptors expect.
NA_DEVICE uint32_t sw128_offset(int row, int chunk, int rows) {
  return static_cast<uint32_t>((chunk >> 3) * rows * kSwizzleRowBytes + row * kSwizzleRowBytes +
                               (((chunk & 7) ^ (row & 7)) << 4));
}

// Key blocks of a tile: kBN keys each from kv_start, which the plan gives as a multiple of kBN for a
// tile with keys (schedule.key_blocks, the one place the rule lives: a TMA box, whose token count
// divides kBN and the page size, never straddles two pages); the keys this adds below the tile's
// visible range are masked like any key outside a row's window.
NA_DEVICE int first_key(const TileCoords& c) { return c.kv_start; }
NA_DEVICE int num_blocks(const TileCoords& c) {
  return c.kv_end > c.kv_start ? (c.kv_end - c.kv_start + kBN - 1) / kBN : 0;
}

// The tiles of a launch are claimed at run time, in the plan's order (longest first, L2 section by
// section: schedule.WorkList), from the counter counts[kCountNext] of the plan's workspace: a CTA
// takes the next tile when it is about to run out of work, so the SMs stay balanced by what the tiles
// really cost, not by the planner's estimate. The producer's thread 0 claims (claim_tile) a CTA's
// first tile at its start and each next one once the current one's loads are issued, and hands each
// to every warp of its CTA through the tile ring (publish_tile / take_tile, kTileSlots slots); -1
// ends the CTA. The last CTA to finish resets the counters (retire_cta), so the next launch
// of the plan, a CUDA-graph replay included, starts from tile 0 again; plan()'s upload zeroes them.
// The producer's thread 0 keeps the counts pointer in shared memory (keep_counts, at its start) and
// reads it there at each use: held in a register across the producer's loop it took one that the
// bn176 builds' producer does not have (NVRTC 13.0 spilled it).
NA_DEVICE void keep_counts(const PrefillParams& p, uint32_t smem) {
  ptx::st_shared_64(smem + SmemLayout::kCountsPtr, reinterpret_cast<uint64_t>(p.counts));
}
NA_DEVICE int32_t* plan_counts(uint32_t smem) {
  return reinterpret_cast<int32_t*>(ptx::ld_shared_64(smem + SmemLayout::kCountsPtr));
}

NA_DEVICE int claim_tile(uint32_t smem) {
  int32_t* counts = plan_counts(smem);
  const int w = atomicAdd(counts + kCountNext, 1);
  return w < counts[kCountTiles] ? w : -1;
}

// Thread 0 of the producer: tile w (-1: none) as this CTA's k-th, into slot k % kTileSlots once every
// warp has read the slot's previous tile (k - kTileSlots).
NA_DEVICE void publish_tile(uint32_t smem, uint32_t bars, int k, int w) {
  const int s = k % kTileSlots;
  ptx::mbar_wait(bar_addr(bars, Bar::TileEmpty, s), ((k / kTileSlots) & 1) ^ 1);
  ptx::st_shared_32(smem + SmemLayout::kTileRing + 4 * s, static_cast<uint32_t>(w));
  ptx::mbar_arrive(bar_addr(bars, Bar::TileFull, s));  // (release: the store is seen by the waiters)
}

// Thread 0 of the producer, once its CTA's (k-1)-th tile's loads are issued: claims the k-th and hands
// it out, its row pulled into L1 (every warp's load_tile of it follows).
NA_DEVICE void publish_next(const PrefillParams& p, uint32_t smem, uint32_t bars, int k) {
  const int w = claim_tile(smem);
  publish_tile(smem, bars, k, w);
  if (w >= 0) prefetch_tile(p, w);
}

// Every thread: this CTA's k-th tile (-1: none left). Each warp frees the slot once all its lanes read it.
NA_DEVICE int take_tile(uint32_t smem, uint32_t bars, int k) {
  const int s = k % kTileSlots;
  ptx::mbar_wait(bar_addr(bars, Bar::TileFull, s), (k / kTileSlots) & 1);
  const int w = static_cast<int>(ptx::ld_shared_32(smem + SmemLayout::kTileRing + 4 * s));
  __syncwarp();
  if (threadIdx.x % 32 == 0) ptx::mbar_arrive(bar_addr(bars, Bar::TileEmpty, s));
  return w;
}

// Thread 0 of the producer, after its CTA's last claim (-1): counts the CTA done; the last one resets
// both counters (every claim of the launch precedes every CTA's count, so none can follow the reset).
NA_DEVICE void retire_cta(uint32_t smem) {
  int32_t* counts = plan_counts(smem);
  __threadfence();
  if (atomicAdd(counts + kCountDone, 1) == static_cast<int>(gridDim.x) - 1) {
    counts[kCountNext] = 0;
    counts[kCountDone] = 0;
  }
}
