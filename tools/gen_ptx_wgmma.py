# Generates kernels_cu/ptx_wgmma.cuh (checked in; regenerate with this script if N list changes).
ns = (64, 128, 176, 256)
out = ['''// wgmma (sm_90a) wrappers, one PTX instruction each: warpgroup-wide m64nNk16 MMAs with fp32
// accumulators. SS: A and B from shared memory descriptors; RS: A from registers (the P tile).
// Accumulator layout per thread, for each 8-column chunk c: d[4c+0..1] row g, d[4c+2..3] row g+8
// of the warp's 16 rows (g = lane / 4, columns 8c + 2 * (lane % 4) + {0, 1}) -- the mma.sync
// m16n8 layout, so softmax.cuh and the P-to-A repacking are shared with the sm80 path.
#pragma once
#include "nvrtc_std.cuh"

namespace wgmma {

// wgmma.fence.sync.aligned: order register writes to accumulators/A before the next wgmma.
NA_DEVICE void fence() { asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory"); }
// wgmma.commit_group.sync.aligned
NA_DEVICE void commit() { asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory"); }
// wgmma.wait_group.sync.aligned N
template <int N>
NA_DEVICE void wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\\n" ::"n"(N) : "memory"); }

// Shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte
// offsets (>> 4), swizzle mode 1 in bits 62-63.
NA_DEVICE uint64_t desc_sw128(uint32_t smem_addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>((lbo_bytes & 0x3FFFF) >> 4) << 16;
  d |= static_cast<uint64_t>((sbo_bytes & 0x3FFFF) >> 4) << 32;
  d |= static_cast<uint64_t>(1) << 62;
  return d;
}
''']
for n in ns:
    nreg = n // 2
    regs = ",".join(f"%{i}" for i in range(nreg))
    cons = ", ".join(f'"+f"(d[{i}])' for i in range(nreg))
    for bf, ty in ((True, "bf16"), (False, "f16")):
        pass
    # SS
    out.append(f'''
// wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{{bf16,f16}} (A, B from shared memory; B transposed
// when kTransB, i.e. stored N-major). scale_d = 0 overwrites the accumulators.
template <bool kBf16, int kTransB>
NA_DEVICE void mma_ss_n{n}(float (&d)[{nreg}], uint64_t desc_a, uint64_t desc_b, int scale_d) {{
  if constexpr (kBf16) {{
    asm volatile(
        "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nreg + 2}, 0;\\n"
        "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {{{regs}}}, %{nreg}, %{nreg + 1}, p, 1, 1, 0, %{nreg + 3};\\n}}\\n"
        : {cons}
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }} else {{
    asm volatile(
        "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nreg + 2}, 0;\\n"
        "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.f16.f16 {{{regs}}}, %{nreg}, %{nreg + 1}, p, 1, 1, 0, %{nreg + 3};\\n}}\\n"
        : {cons}
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }}
}}

// wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{{bf16,f16}} (A from registers, B from shared memory).
template <bool kBf16, int kTransB>
NA_DEVICE void mma_rs_n{n}(float (&d)[{nreg}], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {{
  if constexpr (kBf16) {{
    asm volatile(
        "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nreg + 5}, 0;\\n"
        "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {{{regs}}}, {{%{nreg},%{nreg+1},%{nreg+2},%{nreg+3}}}, %{nreg + 4}, p, 1, 1, %{nreg + 6};\\n}}\\n"
        : {cons}
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }} else {{
    asm volatile(
        "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nreg + 5}, 0;\\n"
        "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.f16.f16 {{{regs}}}, {{%{nreg},%{nreg+1},%{nreg+2},%{nreg+3}}}, %{nreg + 4}, p, 1, 1, %{nreg + 6};\\n}}\\n"
        : {cons}
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
  }}
}}
''')
out.append('''
// Dispatch on N at compile time.
template <int N, bool kBf16, int kTransB>
NA_DEVICE void mma_ss(float (&d)[N / 2], uint64_t a, uint64_t b, int scale_d) {
  if constexpr (N == 64) mma_ss_n64<kBf16, kTransB>(d, a, b, scale_d);
  else if constexpr (N == 128) mma_ss_n128<kBf16, kTransB>(d, a, b, scale_d);
  else if constexpr (N == 176) mma_ss_n176<kBf16, kTransB>(d, a, b, scale_d);
  else mma_ss_n256<kBf16, kTransB>(d, a, b, scale_d);
}
template <int N, bool kBf16, int kTransB>
NA_DEVICE void mma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b, int scale_d) {
  if constexpr (N == 64) mma_rs_n64<kBf16, kTransB>(d, a, b, scale_d);
  else if constexpr (N == 128) mma_rs_n128<kBf16, kTransB>(d, a, b, scale_d);
  else if constexpr (N == 176) mma_rs_n176<kBf16, kTransB>(d, a, b, scale_d);
  else mma_rs_n256<kBf16, kTransB>(d, a, b, scale_d);
}

}  // namespace wgmma
''')
open(__import__('pathlib').Path(__file__).resolve().parent.parent / 'kernels_cu' / 'ptx_wgmma.cuh', 'w').write("".join(out))
