// mbarrier, proxy fence and register-reallocation primitives for the warp-specialized Hopper
// kernel, one PTX instruction per function.
#pragma once
#include "nvrtc_std.cuh"

namespace ptx {

// mbarrier.init.shared::cta.b64
NA_DEVICE void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
// mbarrier.arrive.shared::cta.b64 (one arrival, result state discarded)
NA_DEVICE void mbar_arrive(uint32_t bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
// mbarrier.try_wait.parity.shared::cta.b64, looped until the phase with this parity completed.
NA_DEVICE void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "WAIT_AGAIN:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_AGAIN;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
// cp.async.mbarrier.arrive.noinc.shared::cta.b64: one arrival on `bar`, made by the hardware once
// every cp.async this thread issued before it has completed (the thread does not wait).
NA_DEVICE void cp_async_mbar_arrive(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
// fence.proxy.async.shared::cta: make this thread's generic-proxy shared-memory writes (st.shared,
// completed cp.async) visible to the async proxy that wgmma reads operands through.
NA_DEVICE void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Named barriers (bar.sync id, threads): 0 is __syncthreads.
enum class NamedBarrier : int { Producer = 1, ConsumerTurn0 = 2, ConsumerTurn1 = 3, ConsumerTurn2 = 4, ConsumersV = 5 };
// bar.sync id, count
NA_DEVICE void named_barrier_sync(NamedBarrier id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(static_cast<int>(id)), "r"(threads) : "memory");
}
NA_DEVICE void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// bar.arrive id, count (signal without waiting)
NA_DEVICE void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// setmaxnreg.{dec,inc}.sync.aligned.u32: hand registers from the producer to the consumers.
template <int N>
NA_DEVICE void regs_dealloc() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N>
NA_DEVICE void regs_alloc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }

}  // namespace ptx
