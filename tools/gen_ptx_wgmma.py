"""Generates kernels_cu/ptx_wgmma.cuh: the wgmma wrappers for every N the sm90 builds use (checked in).

    python tools/gen_ptx_wgmma.py           # rewrite kernels_cu/ptx_wgmma.cuh
    python tools/gen_ptx_wgmma.py --check   # exit 1 when the checked-in file differs (a CPU test runs this)

The N list comes from nvrtc_attn/variants.py (sm90_wgmma_ns: the tiles' block_n and the head dims;
sm90_fp8_wgmma_ns: the N of the e4m3 k32 wrappers of the fp8-MMA builds).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from nvrtc_attn.variants import sm90_fp8_wgmma_ns, sm90_wgmma_ns  # noqa: E402

OUTPUT = REPO / "kernels_cu" / "ptx_wgmma.cuh"

HEADER = '''// wgmma (sm_90a) wrappers, one PTX instruction each: warpgroup-wide m64nNk16 MMAs with fp32
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

// The descriptor of the operand `bytes` further on in shared memory, from one made by desc_sw128:
// the start-address field (bits 0-13, address >> 4) holds any shared address (below 256 KB) without
// a carry into the LBO field, so stepping is one add. Built once per tile, a descriptor then steps
// by constants through the k steps instead of being rebuilt (mask, shift, or) at each of them.
NA_DEVICE uint64_t desc_advance(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }
'''


def _wrappers(n: int) -> str:
    """mma_ss_n{n} and mma_rs_n{n}: one wgmma instruction each, bf16 and f16."""
    nreg = n // 2
    regs = ",".join(f"%{i}" for i in range(nreg))
    cons = ", ".join(f'"+f"(d[{i}])' for i in range(nreg))
    return f'''
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
'''


def _wrappers_e4m3(n: int) -> str:
    """mma_ss_e4m3_n{n} and mma_rs_e4m3_n{n}: one e4m3 x e4m3 k32 wgmma each (8-bit operands are
    K-major only: no transpose immediates)."""
    nreg = n // 2
    regs = ",".join(f"%{i}" for i in range(nreg))
    cons = ", ".join(f'"+f"(d[{i}])' for i in range(nreg))
    return f'''
// wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3 (A, B from shared memory, both K-major).
NA_DEVICE void mma_ss_e4m3_n{n}(float (&d)[{nreg}], uint64_t desc_a, uint64_t desc_b, int scale_d) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nreg + 2}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3 {{{regs}}}, %{nreg}, %{nreg + 1}, p, 1, 1;\\n}}\\n"
      : {cons}
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}}

// wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3 (A from registers: four e4m3 per register,
// the lowest column in the low byte; B from shared memory, K-major).
NA_DEVICE void mma_rs_e4m3_n{n}(float (&d)[{nreg}], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nreg + 5}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3 {{{regs}}}, {{%{nreg},%{nreg+1},%{nreg+2},%{nreg+3}}}, %{nreg + 4}, p, 1, 1;\\n}}\\n"
      : {cons}
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}}
'''


def _dispatch(ns: tuple[int, ...], e4m3: bool = False) -> str:
    """mma_ss<N> / mma_rs<N>: compile-time dispatch to the wrapper of N (the last N is the else branch);
    e4m3: mma_ss_e4m3<N> / mma_rs_e4m3<N> (an N without a wrapper fails to compile)."""
    out = ["\n// e4m3 dispatch on N at compile time.\n" if e4m3 else "\n// Dispatch on N at compile time.\n"]
    tag, params, targs = ("_e4m3", "template <int N>\n", "") if e4m3 else \
        ("", "template <int N, bool kBf16, int kTransB>\n", "<kBf16, kTransB>")
    for kind, sig, args in (("ss", "uint64_t a, uint64_t b", "d, a, b, scale_d"),
                            ("rs", "const uint32_t (&a)[4], uint64_t b", "d, a, b, scale_d")):
        out.append(params)
        out.append(f"NA_DEVICE void mma_{kind}{tag}(float (&d)[N / 2], {sig}, int scale_d) {{\n")
        for i, n in enumerate(ns):
            call = f"mma_{kind}{tag}_n{n}{targs}({args});\n"
            if i == len(ns) - 1 and not e4m3:
                out.append(f"  else {call}")
            else:
                out.append(f"  {'if' if i == 0 else 'else if'} constexpr (N == {n}) {call}")
        if e4m3:
            out.append('  else static_assert(N < 0, "no e4m3 wgmma wrapper for this N (tools/gen_ptx_wgmma.py)");\n')
        out.append("}\n")
    return "".join(out)


def generate(ns: tuple[int, ...], fp8_ns: tuple[int, ...] = ()) -> str:
    """The text of ptx_wgmma.cuh for these N sizes (ascending), and the e4m3 k32 wrappers of fp8_ns."""
    return (HEADER + "".join(_wrappers(n) for n in ns) + _dispatch(ns) + "".join(_wrappers_e4m3(n) for n in fp8_ns)
            + (_dispatch(fp8_ns, e4m3=True) if fp8_ns else "") + "\n}  // namespace wgmma\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the checked-in file, write nothing")
    args = ap.parse_args(argv)
    text = generate(sm90_wgmma_ns(), sm90_fp8_wgmma_ns())
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} differs from its generator: run python tools/gen_ptx_wgmma.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
