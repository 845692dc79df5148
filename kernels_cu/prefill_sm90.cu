// The Hopper paged prefill kernel (sm_90a): warpgroup roles, barrier setup and the entry point.
// The CTAs claim their tiles at run time, longest first (tile_sm90.cuh: claim_tile).
// One producer warpgroup (producer_sm90.cuh) loads Q and the K/V blocks (paged_kv_load.cuh: TMA per
// page part or cp.async gather) into the shared-memory rings of tile_sm90.cuh; two consumer warpgroups
// (three at head_dim 64; one in the short tiles, two CTAs per SM) of 64 query rows each run
// mainloop_sm90.cuh (wgmma S = Q K^T, the online softmax of softmax.cuh, wgmma O += P V) and
// epilogue_sm90.cuh (pieces of split tiles: partial O and LSE for merge_split.cu, in SPLIT_KV builds).
// An fp8 cache (KV_FP8) is staged as bytes and widened to 16 bits by the producer before the same
// mainloop reads it (producer_loop_fp8). Specialized by macros HEAD_DIM, IS_BF16, BLOCK_N, CONSUMER_WGS,
// KV_STAGES, Q_STAGES, PINGPONG, CTAS_PER_SM, SPLIT_KV, KV_FP8 (from nvrtc_attn/variants.py).
#include "params.cuh"
#include "ptx_sm80.cuh"
#include "ptx_mbarrier.cuh"
#include "tile_sm90.cuh"
#include "producer_sm90.cuh"
#include "mainloop_sm90.cuh"

// The host reads the size from the cubin (nvrtc_attn/cubin.py): no second copy of this arithmetic.
extern "C" __device__ const int dynamic_smem_bytes = kSmemBytes;

extern "C" __global__ void __launch_bounds__(kThreads, kCtasPerSm)
prefill_sm90(const __grid_constant__ PrefillParams p, const __grid_constant__ Sm90TensorMaps maps) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  if (ptx::dynamic_smem_size() < kSmemBytes) __trap();  // launched with less than dynamic_smem_bytes
  const uint32_t smem = (ptx::smem_addr(smem_raw) + 1023) & ~1023u;  // swizzle atoms need 1024
  const uint32_t bars = smem + SmemLayout::kBars;
  const int tid = threadIdx.x;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      ptx::mbar_init(bar_addr(bars, Bar::FullK, s), 128);
      ptx::mbar_init(bar_addr(bars, Bar::FullV, s), 128);
      ptx::mbar_init(bar_addr(bars, Bar::EmptyK, s), kConsumerThreads);
      ptx::mbar_init(bar_addr(bars, Bar::EmptyV, s), kConsumerThreads);
    }
    for (int s = 0; s < kQStages; ++s) {
      ptx::mbar_init(bar_addr(bars, Bar::QFull, s), 128);
      ptx::mbar_init(bar_addr(bars, Bar::QEmpty, s), kConsumerThreads);
    }
    for (int s = 0; s < SmemLayout::kStage8Slots; ++s) ptx::mbar_init(bar_addr(bars, Bar::Staged, s), 128);
    if (kConsumerV) ptx::mbar_init(bar_addr(bars, Bar::VFree), kConsumerThreads);
    for (int s = 0; s < kTileSlots; ++s) {
      ptx::mbar_init(bar_addr(bars, Bar::TileFull, s), 1);
      ptx::mbar_init(bar_addr(bars, Bar::TileEmpty, s), kTileReaders);
    }
  }
  __syncthreads();
  // Split builds: the merge of the pieces (merge_split.cu, a programmatic launch) may be scheduled
  // now; it waits for this grid to finish before it reads a partial.
  if constexpr (kSplitKv) ptx::launch_dependents();

  // Warp-uniform for the compiler (a shuffle from lane 0): what derives from it (the consumers' Q
  // rows, the wgmma descriptors of mainloop_sm90.cuh) can live in uniform registers.
  const int warpgroup = __shfl_sync(0xffffffffu, tid / 128, 0);
  if (warpgroup == 0) {
    ptx::regs_dealloc<kProducerRegs>();
    PagedKv::BlockOffsets& offs = *reinterpret_cast<PagedKv::BlockOffsets*>(smem_raw + (smem - ptx::smem_addr(smem_raw)) + SmemLayout::kOffsets);
    if constexpr (kFp8) producer_loop_fp8<>(p, maps, smem, offs, bars, tid);
    else producer_loop(p, maps, smem, offs, bars, tid);
  } else {
    ptx::regs_alloc<kConsumerRegs>();
    consumer_loop(p, smem, bars, warpgroup - 1, tid % 128);
  }
}
